"""Section `stages`: seconds per frame, FLOPs and GFLOP/s of each LVO stage
(appearance, motion, memory, head) at one frame size, each next to its own
convolutions timed alone: the presets at 854x480, and each shipped model's
network at the size its manifest processes 854x480 video at."""

from __future__ import annotations

import tensorflow as tf
from absl import logging

from lvo_tf import models as lvo_models
from lvo_tf.benchmarks import timing
from lvo_tf.data import readers


def conv_gru_convs(
    clip_length: int, height: int, width: int, channels: int, filters: int, kernel: int
) -> list[dict]:
    """The convolutions of one direction of our ConvGRU over a clip: the
    input-to-gate convolution over all frames at once, then per step the
    fused hidden-to-z/r convolution and the candidate's (r * h) convolution."""

    def conv(batch, c_in, c_out, count):
        return {
            "op": "Conv2D",
            "input": [batch, height, width, c_in],
            "filter": [kernel, kernel, c_in, c_out],
            "strides": [1, 1, 1, 1],
            "dilations": [1, 1, 1, 1],
            "padding": "SAME",
            "count": count,
        }

    return [
        conv(clip_length, channels, 3 * filters, 1),
        conv(1, filters, 2 * filters, clip_length),
        conv(1, filters, filters, clip_length),
    ]


def bench_stages(
    preset: str | lvo_models.LVOConfig = "lite",
    height: int = 480,
    width: int = 854,
    batch_frames: int = 2,
    clip_length: int = 4,
    repeats: int = 3,
    label: str | None = None,
) -> dict:
    """Seconds per frame of each LVO stage at one frame size (compiled
    tf.function, random weights), with the stage's FLOPs and GFLOP/s. A
    memory that reads motion only gets no appearance stage: `segment` does
    not run it (`LVORunner`). `label` names the row (default: the preset)."""
    config = lvo_models.resolve_config(preset)
    pad = lvo_models.PAD_MULTIPLE
    hp, wp = -(-height // pad) * pad, -(-width // pad) * pad
    h8, w8 = hp // lvo_models.OUTPUT_STRIDE, wp // lvo_models.OUTPUT_STRIDE
    n = batch_frames
    directions = {"bidirectional": 2, "forward": 1}.get(config.memory_type)
    if directions is None:
        raise ValueError(
            f"bench_stages times a ConvGRU memory; preset {preset!r} has memory_type "
            f"{config.memory_type!r}"
        )

    # MP-Net on half-size flow (motion_stride 2) runs as build_streams runs it:
    # the flow padded to 32 and halved first.
    stride = config.motion_stride
    motion = lvo_models.strided_motion(lvo_models.build_motion(config), stride)
    fh, fw = -(-height // (pad * stride)) * pad * stride, -(-width // (pad * stride)) * pad * stride
    memory_model = lvo_models.build_memory(config)
    memory = memory_model.get_layer("visual_memory")
    head_conv, classifier = (
        memory_model.get_layer("head_conv"),
        memory_model.get_layer("classifier"),
    )

    def head(x):
        return classifier(head_conv(x))

    frames = tf.cast(tf.random.uniform((n, hp, wp, 3), 0, 255, tf.int32), tf.uint8)
    flow = tf.random.normal((n, fh, fw, 2))
    features = tf.random.normal((1, clip_length, h8, w8, config.feature_channels))
    hidden = tf.random.normal((1, clip_length, h8, w8, directions * config.memory_filters))

    memory_convs = conv_gru_convs(
        clip_length, h8, w8, config.feature_channels, config.memory_filters, config.memory_kernel
    )
    for c in memory_convs:
        c["count"] *= directions
    per_frame = {}
    if config.memory_streams != "motion":  # else segment skips it (LVORunner)
        appearance = lvo_models.build_appearance(config)
        per_frame["appearance"] = (
            appearance,
            frames,
            n,
            timing.graph_flops(appearance, tf.TensorSpec((1, hp, wp, 3), tf.uint8)),
            timing.conv_ops(appearance, tf.TensorSpec(frames.shape, tf.uint8)),
        )
    per_frame |= {
        "motion": (
            motion,
            flow,
            n,
            timing.graph_flops(motion, tf.TensorSpec((1, fh, fw, 2), tf.float32)),
            timing.conv_ops(motion, tf.TensorSpec(flow.shape, tf.float32)),
        ),
        "memory": (
            memory,
            features,
            clip_length,
            directions
            * timing.conv_gru_step_flops(
                h8, w8, config.feature_channels, config.memory_filters, config.memory_kernel
            ),
            memory_convs,
        ),
        "head": (
            head,
            hidden,
            clip_length,
            timing.graph_flops(
                head, tf.TensorSpec((1, 1, h8, w8, directions * config.memory_filters))
            ),
            timing.conv_ops(head, tf.TensorSpec(hidden.shape, tf.float32)),
        ),
    }
    row = label or (preset if isinstance(preset, str) else "custom")
    result = {"preset": row, "frame": [height, width], "padded": [hp, wp], "stages": {}}
    for name, (fn, x, frames_in_call, flops, convs) in per_frame.items():
        compiled = tf.function(fn, autograph=False)
        logging.info("stage %s (%s): timing %d runs", name, row, repeats)
        seconds = timing.time_call(lambda c=compiled, v=x: c(v), warmup=1, repeats=repeats)
        seconds /= frames_in_call
        plain = timing.plain_conv_seconds(convs, repeats) / frames_in_call
        result["stages"][name] = {
            "seconds_per_frame": seconds,
            "gflop_per_frame": flops / 1e9,
            "gflops": flops / seconds / 1e9,
            "convolutions": sum(c["count"] for c in convs),
            "plain_conv_seconds_per_frame": plain,
            "plain_conv_gflops": flops / plain / 1e9,
            "fraction_of_plain_conv": plain / seconds,
        }
    total = sum(v["seconds_per_frame"] for v in result["stages"].values())
    result["total_seconds_per_frame"] = total
    return result


def shipped_frame(info: dict, height: int = 480, width: int = 854) -> tuple[int, int]:
    """The frame a shipped model's network sees for height x width video:
    shrunk to the manifest's processing height (as `readers.shrink_to_height`),
    never enlarged."""
    return readers.shrunk_size(height, width, info.get("process_height"))


def stages_markdown(results: list[dict]) -> str:
    lines = [
        "| model / preset | frame | stage | s / frame | GFLOP / frame | GFLOP/s | "
        "its convolutions alone, s / frame | their GFLOP/s | achieved fraction |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        frame = f"{r['frame'][1]}x{r['frame'][0]}"
        for name, v in r["stages"].items():
            lines.append(
                f"| {r['preset']} | {frame} | {name} | {v['seconds_per_frame']:.4f} | "
                f"{v['gflop_per_frame']:.2f} | {v['gflops']:.0f} | "
                f"{v['plain_conv_seconds_per_frame']:.4f} | {v['plain_conv_gflops']:.0f} | "
                f"{v['fraction_of_plain_conv']:.0%} |"
            )
        lines.append(
            f"| {r['preset']} | {frame} | **all {len(r['stages'])}** | "
            f"**{r['total_seconds_per_frame']:.3f}** | | | | | |"
        )
    return (
        "Per-frame stages (frames padded to a multiple of "
        f"{lvo_models.PAD_MULTIPLE}), compiled tf.function, random weights, a batch of "
        "frames for the streams, a clip for memory and head; optical flow and CRF not "
        "included. A shipped model runs at the size its manifest processes 854x480 "
        "video at, and without the appearance stream when its memory reads motion "
        "only (as `segment` runs it).\n\n" + "\n".join(lines)
    )

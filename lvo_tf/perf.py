"""Timing helpers and benchmark sections (FLOP accounting, medians, ceilings)."""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from lvo_tf.layers import ConvGRU
from lvo_tf.models import lvo as lvo_models


def time_call(fn: Callable[[], object], warmup: int = 2, repeats: int = 5) -> float:
    """Median wall time of `fn()` in seconds, after `warmup` untimed calls.

    The result of each call is pulled to host memory, so asynchronous
    execution is included in the time.
    """
    for _ in range(warmup):
        _block(fn())
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        _block(fn())
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _block(result) -> None:
    for value in tf.nest.flatten(result):
        if hasattr(value, "numpy"):
            value.numpy()


def conv_flops(height: int, width: int, kernel: int, c_in: int, c_out: int, batch: int = 1) -> int:
    """Multiply-adds x 2 of a stride-1 "same" convolution."""
    return 2 * batch * height * width * kernel * kernel * c_in * c_out


def conv_gru_step_flops(height: int, width: int, channels: int, filters: int, kernel: int) -> int:
    """FLOPs of one ConvGRU step in one direction (convolutions only; the
    elementwise gate arithmetic is under 0.1% of it)."""
    return conv_flops(height, width, kernel, channels, 3 * filters) + conv_flops(
        height, width, kernel, filters, 3 * filters
    )


def machine_description() -> dict:
    return {
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "devices": [d.device_type for d in tf.config.list_physical_devices()],
    }


def matmul_gflops(n: int = 2048, repeats: int = 5) -> float:
    a = tf.random.normal((n, n))
    b = tf.random.normal((n, n))
    fn = tf.function(lambda: tf.linalg.matmul(a, b))
    return 2 * n**3 / time_call(fn, repeats=repeats) / 1e9


def six_conv_gru(memory: keras.layers.Bidirectional):
    """The same bidirectional ConvGRU (same weights) written the textbook way:
    per step and direction, six separate convolutions (x and h to z, r and
    the candidate), inside one tf.function over the clip."""

    def split(cell):
        f = cell.filters
        k, rk, b = (np.asarray(v) for v in (cell.kernel, cell.recurrent_kernel, cell.bias))
        return {
            g: (
                tf.constant(k[..., i * f : (i + 1) * f]),
                tf.constant(rk[..., i * f : (i + 1) * f]),
                tf.constant(b[i * f : (i + 1) * f]),
            )
            for i, g in enumerate(("z", "r", "h"))
        }

    params = [split(memory.forward_layer.cell), split(memory.backward_layer.cell)]
    filters = memory.forward_layer.cell.filters

    def conv(v, w):
        return tf.nn.conv2d(v, w, 1, "SAME")

    def direction(frames, p):
        h = tf.zeros_like(frames[0][..., :1]) * tf.zeros([filters])
        out = []
        for x in frames:
            z = tf.sigmoid(conv(x, p["z"][0]) + p["z"][2] + conv(h, p["z"][1]))
            r = tf.sigmoid(conv(x, p["r"][0]) + p["r"][2] + conv(h, p["r"][1]))
            c = tf.tanh(conv(x, p["h"][0]) + p["h"][2] + conv(r * h, p["h"][1]))
            h = (1 - z) * h + z * c
            out.append(h)
        return out

    @tf.function(autograph=False)
    def run(x):
        frames = tf.unstack(x, axis=1)
        forward = direction(frames, params[0])
        backward = direction(frames[::-1], params[1])[::-1]
        return tf.stack([tf.concat(p, -1) for p in zip(forward, backward, strict=True)], 1)

    return run


def bench_conv_gru(
    height: int = 60,
    width: int = 107,
    channels: int = 129,
    filters: int = 64,
    kernel: int = 7,
    steps: int = 8,
    repeats: int = 5,
) -> dict:
    """One bidirectional ConvGRU step (forward + backward direction, one
    frame) at the given size: eager, tf.function, tf.function with XLA, next
    to a plain `tf.nn.conv2d` doing the same FLOPs, all in this run."""
    memory = keras.layers.Bidirectional(ConvGRU(filters, kernel, return_sequences=True))
    x = tf.random.normal((1, steps, height, width, channels))
    memory(x)  # build
    spec = tf.TensorSpec((None, None, None, None, channels), tf.float32)
    graph = tf.function(lambda v: memory(v), input_signature=[spec], autograph=False)
    xla = tf.function(lambda v: memory(v), jit_compile=True, autograph=False)

    step_flops = 2 * conv_gru_step_flops(height, width, channels, filters, kernel)
    results = {
        "shape": {
            "height": height,
            "width": width,
            "channels": channels,
            "filters": filters,
            "kernel": kernel,
            "clip_length": steps,
        },
        "gflop_per_bidirectional_step": step_flops / 1e9,
    }
    naive = six_conv_gru(memory)
    ways = {
        "eager": lambda: memory(x),
        "tf_function": lambda: graph(x),
        "xla": lambda: xla(x),
        "six_convs": lambda: naive(x),
    }
    for name, fn in ways.items():
        logging.info("ConvGRU %s: timing %d runs of a %d-frame clip", name, repeats, steps)
        seconds = time_call(fn, warmup=1, repeats=repeats) / steps
        results[name] = {"seconds_per_step": seconds, "gflops": step_flops / seconds / 1e9}

    # A plain convolution of the same total work: a 7x7 conv over both
    # directions' frames (batch 2) with C_in = channels + filters, 3F out.
    plain_in = tf.random.normal((2, height, width, channels + filters))
    plain_w = tf.random.normal((kernel, kernel, channels + filters, 3 * filters))
    plain = tf.function(lambda: tf.nn.conv2d(plain_in, plain_w, 1, "SAME"))
    plain_flops = conv_flops(height, width, kernel, channels + filters, 3 * filters, batch=2)
    assert plain_flops == step_flops
    seconds = time_call(plain, repeats=repeats)
    results["plain_conv2d_same_work"] = {"seconds": seconds, "gflops": plain_flops / seconds / 1e9}
    for name in ways:
        results[name]["fraction_of_plain_conv"] = (
            results[name]["gflops"] / results["plain_conv2d_same_work"]["gflops"]
        )
    results["matmul_gflops"] = matmul_gflops(repeats=repeats)
    return results


def conv_gru_markdown(r: dict) -> str:
    s = r["shape"]
    lines = [
        f"Bidirectional ConvGRU step at {s['height']}x{s['width']}, {s['channels']} input "
        f"channels, {s['filters']} hidden per direction, {s['kernel']}x{s['kernel']} kernels "
        f"({r['gflop_per_bidirectional_step']:.1f} GFLOP per step; time per step = time of a "
        f"{s['clip_length']}-frame clip / {s['clip_length']}).",
        "",
        "| way | s / step | GFLOP/s | vs plain conv2d, same work |",
        "|---|---|---|---|",
    ]
    for name in ("eager", "tf_function", "xla", "six_convs"):
        if name not in r:
            continue
        v = r[name]
        lines.append(
            f"| {name} | {v['seconds_per_step']:.3f} | {v['gflops']:.0f} | "
            f"{v['fraction_of_plain_conv']:.2f}x |"
        )
    p = r["plain_conv2d_same_work"]
    lines.append(
        f"| plain `tf.nn.conv2d` (same FLOPs) | {p['seconds']:.3f} | {p['gflops']:.0f} | 1.00x |"
    )
    lines += [
        "",
        "`six_convs`: the textbook design for comparison, six separate convolutions per "
        "step (x and h to z, r and the candidate) inside a tf.function over the clip; "
        "ours hoists the input convolutions out of the recurrence (one convolution "
        "over all frames) and fuses the h-to-z/r pair.",
        "",
        f"fp32 matmul ceiling in the same run: {r['matmul_gflops']:.0f} GFLOP/s.",
    ]
    return "\n".join(lines)


def graph_flops(fn, *specs: tf.TensorSpec) -> int:
    """Float operations of `fn` on inputs of these static shapes, counted by
    TensorFlow's graph profiler (no while loops inside)."""
    from tensorflow.python.framework.convert_to_constants import (
        convert_variables_to_constants_v2,
    )

    concrete = tf.function(fn, autograph=False).get_concrete_function(*specs)
    graph = convert_variables_to_constants_v2(concrete).graph
    builder = tf.compat.v1.profiler.ProfileOptionBuilder
    options = builder(builder.float_operation()).with_empty_output().build()
    return tf.compat.v1.profiler.profile(graph=graph, options=options).total_float_ops


def conv_ops(fn, *specs: tf.TensorSpec) -> list[dict]:
    """The convolutions (Conv2D, Conv3D) `fn` runs on inputs of these static shapes, as
    TensorFlow's graph has them (dilated convolutions appear as the plain
    convolution between SpaceToBatch and BatchToSpace), each with a count."""
    from tensorflow.python.framework.convert_to_constants import (
        convert_variables_to_constants_v2,
    )

    concrete = tf.function(fn, autograph=False).get_concrete_function(*specs)
    graph = convert_variables_to_constants_v2(concrete).graph
    convs = []
    for op in graph.get_operations():
        if op.type not in ("Conv2D", "Conv3D"):
            continue
        convs.append(
            {
                "op": op.type,
                "input": op.inputs[0].shape.as_list(),
                "filter": op.inputs[1].shape.as_list(),
                "strides": list(op.get_attr("strides")),
                "dilations": list(op.get_attr("dilations")),
                "padding": op.get_attr("padding").decode(),
                "count": 1,
            }
        )
    return convs


def plain_conv_seconds(convs: list[dict], repeats: int = 3) -> float:
    """Summed median time of each convolution alone (`tf.nn.conv2d` or
    `conv3d` in a tf.function on random data), times its count: the time
    these shapes take on this machine with nothing else around them."""
    total = 0.0
    for c in convs:
        x = tf.random.normal(c["input"])
        w = tf.random.normal(c["filter"]) * 0.01
        conv = tf.nn.conv3d if c.get("op") == "Conv3D" else tf.nn.conv2d
        fn = tf.function(
            lambda x=x, w=w, c=c, conv=conv: conv(
                x, w, c["strides"], c["padding"], dilations=c["dilations"]
            ),
            autograph=False,
        )
        total += c["count"] * time_call(fn, warmup=1, repeats=repeats)
    return total


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
    preset: str = "lite",
    height: int = 480,
    width: int = 854,
    batch_frames: int = 2,
    clip_length: int = 4,
    repeats: int = 3,
) -> dict:
    """Seconds per frame of each LVO stage at one frame size (compiled
    tf.function, random weights), with the stage's FLOPs and GFLOP/s."""
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

    appearance = lvo_models.build_appearance(config)
    motion = lvo_models.build_motion(config)
    memory_model = lvo_models.build_memory(config)
    memory = memory_model.get_layer("visual_memory")
    head_conv, classifier = (
        memory_model.get_layer("head_conv"),
        memory_model.get_layer("classifier"),
    )

    def head(x):
        return classifier(head_conv(x))

    frames = tf.cast(tf.random.uniform((n, hp, wp, 3), 0, 255, tf.int32), tf.uint8)
    flow = tf.random.normal((n, hp, wp, 2))
    features = tf.random.normal((1, clip_length, h8, w8, config.feature_channels))
    hidden = tf.random.normal((1, clip_length, h8, w8, directions * config.memory_filters))

    memory_convs = conv_gru_convs(
        clip_length, h8, w8, config.feature_channels, config.memory_filters, config.memory_kernel
    )
    for c in memory_convs:
        c["count"] *= directions
    per_frame = {
        "appearance": (
            appearance,
            frames,
            n,
            graph_flops(appearance, tf.TensorSpec((1, hp, wp, 3), tf.uint8)),
            conv_ops(appearance, tf.TensorSpec(frames.shape, tf.uint8)),
        ),
        "motion": (
            motion,
            flow,
            n,
            graph_flops(motion, tf.TensorSpec((1, hp, wp, 2), tf.float32)),
            conv_ops(motion, tf.TensorSpec(flow.shape, tf.float32)),
        ),
        "memory": (
            memory,
            features,
            clip_length,
            directions
            * conv_gru_step_flops(
                h8, w8, config.feature_channels, config.memory_filters, config.memory_kernel
            ),
            memory_convs,
        ),
        "head": (
            head,
            hidden,
            clip_length,
            graph_flops(head, tf.TensorSpec((1, 1, h8, w8, directions * config.memory_filters))),
            conv_ops(head, tf.TensorSpec(hidden.shape, tf.float32)),
        ),
    }
    result = {"preset": preset, "frame": [height, width], "padded": [hp, wp], "stages": {}}
    for name, (fn, x, frames_in_call, flops, convs) in per_frame.items():
        compiled = tf.function(fn, autograph=False)
        logging.info("stage %s (%s): timing %d runs", name, preset, repeats)
        seconds = time_call(lambda c=compiled, v=x: c(v), warmup=1, repeats=repeats)
        seconds /= frames_in_call
        plain = plain_conv_seconds(convs, repeats) / frames_in_call
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


def stages_markdown(results: list[dict]) -> str:
    lines = [
        "| preset | stage | s / frame | GFLOP / frame | GFLOP/s | its convolutions alone, "
        "s / frame | their GFLOP/s | achieved fraction |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        for name, v in r["stages"].items():
            lines.append(
                f"| {r['preset']} | {name} | {v['seconds_per_frame']:.4f} | "
                f"{v['gflop_per_frame']:.2f} | {v['gflops']:.0f} | "
                f"{v['plain_conv_seconds_per_frame']:.4f} | {v['plain_conv_gflops']:.0f} | "
                f"{v['fraction_of_plain_conv']:.0%} |"
            )
        lines.append(
            f"| {r['preset']} | **all four** | **{r['total_seconds_per_frame']:.3f}** | | | | | |"
        )
    h, w = results[0]["frame"]
    return (
        f"Per-frame stages at {w}x{h} (padded to {results[0]['padded'][1]}x"
        f"{results[0]['padded'][0]}), compiled tf.function, batch of frames for the "
        "streams, a clip for memory and head; optical flow and CRF not included.\n\n"
        + "\n".join(lines)
    )


def bench_pipeline(
    preset: str = "paper",
    clip_length: int = 14,
    size: tuple[int, int] = (60, 108),
    clips: int = 60,
    repeats: int = 3,
) -> dict:
    """Clips per second the tf.data pipeline delivers from a feature cache
    (stop-and-go on, 20%), next to the clips per second one memory training
    step (forward, backward, RMSProp update) consumes, in the same run."""
    import tempfile

    from lvo_tf.data.features import FeatureCache
    from lvo_tf.data.pipeline import ClipConfig, FeatureSource, clip_dataset

    config = lvo_models.resolve_config(preset)
    c = config.feature_channels
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as root:
        cache = FeatureCache(root)
        for i in range(4):
            cache.write(
                f"seq{i}",
                rng.standard_normal((40,) + size + (c,)).astype(np.float16),
                rng.random((40,) + size + (1,)).astype(np.float16),
            )
        ds = clip_dataset(FeatureSource(root), ClipConfig(clip_length=clip_length, seed=0))
        iterator = iter(ds)
        for _ in range(5):
            next(iterator)
        start = time.perf_counter()
        for _ in range(clips):
            batch = next(iterator)
        pipeline_rate = clips / (time.perf_counter() - start)

    memory = lvo_models.build_memory(config)
    optimizer = keras.optimizers.RMSprop(1e-4, weight_decay=0.005, clipvalue=50.0)
    loss_fn = keras.losses.BinaryCrossentropy()
    x, y = batch[0]["features"], batch[1]

    @tf.function
    def train_step(x, y):
        with tf.GradientTape() as tape:
            loss = loss_fn(y, memory(x, training=True))
        grads = tape.gradient(loss, memory.trainable_variables)
        optimizer.apply_gradients(zip(grads, memory.trainable_variables, strict=True))
        return loss

    step = time_call(lambda: train_step(x, y), warmup=1, repeats=repeats)
    return {
        "preset": preset,
        "clip": [clip_length, *size, c],
        "pipeline_clips_per_second": pipeline_rate,
        "train_step_seconds": step,
        "train_clips_per_second": 1 / step,
        "headroom": pipeline_rate * step,
    }


def pipeline_markdown(results: list[dict]) -> str:
    lines = [
        "| preset | clip [T, h, w, C] | pipeline clips/s | train step s | train clips/s "
        "| headroom |",
        "|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r['preset']} | {r['clip']} | {r['pipeline_clips_per_second']:.1f} | "
            f"{r['train_step_seconds']:.3f} | {r['train_clips_per_second']:.2f} | "
            f"{r['headroom']:.0f}x |"
        )
    return "\n".join(lines)


def _rss_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def peak_rss_mib() -> float | None:
    """This process's peak resident memory so far (Linux VmHWM), or None."""
    try:
        return _rss_kib("VmHWM") / 1024
    except (OSError, RuntimeError):
        return None


def training_probe(
    preset: str, xla: bool, clip: tuple, repeats: int, recompute: bool = False
) -> dict:
    """One memory training step (paper recipe: BCE, RMSProp with weight decay
    and clipping) on a random clip [1, *clip, C]: median seconds, and the peak
    resident memory the steps add over the process with model and data built
    (Linux: VmHWM reset through /proc/self/clear_refs; it includes tracing the
    step, tens of MiB). Run it in a fresh process (`bench_training`)."""
    config = lvo_models.resolve_config(preset).replace(memory_recompute=recompute)
    memory = lvo_models.build_memory(config)
    optimizer = keras.optimizers.RMSprop(1e-4, weight_decay=0.005, clipvalue=50.0)
    rng = np.random.default_rng(0)
    x = tf.constant(rng.standard_normal((1, *clip, config.feature_channels)).astype(np.float32))
    y = tf.constant((rng.random((1, *clip, 1)) > 0.8).astype(np.float32))

    @tf.function(jit_compile=xla or None)
    def train_step(x, y):
        with tf.GradientTape() as tape:
            p = memory(x, training=True)
            loss = tf.reduce_mean(keras.losses.binary_crossentropy(y, p))
        grads = tape.gradient(loss, memory.trainable_variables)
        optimizer.apply_gradients(zip(grads, memory.trainable_variables, strict=True))
        return loss

    before = _rss_kib("VmRSS")
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # resets VmHWM to the current RSS
    seconds = time_call(lambda: train_step(x, y), warmup=1, repeats=repeats)
    peak = _rss_kib("VmHWM")  # freed memory is reused by later steps: one step's peak
    return {
        "preset": preset,
        "xla": xla,
        "recompute": recompute,
        "clip": [*clip, config.feature_channels],
        "step_seconds": seconds,
        "steps_per_second": 1 / seconds,
        "peak_step_memory_mib": (peak - before) / 1024,
        "process_rss_mib": before / 1024,
    }


def bench_training(
    presets=("lite", "paper"),
    clip: tuple = (14, 60, 107),
    repeats: int = 3,
    variants: tuple = ((False, False), (True, False), (False, True)),
) -> list[dict]:
    """`training_probe` for each preset and (xla, recompute) variant, each in
    a fresh Python process so that peak memory is its own."""
    results = []
    for preset in presets:
        for xla, recompute in variants:
            code = (
                "import json; from lvo_tf import perf; "
                f"print('RESULT', json.dumps(perf.training_probe({preset!r}, {xla}, "
                f"{tuple(clip)!r}, {repeats}, {recompute})))"
            )
            results.append(_run_probe(code, f"training probe {preset} xla={xla}"))
    return results


def training_markdown(results: list[dict]) -> str:
    lines = [
        "| preset | clip [T, h, w, C] | XLA | recompute | s / step | steps/s "
        "| peak memory of a step (MiB) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r['preset']} | {r['clip']} | {'yes' if r['xla'] else 'no'} | "
            f"{'yes' if r['recompute'] else 'no'} | {r['step_seconds']:.3f} | "
            f"{r['steps_per_second']:.2f} | {r['peak_step_memory_mib']:.0f} |"
        )
    return "\n".join(lines)


def _run_probe(code: str, what: str) -> dict:
    """Runs `code` (which prints 'RESULT <json>') in a fresh Python process."""
    import json
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    line = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
    if proc.returncode or not line:
        raise RuntimeError(f"{what} failed:\n{proc.stderr[-2000:]}")
    return json.loads(line[0][len("RESULT ") :])


def segment_probe(
    preset: str,
    process_height: int | None,
    frames: int,
    repeats: int,
    height: int = 480,
    width: int = 854,
    prefetch: tuple[int, ...] = (0, 32),
    stream_batch: int = 8,
) -> dict:
    """`segment` on a synthetic 854x480 video of `frames` JPEG frames, end to
    end (read, resize, DIS flow, streams, memory, upsampling, threshold, mask
    PNGs: `run.segment_sequence`, the code `segment` runs), with its inputs
    prepared inline (`prefetch` 0) and on a thread; and in the same process
    each stage alone on the same data, their per-frame sum (memory counted
    once per window frame, as the overlapping windows run it), the dense CRF
    (not part of the default), and the process's peak resident memory
    while segmenting (model loaded, functions traced; Linux VmHWM).
    `preset` "lite" is the shipped default model; "paper" random weights.
    Run it in a fresh process (`bench_segment`)."""
    import tempfile

    from lvo_tf import default_model, io_utils
    from lvo_tf.data import flow as flow_lib
    from lvo_tf.data import readers, synthetic
    from lvo_tf.inference import crf, run
    from lvo_tf.inference.segmenter import LVORunner, StageTimes, window_starts

    if preset == "lite":
        model, info = default_model.load()
        flow_method = info["flow_method"]
    else:
        model, flow_method = lvo_models.build_lvo(preset), flow_lib.DEFAULT_METHOD
    runner = LVORunner(model, stream_batch=stream_batch)
    options = run.SegmentOptions(overlay=False)
    world = synthetic.WorldConfig(height=height, width=width, frames=frames)
    video = synthetic.render_video(np.random.default_rng(0), world)
    result = {
        "preset": preset,
        "weights": "default model" if preset == "lite" else "random",
        "frame": [height, width],
        "process_height": process_height,
        "frames": frames,
        "window": options.window,
        "overlap": options.overlap,
        "flow_method": flow_method,
        "stream_batch": stream_batch,
    }

    def shrink(f):
        return readers.shrink_to_height(f, process_height)

    with tempfile.TemporaryDirectory() as tmp:
        stems = [f"{i:05d}" for i in range(frames)]
        paths = []
        for stem, frame in zip(stems, video.frames, strict=True):
            paths.append(os.path.join(tmp, stem + ".jpg"))
            io_utils.write_image(paths[-1], frame[..., ::-1])

        def end_to_end(run_dir, n, ahead):
            flows = flow_lib.FlowCache(os.path.join(run_dir, "flow"), flow_method)
            times = StageTimes()
            start = time.perf_counter()
            run.segment_sequence(
                runner,
                stems[:n],
                lambda i: readers.read_frame(paths[i]),
                lambda i, frame: flows.field("v", stems[:n], i, frame),
                os.path.join(run_dir, "masks"),
                options,
                times,
                shrink=shrink,
                prefetch=ahead,
            )
            return time.perf_counter() - start, times

        del video
        end_to_end(os.path.join(tmp, "warmup"), min(3, frames), 0)  # traces the functions
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # resets VmHWM: the peak below is segment's own
        result["end_to_end"] = {}
        for ahead in prefetch:
            runs = []
            for r in range(repeats):
                logging.info("segment %s (prefetch %d): run %d/%d", preset, ahead, r + 1, repeats)
                runs.append(end_to_end(os.path.join(tmp, f"p{ahead}_{r}"), frames, ahead))
            seconds, times = sorted(runs, key=lambda x: x[0])[len(runs) // 2]
            result["end_to_end"][str(ahead)] = {
                "seconds_per_frame": seconds / frames,
                "frames_per_second": frames / seconds,
                "stage_seconds_per_frame": {k: v / frames for k, v in vars(times).items()},
            }
        result["peak_memory_mib"] = peak_rss_mib()  # of the process, while segmenting

        # Each stage alone, on the same frames.
        def timed(fn):
            return time_call(fn, warmup=1, repeats=repeats)

        stages = {}
        originals = [readers.read_frame(p) for p in paths]
        small = np.stack([shrink(f) for f in originals])
        stages["read"] = timed(lambda: [shrink(readers.read_frame(p)) for p in paths]) / frames
        estimator = flow_lib.FlowEstimator(flow_method)
        pairs = min(frames - 1, 8)
        stages["flow"] = timed(lambda: [estimator(small[i], small[i + 1]) for i in range(pairs)])
        stages["flow"] /= pairs
        flow = flow_lib.clip_flow(small, flow_method).astype(np.float32)
        n = min(options.window, frames)
        stages["streams"] = timed(lambda: runner.features(small[:n], flow[:n])) / n
        feats = runner.features(small[:n], flow[:n])
        memory_frames = sum(
            min(s + options.window, frames) - s
            for s in window_starts(frames, options.window, options.overlap)
        )
        stages["memory"] = timed(lambda: runner.coarse(feats)) / n * memory_frames / frames
        coarse = runner.coarse(feats)
        stages["upsample"] = timed(lambda: runner.upsample(coarse[:1], small[:1]))
        p = runner.upsample(coarse[:1], small[:1])[0]

        def write():
            mask = run.resize_probability(p, originals[0].shape[:2]) > 0.5
            io_utils.write_image(os.path.join(tmp, "m.png"), mask.astype(np.uint8) * 255)

        stages["write"] = timed(write)
        # The CRF as `segment` runs it by default: at the processing size,
        # its marginal upsampled (and, for reference, at the video's size).
        full_p = run.resize_probability(p, originals[0].shape[:2])
        result["crf_seconds_per_frame"] = timed(
            lambda: run.to_mask(p, small[0], originals[0], crf.CRFParams())
        )
        result["crf_full_size_seconds_per_frame"] = timed(
            lambda: crf.refine(originals[0], full_p, crf.CRFParams())
        )
        result["stage_seconds_per_frame"] = stages
        result["sum_of_stages"] = sum(stages.values())
        for v in result["end_to_end"].values():
            v["vs_sum_of_stages"] = v["seconds_per_frame"] / result["sum_of_stages"]
    return result


def bench_segment(variants=None, repeats: int = 3) -> list[dict]:
    """`segment_probe` for each (preset, process height, frames), each in a
    fresh process so that its peak memory is its own; by default the shipped
    model at its manifest's processing height and at 854x480, and `paper`."""
    if variants is None:
        from lvo_tf import default_model

        height = default_model.manifest()["process_height"]
        variants = (("lite", height, 60), ("lite", None, 40), ("paper", None, 8))
    results = []
    for preset, process_height, frames in variants:
        code = (
            "import json; from lvo_tf import perf; "
            f"print('RESULT', json.dumps(perf.to_jsonable(perf.segment_probe({preset!r}, "
            f"{process_height!r}, {frames}, {repeats}))))"
        )
        results.append(_run_probe(code, f"segment probe {preset} at {process_height}"))
    return results


def segment_markdown(results: list[dict]) -> str:
    lines = [
        "| model | processed at | frames | end to end (`--nocrf`), inputs inline: frames/s | "
        "inputs prefetched: frames/s | speed-up | sum of stages, s / frame | "
        "end to end (prefetched) vs sum | peak memory (MiB) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        inline, ahead = r["end_to_end"]["0"], r["end_to_end"]["32"]
        size = f"{r['process_height']} rows" if r["process_height"] else "854x480"
        lines.append(
            f"| {r['preset']} ({r['weights']}) | {size} | {r['frames']} | "
            f"{inline['frames_per_second']:.2f} | {ahead['frames_per_second']:.2f} | "
            f"{inline['seconds_per_frame'] / ahead['seconds_per_frame']:.2f}x | "
            f"{r['sum_of_stages']:.3f} | {ahead['vs_sum_of_stages']:.2f}x | "
            f"{r['peak_memory_mib']:.0f} |"
        )
    names = list(results[0]["stage_seconds_per_frame"])
    lines += [
        "",
        "Each stage alone, s / frame (same run):",
        "",
        "| model | processed at | "
        + " | ".join(names)
        + " | CRF at the processing size (the default) | CRF at the video's size |",
        "|---|---|" + "---|" * len(names) + "---|---|",
    ]
    for r in results:
        size = f"{r['process_height']} rows" if r["process_height"] else "854x480"
        cells = " | ".join(f"{r['stage_seconds_per_frame'][k]:.4f}" for k in names)
        lines.append(
            f"| {r['preset']} | {size} | {cells} | {r['crf_seconds_per_frame']:.3f} "
            f"| {r['crf_full_size_seconds_per_frame']:.3f} |"
        )
    return "\n".join(lines)


def _folder_bytes(path: str) -> int:
    if os.path.isfile(path):
        return os.path.getsize(path)
    return sum(
        os.path.getsize(os.path.join(root, f)) for root, _, files in os.walk(path) for f in files
    )


def bench_export(
    preset: str = "lite", height: int = 480, width: int = 854, steps: int = 8, repeats: int = 3
) -> dict:
    """Frames per second of one clip through Keras eager, the exported
    SavedModel, XLA-compiled TensorFlow and ONNX Runtime, in one run, with the
    artifacts' sizes (random weights; speed does not depend on them)."""
    import tempfile

    from export import serving

    model = lvo_models.build_lvo(preset)
    frames, flow = serving.test_clip(height, width, steps)
    result = {"preset": preset, "clip": [1, steps, height, width], "ways": {}}
    with tempfile.TemporaryDirectory() as tmp:
        target = serving.export_saved_model(model, os.path.join(tmp, "lvo"))
        onnx_path = os.path.join(tmp, "lvo.onnx")
        serving.convert_to_onnx(target, onnx_path)
        result["saved_model_mb"] = _folder_bytes(target) / 1e6
        result["onnx_mb"] = _folder_bytes(onnx_path) / 1e6
        loaded, fn = serving.load_signature(target)
        session = serving.onnx_session(onnx_path)
        xla = tf.function(
            lambda f, w: model({"frames": f, "flow": w}), jit_compile=True, autograph=False
        )
        ways = {
            "keras_eager": lambda: model({"frames": frames, "flow": flow}),
            "saved_model": lambda: fn(frames=tf.constant(frames), flow=tf.constant(flow)),
            "xla": lambda: xla(tf.constant(frames), tf.constant(flow)),
            "onnx_runtime": lambda: serving.run_onnx(session, frames, flow),
        }
        for name, run in ways.items():
            logging.info("export benchmark: %s (%s)", name, preset)
            try:
                seconds = time_call(run, warmup=1, repeats=repeats)
                result["ways"][name] = {"frames_per_second": steps / seconds}
            except Exception as e:  # e.g. an op XLA cannot compile: report, do not hide
                result["ways"][name] = {"error": f"{type(e).__name__}: {str(e)[:200]}"}
        del loaded
    return result


def export_markdown(results: list[dict]) -> str:
    lines = [
        "| preset | clip [B, T, H, W] | way | frames/s | vs Keras eager |",
        "|---|---|---|---|---|",
    ]
    for r in results:
        base = r["ways"]["keras_eager"].get("frames_per_second")
        for name, v in r["ways"].items():
            if "error" in v:
                lines.append(f"| {r['preset']} | {r['clip']} | {name} | failed: {v['error']} | |")
                continue
            ratio = f"{v['frames_per_second'] / base:.2f}x" if base else ""
            lines.append(
                f"| {r['preset']} | {r['clip']} | {name} | {v['frames_per_second']:.2f} | {ratio} |"
            )
    sizes = ", ".join(
        f"{r['preset']}: SavedModel {r['saved_model_mb']:.1f} MB, ONNX {r['onnx_mb']:.1f} MB"
        for r in results
    )
    return "\n".join(lines) + f"\n\nArtifact sizes: {sizes}."


def to_jsonable(value):
    if isinstance(value, dict):
        return {k: to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    return value

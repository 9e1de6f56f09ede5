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

    per_frame = {
        "appearance": (
            appearance,
            frames,
            n,
            graph_flops(appearance, tf.TensorSpec((1, hp, wp, 3), tf.uint8)),
        ),
        "motion": (motion, flow, n, graph_flops(motion, tf.TensorSpec((1, hp, wp, 2), tf.float32))),
        "memory": (
            memory,
            features,
            clip_length,
            directions
            * conv_gru_step_flops(
                h8, w8, config.feature_channels, config.memory_filters, config.memory_kernel
            ),
        ),
        "head": (
            head,
            hidden,
            clip_length,
            graph_flops(head, tf.TensorSpec((1, 1, h8, w8, directions * config.memory_filters))),
        ),
    }
    result = {"preset": preset, "frame": [height, width], "padded": [hp, wp], "stages": {}}
    for name, (fn, x, frames_in_call, flops) in per_frame.items():
        compiled = tf.function(fn, autograph=False)
        logging.info("stage %s (%s): timing %d runs", name, preset, repeats)
        seconds = time_call(lambda c=compiled, v=x: c(v), warmup=1, repeats=repeats)
        seconds /= frames_in_call
        result["stages"][name] = {
            "seconds_per_frame": seconds,
            "gflop_per_frame": flops / 1e9,
            "gflops": flops / seconds / 1e9,
        }
    total = sum(v["seconds_per_frame"] for v in result["stages"].values())
    result["total_seconds_per_frame"] = total
    return result


def stages_markdown(results: list[dict]) -> str:
    lines = [
        "| preset | stage | s / frame | GFLOP / frame | GFLOP/s |",
        "|---|---|---|---|---|",
    ]
    for r in results:
        for name, v in r["stages"].items():
            lines.append(
                f"| {r['preset']} | {name} | {v['seconds_per_frame']:.4f} | "
                f"{v['gflop_per_frame']:.2f} | {v['gflops']:.0f} |"
            )
        lines.append(
            f"| {r['preset']} | **all four** | **{r['total_seconds_per_frame']:.3f}** | | |"
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
    import json
    import subprocess
    import sys

    results = []
    for preset in presets:
        for xla, recompute in variants:
            code = (
                "import json; from lvo_tf import perf; "
                f"print('RESULT', json.dumps(perf.training_probe({preset!r}, {xla}, "
                f"{tuple(clip)!r}, {repeats}, {recompute})))"
            )
            proc = subprocess.run(
                [sys.executable, "-c", code], capture_output=True, text=True, check=False
            )
            line = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
            if proc.returncode or not line:
                raise RuntimeError(
                    f"training probe {preset} xla={xla} failed:\n{proc.stderr[-2000:]}"
                )
            results.append(json.loads(line[0][len("RESULT ") :]))
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

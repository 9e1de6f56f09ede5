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
    ways = {"eager": lambda: memory(x), "tf_function": lambda: graph(x), "xla": lambda: xla(x)}
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
    for name in ("eager", "tf_function", "xla"):
        v = r[name]
        lines.append(
            f"| {name} | {v['seconds_per_step']:.3f} | {v['gflops']:.0f} | "
            f"{v['fraction_of_plain_conv']:.2f}x |"
        )
    p = r["plain_conv2d_same_work"]
    lines.append(
        f"| plain `tf.nn.conv2d` (same FLOPs) | {p['seconds']:.3f} | {p['gflops']:.0f} | 1.00x |"
    )
    lines += ["", f"fp32 matmul ceiling in the same run: {r['matmul_gflops']:.0f} GFLOP/s."]
    return "\n".join(lines)


def to_jsonable(value):
    if isinstance(value, dict):
        return {k: to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    return value

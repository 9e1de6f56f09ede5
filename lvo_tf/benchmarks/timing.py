"""Timing and accounting helpers shared by the benchmark sections: medians of
wall time, FLOPs of convolutions (by hand and from TensorFlow's graph), each
convolution of a graph timed alone (the ceiling a stage is measured against),
the machine's matmul ceiling, peak resident memory, and fresh-process probes."""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

import keras
import numpy as np
import tensorflow as tf
from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2


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


def graph_flops(fn, *specs: tf.TensorSpec) -> int:
    """Float operations of `fn` on inputs of these static shapes, counted by
    TensorFlow's graph profiler (no while loops inside)."""
    concrete = tf.function(fn, autograph=False).get_concrete_function(*specs)
    graph = convert_variables_to_constants_v2(concrete).graph
    builder = tf.compat.v1.profiler.ProfileOptionBuilder
    options = builder(builder.float_operation()).with_empty_output().build()
    return tf.compat.v1.profiler.profile(graph=graph, options=options).total_float_ops


def conv_ops(fn, *specs: tf.TensorSpec) -> list[dict]:
    """The convolutions (Conv2D, Conv3D) `fn` runs on inputs of these static shapes, as
    TensorFlow's graph has them (dilated convolutions appear as the plain
    convolution between SpaceToBatch and BatchToSpace), each with a count."""
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


def rss_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def peak_rss_mib() -> float | None:
    """This process's peak resident memory so far (Linux VmHWM), or None."""
    try:
        return rss_kib("VmHWM") / 1024
    except (OSError, RuntimeError):
        return None


def in_fresh_process(module: str, function: str, *args, what: str | None = None) -> dict:
    """`module.function(*args)` (arguments with a Python repr) run in a fresh
    Python process, so that the peak memory it measures is its own; its
    JSON-able result."""
    call = f"{function}({', '.join(repr(a) for a in args)})"
    code = (
        f"import json; from lvo_tf.benchmarks import timing; import {module} as probe; "
        f"print('RESULT', json.dumps(timing.to_jsonable(probe.{call})))"
    )
    return run_probe(code, what or f"{module}.{call}")


def run_probe(code: str, what: str) -> dict:
    """Runs `code` (which prints 'RESULT <json>') in a fresh Python process."""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    line = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
    if proc.returncode or not line:
        raise RuntimeError(f"{what} failed:\n{proc.stderr[-2000:]}")
    return json.loads(line[0][len("RESULT ") :])


def to_jsonable(value):
    if isinstance(value, dict):
        return {k: to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    return value

"""Section `convgru`: one bidirectional ConvGRU step at the paper's size,
eager, tf.function and XLA, next to the textbook six-convolution design and a
plain `tf.nn.conv2d` of the same FLOPs, all in one run."""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from lvo_tf.benchmarks import timing
from lvo_tf.layers import ConvGRU


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

    step_flops = 2 * timing.conv_gru_step_flops(height, width, channels, filters, kernel)
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
        seconds = timing.time_call(fn, warmup=1, repeats=repeats) / steps
        results[name] = {"seconds_per_step": seconds, "gflops": step_flops / seconds / 1e9}

    # A plain convolution of the same total work: a 7x7 conv over both
    # directions' frames (batch 2) with C_in = channels + filters, 3F out.
    plain_in = tf.random.normal((2, height, width, channels + filters))
    plain_w = tf.random.normal((kernel, kernel, channels + filters, 3 * filters))
    plain = tf.function(lambda: tf.nn.conv2d(plain_in, plain_w, 1, "SAME"))
    plain_flops = timing.conv_flops(height, width, kernel, channels + filters, 3 * filters, batch=2)
    assert plain_flops == step_flops
    seconds = timing.time_call(plain, repeats=repeats)
    results["plain_conv2d_same_work"] = {"seconds": seconds, "gflops": plain_flops / seconds / 1e9}
    for name in ways:
        results[name]["fraction_of_plain_conv"] = (
            results[name]["gflops"] / results["plain_conv2d_same_work"]["gflops"]
        )
    results["matmul_gflops"] = timing.matmul_gflops(repeats=repeats)
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

"""Section `training`: one memory training step (the paper's recipe) per preset,
with and without XLA and recomputation: seconds, steps/s and the peak memory
the step adds, each in a fresh process."""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from lvo_tf import models as lvo_models
from lvo_tf.benchmarks import timing


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

    before = timing.rss_kib("VmRSS")
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # resets VmHWM to the current RSS
    seconds = timing.time_call(lambda: train_step(x, y), warmup=1, repeats=repeats)
    peak = timing.rss_kib("VmHWM")  # freed memory is reused by later steps: one step's peak
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
            results.append(
                timing.in_fresh_process(
                    __name__,
                    "training_probe",
                    preset,
                    xla,
                    tuple(clip),
                    repeats,
                    recompute,
                    what=f"training probe {preset} xla={xla}",
                )
            )
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

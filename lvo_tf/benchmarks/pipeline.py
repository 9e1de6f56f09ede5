"""Section `pipeline`: clips per second the tf.data pipeline delivers from a
feature cache, next to what one memory training step consumes."""

from __future__ import annotations

import tempfile
import time

import keras
import numpy as np
import tensorflow as tf

from lvo_tf import models as lvo_models
from lvo_tf.benchmarks import timing
from lvo_tf.data.features import FeatureCache
from lvo_tf.data.pipeline import ClipConfig, FeatureSource, clip_dataset


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

    step = timing.time_call(lambda: train_step(x, y), warmup=1, repeats=repeats)
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

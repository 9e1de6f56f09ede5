r"""Trains LVO's visual memory and head on cached stream features (or on frames + flow).

    python -m lvo_tf.train --flagfile=flags/lvo_synthetic.flags
    python -m lvo_tf.train --feature_dir=out/features/lite --output_dir=out/train/lite
    python -m lvo_tf.train --data_root=DAVIS --appearance_weights=... --motion_weights=... \
        --output_dir=out/train/frames     # the appearance reduction trains too

With --data_root the whole model trains with DeepLab and MP-Net frozen and
the result is `lvo.weights.h5` (the whole model) instead of the memory part.

Writes into --output_dir: `config.json` (the resolved settings),
`checkpoints/` (the last --keep_checkpoints; a re-run resumes from the latest
with the same step, optimizer state and data position), `tensorboard/`
(loss, learning rate, gradient norm, validation J), `history.jsonl`,
`memory.weights.h5` (the memory part, loadable with
`lvo_tf.models.weights.load_weights(model, path, part="memory")`),
`training_curves.png` and `summary.json`. Defaults are the paper's recipe;
see lvo_tf/training/memory_trainer.py.
"""

from absl import app, flags, logging

from lvo_tf.common import cli, flag_values
from lvo_tf.training import loop, memory_trainer

# Keyed by the memory_trainer.TrainConfig field each flag sets.
_FLAGS = {
    "feature_dir": flags.DEFINE_string("feature_dir", None, "Training feature cache."),
    "data_root": flags.DEFINE_string(
        "data_root",
        None,
        "Instead of --feature_dir: train on frames + flow of this DAVIS-layout root.",
    ),
    "train_split": flags.DEFINE_string("train_split", "train", "With --data_root: training split."),
    "val_split": flags.DEFINE_string("val_split", None, "With --data_root: validation split."),
    "flow_method": flags.DEFINE_string(
        "flow_method", "dis_medium", "With --data_root: flow method."
    ),
    "flow_dir": flags.DEFINE_string("flow_dir", None, "With --data_root: flow cache root."),
    "appearance_weights": flags.DEFINE_string(
        "appearance_weights", None, "With --data_root: appearance part to start from."
    ),
    "motion_weights": flags.DEFINE_string(
        "motion_weights", None, "With --data_root: motion part to use."
    ),
    "val_feature_dir": flags.DEFINE_string("val_feature_dir", None, "Validation feature cache."),
    "output_dir": flags.DEFINE_string("output_dir", None, "Checkpoints, logs, weights."),
    "preset": flags.DEFINE_string("preset", "lite", "Model preset: lite or paper."),
    "memory_type": flags.DEFINE_enum(
        "memory", "bidirectional", list(memory_trainer.MEMORY_TYPES), "Visual memory (ablations)."
    ),
    "streams": flags.DEFINE_enum(
        "streams",
        "both",
        ["both", "motion", "appearance"],
        "Features the memory sees; the other stream is zeroed (ablations, cached features only).",
    ),
    "recompute": flags.DEFINE_bool(
        "recompute", False, "Gradient checkpointing of the memory (long clips, less memory)."
    ),
    "learning_rate": flags.DEFINE_float("learning_rate", 1e-4, "RMSProp learning rate."),
    "weight_decay": flags.DEFINE_float("weight_decay", 0.005, "Weight decay."),
    "clip_value": flags.DEFINE_float("clip_value", 50.0, "Gradients are clipped to [-v, v]."),
    "clip_length": flags.DEFINE_integer("clip_length", 14, "Frames per training clip."),
    "batch_size": flags.DEFINE_integer("batch_size", 1, "Clips per step."),
    "stop_and_go": flags.DEFINE_float("stop_and_go", 0.2, "Fraction of stop-and-go clips."),
    "stop_frames": flags.DEFINE_integer("stop_frames", 5, "Repeated frames in stop-and-go clips."),
    "appearance_dropout": flags.DEFINE_float(
        "appearance_dropout",
        0.0,
        "Fraction of clips whose appearance channels are zeroed (cached features only).",
    ),
    "init_weights": flags.DEFINE_string(
        "init_weights",
        None,
        "Start the memory and head from this model's: a shipped model's name (synthetic) "
        "or a whole-model .weights.h5.",
    ),
}
_MOTION_GAIN = flags.DEFINE_list(
    "motion_gain",
    None,
    "'lo,hi': multiply each clip's motion channel by a log-uniform factor in [lo, hi] "
    "(cached features only).",
)
_LOOP = loop.define_loop_flags(steps=30_000)
flags.mark_flags_as_required(["output_dir"])


def main(argv):
    del argv
    try:
        config = memory_trainer.TrainConfig(
            **loop.loop_flag_values(_LOOP),
            **{field: holder.value for field, holder in _FLAGS.items()},
            motion_gain=flag_values.parse_pair("motion_gain", _MOTION_GAIN.value),
        )
        config.validate()
    except ValueError as e:
        raise app.UsageError(f"--{e}") from None
    summary = memory_trainer.train(config)
    logging.info("Done: %s", summary)


if __name__ == "__main__":
    cli.run(main)

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

_FEATURE_DIR = flags.DEFINE_string("feature_dir", None, "Training feature cache.")
_DATA_ROOT = flags.DEFINE_string(
    "data_root", None, "Instead of --feature_dir: train on frames + flow of this DAVIS-layout root."
)
_TRAIN_SPLIT = flags.DEFINE_string("train_split", "train", "With --data_root: training split.")
_VAL_SPLIT = flags.DEFINE_string("val_split", None, "With --data_root: validation split.")
_FLOW_METHOD = flags.DEFINE_string("flow_method", "dis_medium", "With --data_root: flow method.")
_FLOW_DIR = flags.DEFINE_string("flow_dir", None, "With --data_root: flow cache root.")
_APPEARANCE = flags.DEFINE_string(
    "appearance_weights", None, "With --data_root: appearance part to start from."
)
_MOTION = flags.DEFINE_string("motion_weights", None, "With --data_root: motion part to use.")
_VAL_FEATURE_DIR = flags.DEFINE_string("val_feature_dir", None, "Validation feature cache.")
_OUTPUT_DIR = flags.DEFINE_string("output_dir", None, "Checkpoints, logs, weights.")
_PRESET = flags.DEFINE_string("preset", "lite", "Model preset: lite or paper.")
_MEMORY = flags.DEFINE_enum(
    "memory", "bidirectional", list(memory_trainer.MEMORY_TYPES), "Visual memory (ablations)."
)
_STREAMS = flags.DEFINE_enum(
    "streams",
    "both",
    ["both", "motion", "appearance"],
    "Features the memory sees; the other stream is zeroed (ablations, cached features only).",
)
_RECOMPUTE = flags.DEFINE_bool(
    "recompute", False, "Gradient checkpointing of the memory (long clips, less memory)."
)
_LR = flags.DEFINE_float("learning_rate", 1e-4, "RMSProp learning rate.")
_WD = flags.DEFINE_float("weight_decay", 0.005, "Weight decay.")
_CLIP = flags.DEFINE_float("clip_value", 50.0, "Gradients are clipped to [-v, v].")
_CLIP_LENGTH = flags.DEFINE_integer("clip_length", 14, "Frames per training clip.")
_BATCH = flags.DEFINE_integer("batch_size", 1, "Clips per step.")
_STOP_AND_GO = flags.DEFINE_float("stop_and_go", 0.2, "Fraction of stop-and-go clips.")
_STOP_FRAMES = flags.DEFINE_integer("stop_frames", 5, "Repeated frames in stop-and-go clips.")
_MOTION_GAIN = flags.DEFINE_list(
    "motion_gain",
    None,
    "'lo,hi': multiply each clip's motion channel by a log-uniform factor in [lo, hi] "
    "(cached features only).",
)
_APPEARANCE_DROPOUT = flags.DEFINE_float(
    "appearance_dropout",
    0.0,
    "Fraction of clips whose appearance channels are zeroed (cached features only).",
)
_INIT = flags.DEFINE_string(
    "init_weights",
    None,
    "Start the memory and head from this model's: a shipped model's name (synthetic) "
    "or a whole-model .weights.h5.",
)
_LOOP = loop.define_loop_flags(steps=30_000)
flags.mark_flags_as_required(["output_dir"])


def main(argv):
    del argv
    try:
        loop_values = loop.loop_flag_values(_LOOP)
        motion_gain = flag_values.parse_pair("motion_gain", _MOTION_GAIN.value)
    except ValueError as e:
        raise app.UsageError(str(e)) from None
    config = memory_trainer.TrainConfig(
        **loop_values,
        feature_dir=_FEATURE_DIR.value,
        data_root=_DATA_ROOT.value,
        train_split=_TRAIN_SPLIT.value,
        val_split=_VAL_SPLIT.value,
        flow_method=_FLOW_METHOD.value,
        flow_dir=_FLOW_DIR.value,
        appearance_weights=_APPEARANCE.value,
        motion_weights=_MOTION.value,
        output_dir=_OUTPUT_DIR.value,
        preset=_PRESET.value,
        memory_type=_MEMORY.value,
        streams=_STREAMS.value,
        recompute=_RECOMPUTE.value,
        val_feature_dir=_VAL_FEATURE_DIR.value,
        learning_rate=_LR.value,
        weight_decay=_WD.value,
        clip_value=_CLIP.value,
        clip_length=_CLIP_LENGTH.value,
        batch_size=_BATCH.value,
        stop_and_go=_STOP_AND_GO.value,
        stop_frames=_STOP_FRAMES.value,
        motion_gain=motion_gain,
        appearance_dropout=_APPEARANCE_DROPOUT.value,
        init_weights=_INIT.value,
    )
    try:
        config.validate()
    except ValueError as e:
        raise app.UsageError(f"--{e}") from None
    summary = memory_trainer.train(config)
    logging.info("Done: %s", summary)


if __name__ == "__main__":
    cli.run(main)

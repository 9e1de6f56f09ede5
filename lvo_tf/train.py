r"""Trains LVO's visual memory and head on cached stream features.

    python -m lvo_tf.train --flagfile=flags/lvo_synthetic.flags
    python -m lvo_tf.train --feature_dir=out/features/lite --output_dir=out/train/lite

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

from lvo_tf.training import loop, memory_trainer

_FEATURE_DIR = flags.DEFINE_string("feature_dir", None, "Training feature cache.")
_VAL_FEATURE_DIR = flags.DEFINE_string("val_feature_dir", None, "Validation feature cache.")
_OUTPUT_DIR = flags.DEFINE_string("output_dir", None, "Checkpoints, logs, weights.")
_PRESET = flags.DEFINE_string("preset", "lite", "Model preset: lite or paper.")
_LR = flags.DEFINE_float("learning_rate", 1e-4, "RMSProp learning rate.")
_WD = flags.DEFINE_float("weight_decay", 0.005, "Weight decay.")
_CLIP = flags.DEFINE_float("clip_value", 50.0, "Gradients are clipped to [-v, v].")
_CLIP_LENGTH = flags.DEFINE_integer("clip_length", 14, "Frames per training clip.")
_BATCH = flags.DEFINE_integer("batch_size", 1, "Clips per step.")
_STOP_AND_GO = flags.DEFINE_float("stop_and_go", 0.2, "Fraction of stop-and-go clips.")
_STOP_FRAMES = flags.DEFINE_integer("stop_frames", 5, "Repeated frames in stop-and-go clips.")
_LOOP = loop.define_loop_flags(steps=30_000)
flags.mark_flags_as_required(["feature_dir", "output_dir"])


def main(argv):
    del argv
    try:
        loop_values = loop.loop_flag_values(_LOOP)
    except ValueError as e:
        raise app.UsageError(str(e)) from None
    config = memory_trainer.TrainConfig(
        **loop_values,
        feature_dir=_FEATURE_DIR.value,
        output_dir=_OUTPUT_DIR.value,
        preset=_PRESET.value,
        val_feature_dir=_VAL_FEATURE_DIR.value,
        learning_rate=_LR.value,
        weight_decay=_WD.value,
        clip_value=_CLIP.value,
        clip_length=_CLIP_LENGTH.value,
        batch_size=_BATCH.value,
        stop_and_go=_STOP_AND_GO.value,
        stop_frames=_STOP_FRAMES.value,
    )
    try:
        config.validate()
    except ValueError as e:
        raise app.UsageError(f"--{e}") from None
    summary = memory_trainer.train(config)
    logging.info("Done: %s", summary)


if __name__ == "__main__":
    app.run(main)

r"""Trains MP-Net, LVO's motion stream, on flow with independently-moving labels.

    python -m lvo_tf.train_mpnet --flagfile=flags/mpnet_synthetic.flags

Data: a dataset in the layout `lvo_tf.synthesize` writes (frames, and
`Motion/480p/<seq>/*.png` labels), `--flow=dis_medium` (the inference flow,
cached in `--flow_dir`) or `--flow=ground_truth`. Writes into --output_dir the
same things as `lvo_tf.train` (config, checkpoints with exact resume,
TensorBoard, history, curves, summary) and `motion.weights.h5`, which loads
into an LVO model of the same preset as its `motion` part.
"""

from absl import app, flags, logging

from lvo_tf.training import loop, mpnet_trainer

_DATA_ROOT = flags.DEFINE_string("data_root", None, "Dataset with Motion/ labels.")
_OUTPUT_DIR = flags.DEFINE_string("output_dir", None, "Checkpoints, logs, weights.")
_PRESET = flags.DEFINE_string("preset", "lite", "Model preset whose MP-Net to train.")
_FLOW = flags.DEFINE_string("flow", "dis_medium", "A flow method, or ground_truth.")
_FLOW_DIR = flags.DEFINE_string("flow_dir", None, "Flow cache (default DATA_ROOT/FlowCache).")
_TRAIN_SPLIT = flags.DEFINE_string("train_split", "train", "Image set to train on.")
_VAL_SPLIT = flags.DEFINE_string("val_split", "val", "Image set to validate on.")
_CROP = flags.DEFINE_list("crop", None, "Random crop 'h,w', multiples of 16 (default none).")
_BATCH = flags.DEFINE_integer("batch_size", 8, "Flow fields per step.")
_STEPS = flags.DEFINE_integer("steps", 20_000, "Training steps.")
_LR = flags.DEFINE_float("learning_rate", 1e-3, "Adam learning rate.")
_POS = flags.DEFINE_float("positive_weight", None, "Weight of moving pixels (default: auto).")
_SEED = flags.DEFINE_integer("seed", 0, "Seed of weights and examples.")
_CHECKPOINT_EVERY = flags.DEFINE_integer("checkpoint_every", 500, "Steps between checkpoints.")
_KEEP = flags.DEFINE_integer("keep_checkpoints", 3, "Checkpoints kept.")
_LOG_EVERY = flags.DEFINE_integer("log_every", 50, "Steps between progress lines.")
_VALIDATE_EVERY = flags.DEFINE_integer("validate_every", 1000, "Steps between validations.")
_VAL_EXAMPLES = flags.DEFINE_integer("val_examples", 64, "Flow fields per validation.")
flags.mark_flags_as_required(["data_root", "output_dir"])


def main(argv):
    del argv
    try:
        crop = loop.parse_crop(_CROP.value)
    except ValueError as e:
        raise app.UsageError(str(e)) from None
    config = mpnet_trainer.MPNetTrainConfig(
        data_root=_DATA_ROOT.value,
        output_dir=_OUTPUT_DIR.value,
        preset=_PRESET.value,
        flow=_FLOW.value,
        flow_dir=_FLOW_DIR.value,
        train_split=_TRAIN_SPLIT.value,
        val_split=_VAL_SPLIT.value,
        crop=crop,
        batch_size=_BATCH.value,
        steps=_STEPS.value,
        learning_rate=_LR.value,
        positive_weight=_POS.value,
        seed=_SEED.value,
        checkpoint_every=_CHECKPOINT_EVERY.value,
        keep_checkpoints=_KEEP.value,
        log_every=_LOG_EVERY.value,
        validate_every=_VALIDATE_EVERY.value,
        val_examples=_VAL_EXAMPLES.value,
    )
    try:
        config.validate()
    except ValueError as e:
        raise app.UsageError(f"--{e}") from None
    logging.info("Done: %s", mpnet_trainer.train(config))


if __name__ == "__main__":
    app.run(main)

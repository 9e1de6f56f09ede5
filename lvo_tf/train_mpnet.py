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
_BATCH = flags.DEFINE_integer("batch_size", 8, "Flow fields per step.")
_LR = flags.DEFINE_float("learning_rate", 1e-3, "Adam learning rate.")
_POS = flags.DEFINE_float("positive_weight", None, "Weight of moving pixels (default: auto).")
_VAL_EXAMPLES = flags.DEFINE_integer("val_examples", 64, "Flow fields per validation.")
_LOOP = loop.define_loop_flags(steps=20_000)
flags.mark_flags_as_required(["data_root", "output_dir"])


def main(argv):
    del argv
    try:
        loop_values = loop.loop_flag_values(_LOOP)
    except ValueError as e:
        raise app.UsageError(str(e)) from None
    config = mpnet_trainer.MPNetTrainConfig(
        **loop_values,
        data_root=_DATA_ROOT.value,
        output_dir=_OUTPUT_DIR.value,
        preset=_PRESET.value,
        flow=_FLOW.value,
        flow_dir=_FLOW_DIR.value,
        train_split=_TRAIN_SPLIT.value,
        val_split=_VAL_SPLIT.value,
        batch_size=_BATCH.value,
        learning_rate=_LR.value,
        positive_weight=_POS.value,
        val_examples=_VAL_EXAMPLES.value,
    )
    try:
        config.validate()
    except ValueError as e:
        raise app.UsageError(f"--{e}") from None
    logging.info("Done: %s", mpnet_trainer.train(config))


if __name__ == "__main__":
    app.run(main)

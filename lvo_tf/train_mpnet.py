r"""Trains MP-Net, LVO's motion stream, on flow with independently-moving labels.

    python -m lvo_tf.train_mpnet --flagfile=flags/mpnet_synthetic.flags

Data: a dataset in the layout `lvo_tf.synthesize` writes (frames, and
`Motion/480p/<seq>/*.png` labels), `--flow=dis_medium` (the inference flow,
cached in `--flow_dir`) or `--flow=ground_truth`. Writes into --output_dir the
same things as `lvo_tf.train` (config, checkpoints with exact resume,
TensorBoard, history, curves, summary) and `motion.weights.h5`, which loads
into an LVO model of the same preset as its `motion` part.
"""

from absl import app, logging

from lvo_tf.common import cli
from lvo_tf.training import stream_trainer

_FLAGS = stream_trainer.define_flags("motion")


def main(argv):
    del argv
    try:
        config = stream_trainer.config_from_flags(_FLAGS, "motion")
    except ValueError as e:
        raise app.UsageError(f"--{str(e).removeprefix('--')}") from None
    logging.info("Done: %s", stream_trainer.train(config))


if __name__ == "__main__":
    cli.run(main)

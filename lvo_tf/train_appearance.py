r"""Trains LVO's appearance stream as a per-frame foreground (objectness) network.

    python -m lvo_tf.train_appearance --flagfile=flags/synthetic_appearance.flags

Data: a DAVIS-layout dataset (frames and `Annotations/480p/<seq>/*.png`), for
example the synthetic world (`lvo_tf.synthesize`). Trains DeepLab-LargeFOV and
the two 1x1 reduction convs with a 1x1 sigmoid classifier on top. Writes into
--output_dir the same things as `lvo_tf.train` (config, checkpoints with exact
resume, TensorBoard, history, curves, summary) and `appearance.weights.h5`,
which loads into an LVO model of the same preset as its `appearance` part. The
paper's stream is DeepLab trained on PASCAL VOC; import that instead when you
have it (`lvo_tf.models.weights.import_npz`).
"""

from absl import app, logging

from lvo_tf.common import cli
from lvo_tf.training import stream_trainer

_FLAGS = stream_trainer.define_flags("appearance")


def main(argv):
    del argv
    try:
        config = stream_trainer.config_from_flags(_FLAGS, "appearance")
    except ValueError as e:
        raise app.UsageError(f"--{str(e).removeprefix('--')}") from None
    logging.info("Done: %s", stream_trainer.train(config))


if __name__ == "__main__":
    cli.run(main)

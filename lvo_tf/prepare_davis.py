r"""Prepares DAVIS-2016 train for the real-data default model: shrunk, with folds.

    python -m lvo_tf.prepare_davis --davis_root=../shared/data/davis2016-train \
        --output_dir=out/davis/data --height=240

Writes a DAVIS-layout copy of --split at --height rows (as `segment` shrinks
video for the model), MP-Net's motion labels (the annotations: every
annotated DAVIS-2016 object moves) and the fold image sets `fold<k>` /
`except_fold<k>` (see `lvo_tf/data/prepare.py`). Resumes where it stopped.
"""

import time

from absl import app, flags, logging

from lvo_tf.common import cli
from lvo_tf.data import prepare

_DAVIS_ROOT = flags.DEFINE_string("davis_root", None, "A DAVIS-2016-layout root.")
_SPLIT = flags.DEFINE_string("split", "train", "Image set to prepare.")
_OUTPUT_DIR = flags.DEFINE_string("output_dir", None, "Where the prepared copy goes.")
_HEIGHT = flags.DEFINE_integer("height", 240, "Rows (taller frames are shrunk).", lower_bound=16)
_NUM_FOLDS = flags.DEFINE_integer("num_folds", 5, "Held-out folds to define.", lower_bound=1)
flags.mark_flags_as_required(["davis_root", "output_dir"])


def main(argv):
    del argv
    start = time.time()

    def progress(done, total, name):
        rate = done / max(time.time() - start, 1e-9)
        logging.info(
            "%s  (%d/%d frames, %.1f frames/s, ETA %.0f s)",
            name,
            done,
            total,
            rate,
            (total - done) / rate,
        )

    try:
        record = prepare.prepare(
            _DAVIS_ROOT.value,
            _OUTPUT_DIR.value,
            _HEIGHT.value,
            _SPLIT.value,
            _NUM_FOLDS.value,
            progress,
        )
    except (FileNotFoundError, ValueError) as e:
        raise app.UsageError(str(e)) from None
    logging.info(
        "Done: %d sequences, %d frames at %d rows in %.0f s -> %s; folds: %s",
        record["sequences"],
        record["frames"],
        record["height"],
        time.time() - start,
        _OUTPUT_DIR.value,
        {k: len(v) for k, v in record["folds"].items()},
    )


if __name__ == "__main__":
    cli.run(main)

r"""The demo: the default model on stop-and-go clips, and on real video if present.

    python -m lvo_tf.demo --output_dir=out/demo     # or: make demo

1. Renders --clips synthetic clips it has never seen (fresh seeds of the
   synthetic world), each with one object that moves and then stops, one
   that starts late, and a static distractor that looks like an object but
   never moves, under a moving camera.
2. Segments them with the shipped default model (lvo_tf/shipped.py)
   and with the non-learned baseline (DIS flow + homography + Otsu), both
   refined by the dense CRF as `segment` does by default (`--nocrf`: not), and
   scores both with the DAVIS protocol, overall and on the frames where every
   object is static (where motion alone cannot find them), per clip and as
   the mean over clips (one clip, lucky or unlucky, does not speak for a model).
3. If a DAVIS-2016-layout folder is at $LVO_DAVIS_DEV or
   ../shared/data/davis2016-dev, does the same for one real sequence.

Writes into --output_dir: `<clip>/masks/*.png` (0/255), `<clip>/overlay.gif`
and `<clip>/contact_sheet.png` (masks over frames; clips `synthetic_1`, ...
and the real sequence's name), `results.md` and `results.json` (the J/F table).
"""

import os

from absl import app, flags, logging

from lvo_tf import shipped
from lvo_tf.common import cli
from lvo_tf.experiments import demo

_OUTPUT_DIR = flags.DEFINE_string("output_dir", "out/demo", "Where results go.")
_FRAMES = flags.DEFINE_integer("frames", 36, "Frames of each synthetic clip.", lower_bound=8)
_SEED = flags.DEFINE_integer("seed", 7, "Seed of the first synthetic clip (then seed+1, ...).")
_CLIPS = flags.DEFINE_integer(
    "clips",
    4,
    "Synthetic clips (each a fresh seed; the table gives each and their mean).",
    lower_bound=1,
)
_DEV_ROOT = flags.DEFINE_string(
    "dev_root",
    os.environ.get("LVO_DAVIS_DEV", "../shared/data/davis2016-dev"),
    "Real sequences in the DAVIS-2016 layout (skipped when absent; '' to skip).",
)
_DEV_SEQUENCE = flags.DEFINE_string("dev_sequence", "car-shadow", "Which real sequence.")
_CRF = flags.DEFINE_bool("crf", True, "Refine both methods' masks with the dense CRF.")


def main(argv):
    del argv
    try:
        results = demo.run_demo(
            _OUTPUT_DIR.value,
            _FRAMES.value,
            _SEED.value,
            _CLIPS.value,
            _DEV_ROOT.value,
            _DEV_SEQUENCE.value,
            _CRF.value,
        )
    except (FileNotFoundError, ValueError) as e:
        raise app.UsageError(str(e)) from None
    print(demo.markdown(results, shipped.manifest()))
    logging.info("Wrote %s in %.0f s", os.path.abspath(_OUTPUT_DIR.value), results["seconds"])


if __name__ == "__main__":
    cli.run(main)

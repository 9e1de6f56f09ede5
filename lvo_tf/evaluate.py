r"""Scores a results folder with the DAVIS-2016 or the FBMS-59 protocol.

    python -m lvo_tf.evaluate --davis_root=ROOT --results_dir=RES --split=val \
        --output_json=OUT.json
    python -m lvo_tf.evaluate --dataset=fbms --fbms_root=FBMS --split=Testset \
        --results_dir=RES --output_json=OUT.json

Reads `ROOT/Annotations/480p/<seq>/*.png` (the frames listed in
`ROOT/ImageSets/480p/<split>.txt`; `--split=all` takes every annotated
sequence) and `RES/<seq>/<frame stem>.png`. Writes OUT.json
(`{"sequences": {seq: {"J": {mean, recall, decay, per_frame}, "F": {...}}},
"overall": {"J": {...}, "F": {...}, "J&F": x}, "problems": {...}}`), and next
to it OUT.md (table) and OUT.png (per-sequence bar chart). Missing, resized
or non-binary result masks are reported per sequence, not fatal.
"""

import os

from absl import app, flags, logging

from lvo_tf.common import cli, io_utils
from lvo_tf.evaluation import davis_eval, fbms_eval

_DATASET = flags.DEFINE_enum("dataset", "davis", ["davis", "fbms"], "Benchmark protocol.")
_DAVIS_ROOT = flags.DEFINE_string("davis_root", None, "DAVIS-2016 root folder.")
_FBMS_ROOT = flags.DEFINE_string("fbms_root", None, "FBMS-59 root (Trainingset, Testset).")
_RESULTS_DIR = flags.DEFINE_string("results_dir", None, "Folder of <seq>/<frame>.png masks.")
_SPLIT = flags.DEFINE_string(
    "split", None, "DAVIS image set or 'all' (default val); FBMS Trainingset or Testset (default)."
)
_SEQUENCES = flags.DEFINE_list("sequences", None, "Only these sequences.")
_OUTPUT_JSON = flags.DEFINE_string("output_json", None, "Where the scores go (.json).")
_ALLOW_MISSING = flags.DEFINE_bool(
    "allow_missing",
    False,
    "Score a results folder that lacks a sequence's masks or most masks (missing masks "
    "score as empty); without it such a folder is refused.",
)
flags.mark_flags_as_required(["results_dir", "output_json"])
flags.register_multi_flags_validator(
    ["dataset", "davis_root", "fbms_root"],
    lambda f: f["davis_root" if f["dataset"] == "davis" else "fbms_root"] is not None,
    message="--dataset=davis needs --davis_root; --dataset=fbms needs --fbms_root",
)


def main(argv):
    del argv
    if not _OUTPUT_JSON.value.endswith(".json"):
        raise app.UsageError(f"--output_json must end in .json; got {_OUTPUT_JSON.value!r}")
    try:
        io_utils.check_can_create(
            os.path.dirname(os.path.abspath(_OUTPUT_JSON.value)), "--output_json"
        )
        if _DATASET.value == "davis":
            result = davis_eval.evaluate_results(
                _DAVIS_ROOT.value,
                _RESULTS_DIR.value,
                _SPLIT.value or "val",
                _SEQUENCES.value,
                _ALLOW_MISSING.value,
            )
            markdown = davis_eval.results_markdown(result)
            bars = davis_eval.davis_bar_values(result)
        else:
            result = fbms_eval.evaluate_results(
                _FBMS_ROOT.value,
                _RESULTS_DIR.value,
                _SPLIT.value or "Testset",
                _SEQUENCES.value,
                _ALLOW_MISSING.value,
            )
            markdown = fbms_eval.results_markdown(result)
            bars = fbms_eval.bar_values(result)
    except (FileNotFoundError, ValueError) as e:
        raise app.UsageError(str(e)) from None
    stem = os.path.splitext(_OUTPUT_JSON.value)[0]
    io_utils.write_json(_OUTPUT_JSON.value, result)
    io_utils.write_text(stem + ".md", markdown)
    io_utils.write_image(stem + ".png", davis_eval.bar_chart(bars))
    print(markdown)
    logging.info("Wrote %s, %s.md, %s.png", _OUTPUT_JSON.value, stem, stem)


if __name__ == "__main__":
    cli.run(main)

r"""Scores models across the folds of DAVIS-2016 train (what `make davis-cv` runs).

    python -m lvo_tf.cross_validation --davis_root=../shared/data/davis2016-train \
        --folds_record=out/davis/data/prepare.json \
        --results=davis=out/davis/cv/davis,synthetic=out/davis/cv/synthetic \
        --output_dir=docs/davis_model

Each results folder is a `segment --save_probabilities` output over the
train sequences, each sequence segmented by a model that did not train on
it. Writes OUTPUT_DIR/cross_validation.{json,md,png}: J and F per fold and
over folds, with the CRF (the masks) and without (the probabilities above
0.5), and per-sequence J (`lvo_tf/evaluation/cross_validation.py`).
"""

import json
import os
import time

from absl import app, flags, logging

from lvo_tf.common import cli, io_utils
from lvo_tf.evaluation import cross_validation, davis_eval

_DAVIS_ROOT = flags.DEFINE_string("davis_root", None, "DAVIS-2016 root with the annotations.")
_SPLIT = flags.DEFINE_string("split", "train", "Its image set holding the folds' sequences.")
_FOLDS_RECORD = flags.DEFINE_string(
    "folds_record", None, "prepare_davis's prepare.json (its 'folds')."
)
_RESULTS = flags.DEFINE_list("results", None, "name=folder, one per model.")
_OUTPUT_DIR = flags.DEFINE_string("output_dir", None, "Where cross_validation.* go.")
flags.mark_flags_as_required(["davis_root", "folds_record", "results", "output_dir"])


def _results(items: list[str]) -> dict[str, str]:
    results = {}
    for item in items:
        name, sep, folder = item.partition("=")
        if not sep or not name or not folder:
            raise app.UsageError(f"--results: {item!r} is not name=folder")
        if name in results:
            raise app.UsageError(f"--results: {name!r} is named twice")
        results[name] = folder
    return results


def _folds(path: str) -> dict[str, list[str]]:
    try:
        with open(path) as f:
            folds = json.load(f)["folds"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise app.UsageError(f"--folds_record {path!r}: not a prepare_davis record ({e})") from None
    if not folds or not all(isinstance(v, list) and v for v in folds.values()):
        raise app.UsageError(f"--folds_record {path!r}: its 'folds' are empty")
    return folds


def main(argv):
    del argv
    results = _results(_RESULTS.value)
    folds = _folds(_FOLDS_RECORD.value)
    start = time.time()

    def progress(name, row, overall):
        logging.info(
            "%s (%s): J %.3f  F %.3f over %d folds  (%.0f s)",
            name,
            row,
            overall["J"],
            overall["F"],
            len(folds),
            time.time() - start,
        )

    try:
        result = cross_validation.evaluate(
            _DAVIS_ROOT.value, results, folds, _SPLIT.value, progress
        )
    except (FileNotFoundError, ValueError) as e:
        raise app.UsageError(str(e)) from None
    stem = os.path.join(_OUTPUT_DIR.value, "cross_validation")
    io_utils.write_json(stem + ".json", result)
    text = cross_validation.markdown(result)
    io_utils.write_text(stem + ".md", text)
    io_utils.write_image(stem + ".png", davis_eval.bar_chart(cross_validation.bar_values(result)))
    print(text)
    logging.info("Wrote %s.json, %s.md, %s.png", stem, stem, stem)


if __name__ == "__main__":
    cli.run(main)

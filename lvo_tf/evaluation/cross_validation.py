"""Cross-validation scores: J and F per fold of DAVIS-2016 train, per model.

Each model's results folder holds `<seq>/<stem>.png` masks (what `segment`
writes, after the CRF when it ran) and `probabilities/<seq>/<stem>.png`
(`segment --save_probabilities`: the network's probability before the CRF,
0-255). A model scored "without the CRF" is its probability above 0.5, so
one `segment` run gives both rows. Every sequence must be segmented by a
model that never trained on it: the folds are `prepare_davis`'s record.

Fold scores are the DAVIS mean over the fold's sequences; the headline is
the mean over folds (the folds have equal sizes, so it is also the mean
over sequences).
"""

from __future__ import annotations

import os

import numpy as np

from lvo_tf.data import readers
from lvo_tf.evaluation import davis_eval, davis_metrics

MEASURES = ("J", "F")
# A 0-255 probability map written as round(255 p): above 127 is p > 0.5
# (up to the rounding of p within 1/510 of 0.5).
PROBABILITY_THRESHOLD = 127


def score_sequences(
    davis_root: str,
    results_dir: str,
    sequences: list[str],
    split: str | None = "train",
    threshold: int = 0,
) -> tuple[dict[str, dict[str, float]], dict]:
    """({seq: {"J": mean, "F": mean}}, {seq: problems}) of `results_dir`'s
    masks (values above `threshold`) against the annotations."""
    todo = davis_eval.list_sequences(davis_root, split, sequences)
    scores, problems = {}, {}
    for seq, sequence in todo.items():
        size = readers.frame_size(sequence.frame_paths[0])
        preds, gts, found = davis_eval.load_pairs(
            results_dir, seq, sequence.annotation_paths, threshold, size
        )
        result = davis_metrics.evaluate_sequence(preds, gts)
        scores[seq] = {m: float(result[m]["mean"]) for m in MEASURES}
        if found:
            problems[seq] = found
    return scores, problems


def fold_means(
    scores: dict[str, dict[str, float]], folds: dict[str, list[str]]
) -> tuple[dict[str, dict[str, float]], dict[str, float]]:
    """({fold: {"J", "F"}} means over each fold's sequences, {"J", "F"} mean
    over folds). Every sequence of every fold must be scored."""
    absent = sorted(s for names in folds.values() for s in names if s not in scores)
    if absent:
        raise ValueError(f"no scores for sequences {absent}")
    per_fold = {
        fold: {m: float(np.mean([scores[s][m] for s in names])) for m in MEASURES}
        for fold, names in folds.items()
    }
    overall = {m: float(np.mean([f[m] for f in per_fold.values()])) for m in MEASURES}
    return per_fold, overall


def evaluate(
    davis_root: str,
    results: dict[str, str],
    folds: dict[str, list[str]],
    split: str | None = "train",
    progress=None,
) -> dict:
    """Scores of every model in `results` ({name: results folder}), with the
    CRF (its masks) and without (its probabilities above 0.5, when the folder
    has them), per sequence, per fold and over folds."""
    sequences = [s for names in folds.values() for s in names]
    out: dict = {"folds": folds, "models": {}}
    for name, folder in results.items():
        if not os.path.isdir(folder):
            raise FileNotFoundError(f"results of {name!r}: no folder {folder!r}")
        rows = {"crf": folder}
        probabilities = os.path.join(folder, "probabilities")
        if os.path.isdir(probabilities):
            rows["no_crf"] = probabilities
        out["models"][name] = {}
        for row, row_dir in rows.items():
            threshold = PROBABILITY_THRESHOLD if row == "no_crf" else 0
            scores, problems = score_sequences(davis_root, row_dir, sequences, split, threshold)
            per_fold, overall = fold_means(scores, folds)
            out["models"][name][row] = {
                "sequences": scores,
                "folds": per_fold,
                "mean": overall,
                "problems": problems,
            }
            if progress:
                progress(name, row, overall)
    return out


def markdown(result: dict) -> str:
    """The fold table (J / F per fold and over folds, with and without the
    CRF) and the per-sequence J table."""
    folds = list(result["folds"])
    lines = [
        "| model | CRF | " + " | ".join(folds) + " | **mean over folds** |",
        "|---|---|" + "---|" * (len(folds) + 1),
    ]
    for name, rows in result["models"].items():
        for row, r in rows.items():
            cells = [f"{r['folds'][f]['J']:.3f} / {r['folds'][f]['F']:.3f}" for f in folds]
            mean = f"**{r['mean']['J']:.3f} / {r['mean']['F']:.3f}**"
            lines.append(
                f"| {name} | {'yes' if row == 'crf' else 'no'} | "
                + " | ".join(cells)
                + f" | {mean} |"
            )
    lines += [
        "",
        "J / F; each fold's sequences segmented by a model that never trained on them.",
        "",
    ]
    names = list(result["models"])
    lines += [
        "| fold | sequence | " + " | ".join(f"{n} J (CRF)" for n in names) + " |",
        "|---|---|" + "---|" * len(names),
    ]
    for fold, seqs in result["folds"].items():
        for seq in seqs:
            cells = [f"{result['models'][n]['crf']['sequences'][seq]['J']:.3f}" for n in names]
            lines.append(f"| {fold} | {seq} | " + " | ".join(cells) + " |")
    problems = {
        f"{n} ({row})": r["problems"]
        for n, rows in result["models"].items()
        for row, r in rows.items()
        if r["problems"]
    }
    for label, found in problems.items():
        lines += ["", f"{label}:", *davis_eval.problems_markdown(found)]
    return "\n".join(lines) + "\n"


def bar_values(result: dict) -> dict[str, dict[str, float]]:
    """{fold: {model: J with the CRF}} and the mean over folds, for `bar_chart`."""
    values = {}
    for fold in list(result["folds"]) + ["mean"]:
        values[fold] = {
            name: rows["crf"]["mean"]["J"] if fold == "mean" else rows["crf"]["folds"][fold]["J"]
            for name, rows in result["models"].items()
        }
    return values

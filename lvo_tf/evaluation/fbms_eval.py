"""FBMS-59 evaluation: per-pixel precision, recall and F over the annotated frames.

FBMS annotates every ~20th frame. For each annotated frame, with P the
predicted and G the annotated foreground (any object):
precision = |P & G| / |P|, recall = |P & G| / |G|; an empty P gives
precision 1, an empty G gives recall 1 (nothing claimed wrongly / nothing to
find). Per sequence: mean precision and mean recall over its annotated
frames, F = 2PR / (P + R) of those means. Overall: the same over all
annotated frames of all sequences pooled (long sequences weigh more, as in
frame-averaged reporting), and `sequence_mean`, the mean of the per-sequence
values.
"""

from __future__ import annotations

import os

import numpy as np
from absl import logging

from lvo_tf.data import readers
from lvo_tf.evaluation.davis_eval import check_coverage, load_pairs, problems_markdown


def precision_recall(prediction: np.ndarray, annotation: np.ndarray) -> tuple[float, float]:
    p, g = prediction > 0, annotation > 0
    hit = np.logical_and(p, g).sum()
    precision = 1.0 if p.sum() == 0 else float(hit / p.sum())
    recall = 1.0 if g.sum() == 0 else float(hit / g.sum())
    return precision, recall


def f_measure(precision: float, recall: float) -> float:
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


def evaluate_results(
    fbms_root: str,
    results_dir: str,
    split: str | None = "Testset",
    sequences=None,
    allow_missing: bool = False,
) -> dict:
    if not os.path.isdir(results_dir):
        raise FileNotFoundError(f"--results_dir: no folder {results_dir!r}")
    todo = readers.fbms_sequences(fbms_root, split)
    if sequences:
        unknown = sorted(set(sequences) - {s.name for s in todo})
        if unknown:
            raise ValueError(f"sequences not in {fbms_root!r} ({split}): {unknown}")
        todo = [s for s in todo if s.name in set(sequences)]
    check_coverage(results_dir, {s.name: s.annotation_paths for s in todo}, allow_missing)
    out: dict = {"sequences": {}, "problems": {}}
    pooled_p, pooled_r = [], []
    for seq in todo:
        preds, gts, problems = load_pairs(results_dir, seq.name, seq.annotation_paths)
        pr = [precision_recall(p, g) for p, g in zip(preds, gts, strict=True)]
        ps, rs = [x[0] for x in pr], [x[1] for x in pr]
        pooled_p += ps
        pooled_r += rs
        p, r = float(np.mean(ps)), float(np.mean(rs))
        out["sequences"][seq.name] = {
            "precision": p,
            "recall": r,
            "F": f_measure(p, r),
            "frames": len(ps),
        }
        if problems:
            out["problems"][seq.name] = problems
            logging.warning("%s: problems in the results: %s", seq.name, problems)
        logging.info(
            "%s: P %.3f R %.3f F %.3f over %d annotated frames",
            seq.name,
            p,
            r,
            f_measure(p, r),
            len(ps),
        )
    p, r = float(np.mean(pooled_p)), float(np.mean(pooled_r))
    per_seq = list(out["sequences"].values())
    sp = float(np.mean([s["precision"] for s in per_seq]))
    sr = float(np.mean([s["recall"] for s in per_seq]))
    out["overall"] = {
        "precision": p,
        "recall": r,
        "F": f_measure(p, r),
        "frames": len(pooled_p),
        "sequence_mean": {"precision": sp, "recall": sr, "F": f_measure(sp, sr)},
    }
    return out


def results_markdown(result: dict) -> str:
    lines = ["| sequence | precision | recall | F | annotated frames |", "|---|---|---|---|---|"]
    for seq, r in result["sequences"].items():
        lines.append(
            f"| {seq} | {r['precision']:.3f} | {r['recall']:.3f} | {r['F']:.3f} | {r['frames']} |"
        )
    o = result["overall"]
    lines.append(
        f"| **all frames** | {o['precision']:.3f} | {o['recall']:.3f} | {o['F']:.3f} | "
        f"{o['frames']} |"
    )
    m = o["sequence_mean"]
    lines.append(
        f"| **sequence mean** | {m['precision']:.3f} | {m['recall']:.3f} | {m['F']:.3f} | |"
    )
    return "\n".join(lines + problems_markdown(result["problems"])) + "\n"


def bar_values(result: dict) -> dict[str, dict[str, float]]:
    return {
        seq: {"precision": r["precision"], "recall": r["recall"]}
        for seq, r in result["sequences"].items()
    }

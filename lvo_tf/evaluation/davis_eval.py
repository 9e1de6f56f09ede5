"""Evaluate a results folder against DAVIS-2016 annotations.

Results layout: `RESULTS/<sequence>/<frame stem>.png`, one mask per annotated
frame, nonzero = foreground (as the official code reads them). Unlike the
official tools, problems in the results are reported rather than fatal: a
missing frame scores as an empty mask, a mask of the wrong size is resized
(nearest neighbour) to the annotation, and masks with values other than 0 and
255 are counted; all are listed per sequence.
"""

from __future__ import annotations

import os
import time

import cv2
import numpy as np
from absl import logging

from lvo_tf.data import readers
from lvo_tf.evaluation import davis_metrics

STATISTICS = ("mean", "recall", "decay")


def read_mask(path: str, threshold: int = 0) -> tuple[np.ndarray, bool]:
    """A result mask: (bool [H, W], whether it held values other than 0 and
    255). Colour or palette PNGs count any nonzero channel as foreground.
    `threshold`: values above it are foreground (0: any nonzero value, as
    the official code reads masks; 127: a 0-255 probability map above 0.5)."""
    image = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    if image is None:
        raise ValueError(f"cannot read result mask {path!r} (corrupt or not an image)")
    if image.ndim == 3:
        image = image.max(axis=-1)
    non_binary = bool(np.any((image != 0) & (image != 255)))
    return image > threshold, non_binary


def load_pairs(
    results_dir: str,
    seq: str,
    annotation_paths: dict[str, str],
    threshold: int = 0,
    frame_size: tuple[int, int] | None = None,
):
    """(predicted masks, annotations, problems) of one sequence's annotated
    frames. A missing result is an empty mask; one of another size is resized
    (nearest) to its annotation; all such cases are listed in `problems`.
    `threshold` as `read_mask`'s (then values other than 0 and 255 are
    expected and not listed). With `frame_size` (H, W of the sequence's
    frames), an annotation of another size is refused by name: it is the
    annotation that is wrong, not the result."""
    gts, preds = [], []
    problems = {"missing": [], "resized": [], "non_binary": []}
    for stem, annotation in annotation_paths.items():
        gt, _ = readers.read_annotation(annotation)
        if frame_size is not None and gt.shape != tuple(frame_size):
            raise ValueError(
                f"annotation {annotation!r} is {gt.shape[1]}x{gt.shape[0]} but the frames of "
                f"{seq!r} are {frame_size[1]}x{frame_size[0]}: the annotation does not fit "
                "its video"
            )
        path = os.path.join(results_dir, seq, stem + ".png")
        if not os.path.isfile(path):
            problems["missing"].append(stem)
            pred = np.zeros_like(gt)
        else:
            pred, non_binary = read_mask(path, threshold)
            if non_binary and not threshold:
                problems["non_binary"].append(stem)
            if pred.shape != gt.shape:
                problems["resized"].append(f"{stem}: {pred.shape[1]}x{pred.shape[0]}")
                pred = cv2.resize(
                    pred.astype(np.uint8), gt.shape[::-1], interpolation=cv2.INTER_NEAREST
                ).astype(bool)
        gts.append(gt)
        preds.append(pred)
    return preds, gts, {kind: v for kind, v in problems.items() if v}


def list_sequences(davis_root: str, split: str | None, sequences: list[str] | None):
    """{sequence: readers.Sequence} of the sequences to evaluate, each with
    its annotated frames."""
    todo = {seq.name: seq for seq in readers.davis_sequences(davis_root, split, sequences)}
    empty = sorted(name for name, seq in todo.items() if not seq.annotation_paths)
    if empty:
        raise ValueError(f"sequences without annotations: {empty}")
    return todo


def check_coverage(
    results_dir: str, annotations: dict[str, dict[str, str]], allow_missing: bool = False
) -> None:
    """Refuses (ValueError) a results folder that lacks every mask of a
    sequence or more than half of all annotated frames' masks, unless
    `allow_missing` (then they score as empty masks): such a folder is the
    wrong folder or an unfinished run, and its scores would mislead."""
    if allow_missing:
        return
    total = absent = 0
    empty = []
    for seq, paths in annotations.items():
        missing = sum(
            not os.path.isfile(os.path.join(results_dir, seq, stem + ".png")) for stem in paths
        )
        total, absent = total + len(paths), absent + missing
        if missing == len(paths):
            empty.append(seq)
    if empty or absent * 2 > total:
        which = f" (none for {', '.join(empty[:5])}{', ...' if len(empty) > 5 else ''})"
        raise ValueError(
            f"--results_dir {results_dir!r} lacks {absent} of the {total} annotated frames' "
            f"masks{which if empty else ''}: the wrong folder or an unfinished run? "
            "--allow_missing scores them as empty masks"
        )


def evaluate_results(
    davis_root: str,
    results_dir: str,
    split: str | None = "val",
    sequences: list[str] | None = None,
    allow_missing: bool = False,
) -> dict:
    """J and F per sequence and overall, with the problems found in the results."""
    if not os.path.isdir(results_dir):
        raise FileNotFoundError(f"--results_dir: no folder {results_dir!r}")
    todo = list_sequences(davis_root, split, sequences)
    check_coverage(results_dir, {n: s.annotation_paths for n, s in todo.items()}, allow_missing)
    out: dict = {"sequences": {}, "problems": {}}
    start = time.time()
    for k, (seq, sequence) in enumerate(todo.items(), 1):
        size = readers.frame_size(sequence.frame_paths[0])
        preds, gts, problems = load_pairs(
            results_dir, seq, sequence.annotation_paths, frame_size=size
        )
        scores = davis_metrics.evaluate_sequence(preds, gts)
        for measure in scores.values():  # JSON has no NaN: unevaluated frames are null
            measure["per_frame"] = [None if np.isnan(v) else v for v in measure["per_frame"]]
        out["sequences"][seq] = scores
        if problems:
            out["problems"][seq] = problems
            logging.warning("%s: problems in the results: %s", seq, problems)
        rate = k / (time.time() - start)
        logging.info(
            "[%d/%d] %s  J %.3f  F %.3f  (%.1f seq/s, ETA %.0f s)",
            k,
            len(todo),
            seq,
            out["sequences"][seq]["J"]["mean"],
            out["sequences"][seq]["F"]["mean"],
            rate,
            (len(todo) - k) / rate,
        )
    overall = {
        m: {s: float(np.mean([r[m][s] for r in out["sequences"].values()])) for s in STATISTICS}
        for m in ("J", "F")
    }
    overall["J&F"] = (overall["J"]["mean"] + overall["F"]["mean"]) / 2
    out["overall"] = overall
    return out


def results_markdown(result: dict) -> str:
    lines = [
        "| sequence | J mean | J recall | J decay | F mean | F recall | F decay |",
        "|---|---|---|---|---|---|---|",
    ]

    def row(name, r):
        return (
            f"| {name} | "
            + " | ".join(f"{r[m][s]:.3f}" for m in ("J", "F") for s in STATISTICS)
            + " |"
        )

    for seq, r in result["sequences"].items():
        lines.append(row(seq, r))
    lines.append(row("**overall**", result["overall"]))
    lines.append(f"\nJ&F mean: {result['overall']['J&F']:.3f}")
    return "\n".join(lines + problems_markdown(result["problems"])) + "\n"


def problems_markdown(problems: dict) -> list[str]:
    """Lines listing the problems found in a results folder, if any."""
    if not problems:
        return []
    lines = ["\nProblems in the results (missing frames scored as empty masks):"]
    for seq, kinds in problems.items():
        for kind, items in kinds.items():
            lines.append(f"- {seq}: {kind} ({len(items)}): {', '.join(items[:10])}")
    return lines


def bar_chart(values: dict[str, dict[str, float]], bar_width: int = 18, height: int = 300):
    """Per-sequence bars, `values[seq][label]` in [0, 1] (four labels at
    most: blue, orange, green, grey), as a BGR image."""
    seqs = list(values)
    labels = list(next(iter(values.values())))
    colors = ((200, 120, 30), (30, 140, 240), (60, 170, 60), (130, 130, 130))
    if len(labels) > len(colors):
        raise ValueError(f"bar_chart draws {len(colors)} labels at most; got {labels}")
    label_h, margin = 110, 40
    group = len(labels) * bar_width + 12
    width = margin + len(seqs) * group + 20
    image = np.full((height + label_h, max(width, 240), 3), 255, np.uint8)
    for level in (0.0, 0.25, 0.5, 0.75, 1.0):
        y = int(height - level * (height - 20))
        cv2.line(image, (margin, y), (image.shape[1] - 10, y), (220, 220, 220), 1)
        cv2.putText(image, f"{level:.2f}", (2, y + 4), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (0, 0, 0), 1)
    for i, seq in enumerate(seqs):
        x = margin + i * group
        for j, label in enumerate(labels):
            top = int(height - values[seq][label] * (height - 20))
            x0 = x + j * bar_width
            cv2.rectangle(image, (x0, top), (x0 + bar_width - 2, height), colors[j], -1)
        tag = np.full((group - 12, label_h), 255, np.uint8)
        cv2.putText(tag, seq[:16], (2, (group - 12) // 2 + 4), cv2.FONT_HERSHEY_SIMPLEX, 0.4, 0, 1)
        rotated = cv2.rotate(tag, cv2.ROTATE_90_CLOCKWISE)
        region = image[height + 2 : height + 2 + rotated.shape[0], x : x + rotated.shape[1]]
        region[:] = np.minimum(region, rotated[: region.shape[0], : region.shape[1], None])
    for j, label in enumerate(labels):
        cv2.putText(
            image, label, (margin + 110 * j, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.45, colors[j], 1
        )
    return image


def davis_bar_values(result: dict) -> dict[str, dict[str, float]]:
    return {
        seq: {"J mean": r["J"]["mean"], "F mean": r["F"]["mean"]}
        for seq, r in result["sequences"].items()
    }

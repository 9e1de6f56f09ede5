"""Cross-validation scoring (lvo_tf.cross_validation) against NumPy IoU on fixtures."""

import json
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest

from lvo_tf.evaluation import cross_validation, davis_metrics
from tests.fixtures import write_davis

FOLDS = {"fold0": ["a", "b"], "fold1": ["c", "d"]}


def _iou_mean(preds, gts):
    """The DAVIS J mean by its definition: IoU per frame (1 when both are
    empty), averaged over all frames but the first and the last."""
    ious = []
    for p, g in zip(preds[1:-1], gts[1:-1], strict=True):
        p, g = p > 0, g > 0
        union = np.logical_or(p, g).sum()
        ious.append(1.0 if union == 0 else np.logical_and(p, g).sum() / union)
    return float(np.mean(ious))


@pytest.fixture
def scored(tmp_path, rng):
    """A train set of four sequences and one model's results: its masks keep
    the annotation's left half (what a CRF run wrote); its probabilities are
    200 on the annotation and 127 (just not above 0.5) elsewhere."""
    root = str(tmp_path / "davis")
    masks = write_davis(root, rng, sequences=("a", "b", "c", "d"), frames=6, split="train")
    results = tmp_path / "model"
    predictions = {}
    for seq, gts in masks.items():
        os.makedirs(results / seq)
        os.makedirs(results / "probabilities" / seq)
        predictions[seq] = []
        for i, gt in enumerate(gts):
            half = gt.copy()
            half[:, 16:] = 0
            predictions[seq].append(half)
            cv2.imwrite(str(results / seq / f"{i:05d}.png"), half)
            probability = np.where(gt > 0, 200, 127).astype(np.uint8)
            cv2.imwrite(str(results / "probabilities" / seq / f"{i:05d}.png"), probability)
    return root, str(results), masks, predictions


def test_fold_scores_against_numpy_iou(scored):
    root, results, masks, predictions = scored
    out = cross_validation.evaluate(root, {"half": results}, FOLDS)
    crf = out["models"]["half"]["crf"]
    expected = {seq: _iou_mean(predictions[seq], masks[seq]) for seq in masks}
    assert 0.2 < min(expected.values()) < max(expected.values()) < 0.9  # not a trivial case
    for seq in masks:
        assert crf["sequences"][seq]["J"] == pytest.approx(expected[seq], abs=1e-12)
        f = davis_metrics.evaluate_sequence(predictions[seq], masks[seq])["F"]["mean"]
        assert crf["sequences"][seq]["F"] == pytest.approx(f, abs=1e-12)
    for fold, seqs in FOLDS.items():
        assert crf["folds"][fold]["J"] == pytest.approx(np.mean([expected[s] for s in seqs]))
    assert crf["mean"]["J"] == pytest.approx(
        np.mean([np.mean([expected[s] for s in seqs]) for seqs in FOLDS.values()])
    )
    # Without the CRF: the probabilities above 0.5 are exactly the annotations.
    no_crf = out["models"]["half"]["no_crf"]
    assert no_crf["mean"] == {"J": 1.0, "F": 1.0}
    assert crf["problems"] == {} and no_crf["problems"] == {}


def test_probability_at_one_half_is_background(tmp_path, rng):
    root = str(tmp_path / "davis")
    write_davis(root, rng, sequences=("a", "b"), frames=4, split="train")
    results = tmp_path / "model"
    for seq in ("a", "b"):
        os.makedirs(results / "probabilities" / seq)
        os.makedirs(results / seq)
        for i in range(4):
            cv2.imwrite(str(results / seq / f"{i:05d}.png"), np.full((24, 32), 255, np.uint8))
            cv2.imwrite(
                str(results / "probabilities" / seq / f"{i:05d}.png"),
                np.full((24, 32), 127, np.uint8),
            )
    out = cross_validation.evaluate(root, {"m": str(results)}, {"fold0": ["a"], "fold1": ["b"]})
    assert out["models"]["m"]["no_crf"]["mean"]["J"] == 0.0  # empty against non-empty
    assert 0.0 < out["models"]["m"]["crf"]["mean"]["J"] < 1.0  # all foreground


def test_every_fold_sequence_must_be_scored():
    with pytest.raises(ValueError, match=r"no scores for sequences \['d'\]"):
        cross_validation.fold_means(
            {s: {"J": 1.0, "F": 1.0} for s in "abc"}, {"fold0": ["a", "b"], "fold1": ["c", "d"]}
        )


def test_a_fold_sequence_outside_the_split_is_refused(scored):
    root, results, _, _ = scored
    with pytest.raises(ValueError, match=r"sequences not in .*: \['zebra'\]"):
        cross_validation.evaluate(root, {"m": results}, {"fold0": ["a", "zebra"]})


def _run(*args):
    return subprocess.run(
        [sys.executable, "-m", "lvo_tf.cross_validation", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_binary_writes_tables_and_refuses_bad_flags(scored, tmp_path):
    root, results, _, _ = scored
    record = tmp_path / "prepare.json"
    record.write_text(json.dumps({"folds": FOLDS}))
    out_dir = tmp_path / "report"
    done = _run(
        f"--davis_root={root}",
        f"--folds_record={record}",
        f"--results=half={results}",
        f"--output_dir={out_dir}",
    )
    assert done.returncode == 0, done.stderr
    written = json.loads((out_dir / "cross_validation.json").read_text())
    assert written == json.loads(
        json.dumps(cross_validation.evaluate(root, {"half": results}, FOLDS))
    )
    table = (out_dir / "cross_validation.md").read_text()
    assert "| half | no |" in table and "**1.000 / 1.000**" in table
    assert cv2.imread(str(out_dir / "cross_validation.png")) is not None

    bad = _run(
        f"--davis_root={root}",
        f"--folds_record={record}",
        "--results=half",
        f"--output_dir={out_dir}",
    )
    assert bad.returncode != 0
    assert "--results: 'half' is not name=folder" in bad.stderr
    assert "Traceback" not in bad.stderr
    missing = _run(
        f"--davis_root={root}",
        f"--folds_record={record}",
        f"--results=m={tmp_path / 'nothing'}",
        f"--output_dir={out_dir}",
    )
    assert missing.returncode != 0 and "results of 'm': no folder" in missing.stderr
    assert "Traceback" not in missing.stderr

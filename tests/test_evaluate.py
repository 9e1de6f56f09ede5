"""The evaluate binary and its library on DAVIS-layout fixtures (and the dev set when present)."""

import json
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest

from lvo_tf.evaluation import davis_eval, davis_metrics
from tests.fixtures import blob_mask, dev_set_root, write_davis


@pytest.fixture
def dataset(tmp_path, rng):
    root = tmp_path / "davis"
    masks = write_davis(str(root), rng)
    results = tmp_path / "results"
    predictions = {}
    for seq, gts in masks.items():
        os.makedirs(results / seq)
        predictions[seq] = [blob_mask(rng, 24, 32) for _ in gts]
        for i, p in enumerate(predictions[seq]):
            cv2.imwrite(str(results / seq / f"{i:05d}.png"), p)
    return root, results, masks, predictions


def test_scores_match_the_measures(dataset):
    root, results, masks, predictions = dataset
    out = davis_eval.evaluate_results(str(root), str(results), "val")
    assert list(out["sequences"]) == ["alpha", "beta"]
    for seq in masks:
        expected = davis_metrics.evaluate_sequence(predictions[seq], masks[seq])
        for m in ("J", "F"):
            for s in ("mean", "recall", "decay"):
                assert out["sequences"][seq][m][s] == pytest.approx(expected[m][s], abs=1e-12)
            assert out["sequences"][seq][m]["per_frame"][0] is None
    for m in ("J", "F"):
        assert out["overall"][m]["mean"] == pytest.approx(
            np.mean([out["sequences"][s][m]["mean"] for s in masks])
        )
    assert out["overall"]["J&F"] == pytest.approx(
        (out["overall"]["J"]["mean"] + out["overall"]["F"]["mean"]) / 2
    )
    assert out["problems"] == {}


def test_problems_are_reported_not_fatal(dataset):
    root, results, masks, predictions = dataset
    os.remove(results / "alpha" / "00002.png")
    big = cv2.resize(predictions["beta"][1], (64, 48), interpolation=cv2.INTER_NEAREST)
    cv2.imwrite(str(results / "beta" / "00001.png"), big)
    cv2.imwrite(
        str(results / "beta" / "00003.png"), (predictions["beta"][3] > 0).astype(np.uint8) * 128
    )
    out = davis_eval.evaluate_results(str(root), str(results), "val")
    assert out["problems"] == {
        "alpha": {"missing": ["00002"]},
        "beta": {"resized": ["00001: 64x48"], "non_binary": ["00003"]},
    }
    # The missing frame scores as an empty mask; the others as their binarised selves.
    alpha = list(predictions["alpha"])
    alpha[2] = np.zeros_like(alpha[2])
    expected = davis_metrics.evaluate_sequence(alpha, masks["alpha"])
    assert out["sequences"]["alpha"]["J"]["mean"] == pytest.approx(expected["J"]["mean"])
    beta = davis_metrics.evaluate_sequence(predictions["beta"], masks["beta"])
    assert out["sequences"]["beta"]["J"]["mean"] == pytest.approx(beta["J"]["mean"])
    assert "missing (1): 00002" in davis_eval.results_markdown(out)


def test_binary_writes_json_markdown_and_chart(dataset, tmp_path):
    root, results, _, _ = dataset
    out = tmp_path / "scores" / "val.json"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "lvo_tf.evaluate",
            f"--davis_root={root}",
            f"--results_dir={results}",
            f"--output_json={out}",
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]

    def no_nan(token):
        raise AssertionError(f"non-standard JSON constant {token}")

    scores = json.loads(out.read_text(), parse_constant=no_nan)
    assert set(scores) == {"sequences", "overall", "problems"}
    assert all(0.0 <= scores["overall"][m]["mean"] <= 1.0 for m in ("J", "F"))
    assert "| **overall** |" in (tmp_path / "scores" / "val.md").read_text()
    chart = cv2.imread(str(tmp_path / "scores" / "val.png"))
    assert chart is not None and chart.shape[0] > 100


@pytest.mark.parametrize(
    "args, message",
    [
        (["--davis_root={tmp}/nowhere"], "nowhere': no folder"),
        (["--sequences=gamma"], "sequences not in"),
        (["--split=train"], "split 'train': no image set"),
        (["--results_dir={tmp}/none"], "--results_dir: no folder"),
    ],
)
def test_binary_bad_input_fails_cleanly(dataset, tmp_path, args, message):
    root, results, _, _ = dataset
    argv = {"--davis_root": f"--davis_root={root}", "--results_dir": f"--results_dir={results}"}
    for a in args:
        argv[a.split("=")[0]] = a.format(tmp=tmp_path)
    out = tmp_path / "out" / "x.json"
    proc = subprocess.run(
        [sys.executable, "-m", "lvo_tf.evaluate", *argv.values(), f"--output_json={out}"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode != 0
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "out").exists()


def test_corrupt_annotation_is_named(dataset):
    root, results, _, _ = dataset
    bad = root / "Annotations" / "480p" / "beta" / "00004.png"
    bad.write_bytes(b"\x89PNG truncated")
    with pytest.raises(ValueError, match="beta/00004.png"):
        davis_eval.evaluate_results(str(root), str(results), "val")


@pytest.mark.skipif(dev_set_root() is None, reason="DAVIS-2016 dev sequences not on this machine")
def test_dev_set_annotations_score_one():
    root = dev_set_root()
    out = davis_eval.evaluate_results(root, os.path.join(root, "Annotations", "480p"), "val")
    assert len(out["sequences"]) >= 1
    assert out["overall"]["J"]["mean"] == 1.0 and out["overall"]["F"]["mean"] == 1.0


# === FBMS-59 ===


def test_fbms_precision_recall_cases():
    from lvo_tf.evaluation.fbms_eval import f_measure, precision_recall

    g = np.zeros((4, 4), bool)
    g[:2, :2] = True  # 4 pixels
    p = np.zeros((4, 4), bool)
    p[:2, :] = True  # 8 pixels, 4 right
    assert precision_recall(p, g) == (0.5, 1.0)
    assert precision_recall(np.zeros_like(g), g) == (1.0, 0.0)
    assert precision_recall(p, np.zeros_like(g)) == (0.0, 1.0)
    assert f_measure(0.5, 1.0) == pytest.approx(2 / 3)
    assert f_measure(0.0, 0.0) == 0.0


def test_fbms_evaluate_binary(tmp_path, rng):
    from lvo_tf.evaluation.fbms_eval import f_measure, precision_recall
    from tests.fixtures import write_fbms

    root = tmp_path / "fbms"
    truth = {
        **write_fbms(root, rng, "cars1", labelled=(0, 3)),
        **write_fbms(root, rng, "dogs", labelled=(1,)),
    }
    results = tmp_path / "res"
    predictions = {}
    for stem, mask in truth.items():
        seq = stem.rsplit("_", 1)[0]
        os.makedirs(results / seq, exist_ok=True)
        pred = np.roll(mask, 2, axis=1)
        predictions[stem] = pred
        cv2.imwrite(str(results / seq / f"{stem}.png"), pred.astype(np.uint8) * 255)
    out = tmp_path / "fbms.json"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "lvo_tf.evaluate",
            "--dataset=fbms",
            f"--fbms_root={root}",
            f"--results_dir={results}",
            f"--output_json={out}",
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    scores = json.loads(out.read_text())
    pr = {s: precision_recall(predictions[s], truth[s]) for s in truth}
    p = np.mean([v[0] for v in pr.values()])
    r = np.mean([v[1] for v in pr.values()])
    assert scores["overall"]["frames"] == 3
    assert scores["overall"]["precision"] == pytest.approx(p)
    assert scores["overall"]["F"] == pytest.approx(f_measure(p, r))
    assert scores["sequences"]["dogs"]["frames"] == 1
    assert (tmp_path / "fbms.png").is_file()
    wrong = subprocess.run(
        [
            sys.executable,
            "-m",
            "lvo_tf.evaluate",
            "--dataset=fbms",
            f"--results_dir={results}",
            f"--output_json={out}",
        ],
        capture_output=True,
        text=True,
    )
    assert wrong.returncode != 0 and "--dataset=fbms needs --fbms_root" in wrong.stderr

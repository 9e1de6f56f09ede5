"""The ablation study's pieces against independent references."""

import os

import numpy as np
import pytest

from lvo_tf.evaluation import ablation, davis_metrics
from lvo_tf.models.frame_ops import UpsampleToFrames


def test_upsample_matches_the_model_layer_then_resizes(rng):
    coarse = rng.random((6, 9)).astype(np.float32)  # 1/8 of a 48x72 padded frame
    frames = np.zeros((1, 1, 45, 70, 3), np.uint8)  # the processed frame: 45x70
    layer = np.asarray(UpsampleToFrames(8)(coarse[None, None, ..., None], frames))[0, 0, ..., 0]
    np.testing.assert_allclose(ablation.upsample(coarse, (45, 70), (45, 70)), layer, atol=1e-5)
    full = ablation.upsample(coarse, (45, 70), (90, 140))
    assert full.shape == (90, 140)
    np.testing.assert_allclose(full[::2, ::2].mean(), layer.mean(), atol=0.02)


def test_appearance_classifier_reads_the_trained_1x1_conv(tmp_path, rng):
    from lvo_tf.models import build_appearance_classifier

    classifier, appearance = build_appearance_classifier("lite")
    path = str(tmp_path / "appearance_classifier.weights.h5")
    classifier.save_weights(path)
    frame = rng.integers(0, 256, (1, 32, 48, 3)).astype(np.uint8)
    features = np.asarray(appearance(frame))
    expected = np.asarray(classifier(frame))[..., 0]
    np.testing.assert_allclose(ablation.appearance_classifier(path)(features), expected, atol=1e-5)


def _seq(name, masks, static, predictions):
    t = len(masks)
    return ablation.Sequence(
        name=name,
        features=np.zeros((t, 1, 1, 2), np.float32),
        processed_size=masks[0].shape,
        frames=lambda i: np.zeros(masks[0].shape + (3,), np.uint8),
        masks=masks,
        flow=None,
        static=static,
    ), predictions


def test_score_is_the_davis_mean_and_pools_static_frames(rng):
    sequences, predictions = [], {}
    for k in range(3):
        masks = [rng.random((20, 24)) > 0.6 for _ in range(6)]
        pred = [rng.random((20, 24)) > 0.5 for _ in range(6)]
        seq, p = _seq(f"s{k}", masks, [2, 3] if k else [], pred)
        sequences.append(seq)
        predictions[seq.name] = p
    scores = ablation.score(sequences, full=lambda s: predictions[s.name])
    per = {s.name: davis_metrics.evaluate_sequence(predictions[s.name], s.masks) for s in sequences}
    assert scores.j == pytest.approx(np.mean([r["J"]["mean"] for r in per.values()]))
    assert scores.f == pytest.approx(np.mean([r["F"]["mean"] for r in per.values()]))
    static_j = [per[n]["J"]["per_frame"][t] for n in ("s1", "s2") for t in (2, 3)]
    assert scores.static_frames == 4 and scores.j_static == pytest.approx(np.mean(static_j))
    only_moving = ablation.score(sequences[:1], full=lambda s: predictions[s.name])
    assert only_moving.static_frames == 0 and only_moving.j_static is None  # JSON null, not NaN


def test_ablations_table_puts_both_crf_rows_next_to_their_thresholded_ones():
    def row(label, j):
        per = {"s1": {"J": j, "F": j / 2}, "s2": {"J": j + 0.1, "F": j / 2}}
        return {"label": label, "dev": {"j": j + 0.05, "f": j / 2, "per_sequence": per}}

    results = {
        "baseline": row("base", 0.3),
        "baseline_crf": row("base + crf", 0.4),
        "bidirectional": row("ours", 0.5),
        "crf": row("ours + crf", 0.6),
    }
    table = ablation.markdown(results)
    header = (
        "| dev sequence | default model J / F | default model + CRF J / F | baseline J / F "
        "| baseline + CRF J / F |"
    )
    assert header in table
    assert "| s2 | 0.600 / 0.250 | 0.700 / 0.300 | 0.400 / 0.150 | 0.500 / 0.200 |" in table
    assert "| variant | dev J | dev F |" in table  # only the datasets the rows have
    assert "| base + crf | 0.450 | 0.200 |" in table
    assert "(†)" not in table  # no row names a model: nothing to mark
    del results["baseline_crf"], results["crf"]
    assert "| dev sequence | default model J / F | baseline J / F |" in ablation.markdown(results)


def test_ablations_table_marks_rows_of_an_earlier_model():
    """Rows measured for another model than the default model's row (or
    before rows named their model) are marked and explained; the baseline,
    which has no model, never is."""
    results = {
        "baseline": {"label": "base", "synthetic": {"j": 0.3, "f": 0.2}},
        "bidirectional": {"label": "ours", "model": "new", "synthetic": {"j": 0.5, "f": 0.3}},
        "forward": {"label": "fwd", "model": "old", "synthetic": {"j": 0.4, "f": 0.3}},
        "none": {"label": "no memory", "synthetic": {"j": 0.4, "f": 0.3}},
        "crf": {"label": "ours + crf", "model": "new", "synthetic": {"j": 0.6, "f": 0.5}},
    }
    table = ablation.markdown(results)
    assert "| fwd (†) |" in table and "| no memory (†) |" in table
    assert "| base |" in table and "| ours |" in table and "| ours + crf |" in table
    assert "(†) Measured for an earlier default model" in table


def test_headline_metrics_read_the_scores_not_the_rows_label_or_model():
    def scores(j, f, sequences=2):
        return {"j": j, "f": f, "j_static": None, "per_sequence": dict.fromkeys(range(sequences))}

    results = {
        "baseline": {"label": "base", "dev": scores(0.5, 0.4)},
        "bidirectional": {"label": "ours", "model": "abc", "dev": scores(0.55, 0.44, 4)},
        "crf": {"label": "ours + crf", "model": "abc", "dev": scores(0.63, 0.6)},
    }
    assert ablation.headline_metrics(results) == {
        "dev": {
            "j": 0.55,
            "f": 0.44,
            "j_static": None,
            "sequences": 4,
            "baseline_j": 0.5,
            "baseline_f": 0.4,
            "crf_j": 0.63,
            "crf_f": 0.6,
        }
    }


def test_ablations_variants_flag_refuses_unknown_rows_and_a_missing_table(tmp_path):
    import subprocess
    import sys

    def run(*args):
        command = [sys.executable, "-m", "lvo_tf.ablations", f"--output_dir={tmp_path}", *args]
        return subprocess.run(command, capture_output=True, text=True, check=False)

    unknown = run("--variants=nope")
    assert unknown.returncode != 0 and "--variants: unknown ['nope']" in unknown.stderr
    missing = run("--variants=baseline_crf")
    assert missing.returncode != 0 and "which does not exist" in missing.stderr
    assert "Traceback" not in unknown.stderr + missing.stderr
    assert os.listdir(tmp_path) == []

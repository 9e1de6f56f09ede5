"""The ablation study's pieces against independent references."""

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

"""DAVIS-2016 measures against hand-computed cases and brute-force references."""

import math

import numpy as np
import pytest

from lvo_tf.evaluation import davis_metrics as dm


def reference_seg2bmap(seg):
    """The boundary rule written pixel by pixel."""
    seg = np.asarray(seg) > 0
    h, w = seg.shape
    out = np.zeros_like(seg)
    for r in range(h):
        for c in range(w):
            if r == h - 1 and c == w - 1:
                continue
            if r == h - 1:
                out[r, c] = seg[r, c] != seg[r, c + 1]
            elif c == w - 1:
                out[r, c] = seg[r, c] != seg[r + 1, c]
            else:
                out[r, c] = (
                    seg[r, c] != seg[r, c + 1]
                    or seg[r, c] != seg[r + 1, c]
                    or seg[r, c] != seg[r + 1, c + 1]
                )
    return out


def reference_f(pred, gt):
    """F by explicit distances: a boundary pixel matches when the other
    boundary has a pixel within Euclidean distance ceil(0.008 * diagonal)."""
    pb, gb = reference_seg2bmap(pred), reference_seg2bmap(gt)
    r = math.ceil(0.008 * math.hypot(*pred.shape))
    pp, gp = np.argwhere(pb), np.argwhere(gb)
    if len(pp) == 0 or len(gp) == 0:
        precision = 1.0 if len(pp) == 0 else 0.0
        recall = 1.0 if len(gp) == 0 else 0.0
    else:
        d2 = ((pp[:, None, :] - gp[None, :, :]) ** 2).sum(-1)
        precision = float(np.mean(d2.min(1) <= r * r))
        recall = float(np.mean(d2.min(0) <= r * r))
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


def blob(rng, h, w):
    yy, xx = np.mgrid[:h, :w]
    cy, cx = rng.uniform(0, h), rng.uniform(0, w)
    ry, rx = rng.uniform(2, h / 2), rng.uniform(2, w / 2)
    mask = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1
    mask ^= rng.random((h, w)) < 0.02  # ragged edges and specks
    return mask.astype(np.uint8) * 255


def test_region_similarity_cases():
    empty = np.zeros((4, 5), np.uint8)
    full = np.full((4, 5), 255, np.uint8)
    assert dm.region_similarity(empty, empty) == 1.0
    assert dm.region_similarity(full, empty) == 0.0
    assert dm.region_similarity(empty, full) == 0.0
    assert dm.region_similarity(full, full) == 1.0
    a, b = empty.copy(), empty.copy()
    a[0:2, 0:2] = 1
    b[1:3, 1:3] = 1
    assert dm.region_similarity(a, b) == pytest.approx(1 / 7)
    one = empty.copy()
    one[3, 4] = 255
    assert dm.region_similarity(one, one) == 1.0


def test_seg2bmap_hand_case():
    seg = np.zeros((3, 3), np.uint8)
    seg[1, 1] = 1
    expected = np.array([[1, 1, 0], [1, 1, 0], [0, 0, 0]], bool)
    np.testing.assert_array_equal(dm.seg2bmap(seg), expected)


@pytest.mark.parametrize("shape", [(1, 1), (1, 7), (6, 1), (9, 13), (31, 20)])
def test_seg2bmap_matches_reference(rng, shape):
    for _ in range(5):
        mask = blob(rng, *shape) if min(shape) > 4 else rng.integers(0, 2, shape)
        np.testing.assert_array_equal(dm.seg2bmap(mask), reference_seg2bmap(mask))


def test_boundary_radius():
    assert dm.boundary_radius(480, 854) == 8
    assert dm.boundary_radius(3, 3) == 1
    assert dm.boundary_radius(100, 100) == math.ceil(0.008 * math.hypot(100, 100))


def test_boundary_edge_cases():
    empty = np.zeros((10, 12), np.uint8)
    square = empty.copy()
    square[3:7, 4:9] = 255
    assert dm.boundary_measure(empty, empty) == (1.0, 1.0, 1.0)
    assert dm.boundary_measure(empty, square) == (0.0, 1.0, 0.0)  # P = 1, R = 0
    assert dm.boundary_measure(square, empty) == (0.0, 0.0, 1.0)  # P = 0, R = 1
    assert dm.boundary_measure(square, square)[0] == 1.0
    # A full frame has no boundary by the seg2bmap rule.
    full = np.full((10, 12), 255, np.uint8)
    assert dm.boundary_measure(full, full) == (1.0, 1.0, 1.0)


def test_thin_structure_within_tolerance():
    gt = np.zeros((60, 80), np.uint8)
    gt[10:50, 40] = 255  # one pixel wide
    shifted = np.roll(gt, 1, axis=1)
    assert dm.boundary_radius(60, 80) == 1
    assert dm.boundary_measure(shifted, gt)[0] == 1.0
    far = np.roll(gt, 3, axis=1)
    assert dm.boundary_measure(far, gt)[0] < 0.2


@pytest.mark.parametrize("shape", [(24, 31), (48, 85), (97, 60)])
def test_boundary_matches_brute_force(rng, shape):
    for _ in range(4):
        pred, gt = blob(rng, *shape), blob(rng, *shape)
        assert dm.boundary_measure(pred, gt)[0] == pytest.approx(reference_f(pred, gt), abs=1e-12)


def test_statistics_hand_computed():
    # X = [nan, v..., nan]; v = 0.0 .. 0.9. ids = round(linspace(1, 10, 5)) - 1 = [0, 2, 5, 7, 9].
    v = np.arange(10) / 10
    stats = dm.sequence_statistics(np.concatenate([[np.nan], v, [np.nan]]))
    assert stats["mean"] == pytest.approx(0.45)
    assert stats["recall"] == pytest.approx(0.4)  # 0.6 .. 0.9; 0.5 is not above 0.5
    assert stats["decay"] == pytest.approx(np.mean([0.0, 0.1, 0.2]) - np.mean([0.7, 0.8, 0.9]))
    # len 8: linspace(1, 8, 5) = [1, 2.75, 4.5, 6.25, 8] -> ids [0, 2, 4, 5, 7] (4.5 rounds up).
    v = np.array([1, 1, 1, 1, 0, 0, 0, 0], float)
    assert dm.sequence_statistics(np.concatenate([[np.nan], v, [np.nan]]))["decay"] == 1.0
    v = np.array([1, 1, 1, 1, 1, 0, 0, 0], float)  # bin 3 = v[5:8]
    assert dm.sequence_statistics(np.concatenate([[np.nan], v, [np.nan]]))["decay"] == 1.0
    # Three frames: one evaluated frame, every bin is that frame.
    assert dm.sequence_statistics([np.nan, 0.7, np.nan]) == {
        "mean": pytest.approx(0.7),
        "recall": 1.0,
        "decay": 0.0,
    }
    with pytest.raises(ValueError, match="at least 3 frames"):
        dm.sequence_statistics([np.nan, np.nan])


def test_evaluate_sequence_excludes_first_and_last(rng):
    gts = [blob(rng, 30, 40) for _ in range(5)]
    preds = [g.copy() for g in gts]
    preds[0] = 255 - gts[0]  # wrong first and last frames do not count
    preds[-1] = np.zeros_like(gts[-1])
    result = dm.evaluate_sequence(preds, gts)
    assert result["J"]["mean"] == 1.0 and result["F"]["mean"] == 1.0
    assert np.isnan(result["J"]["per_frame"][0]) and np.isnan(result["J"]["per_frame"][-1])
    with pytest.raises(ValueError, match="4 predicted masks for 5"):
        dm.evaluate_sequence(preds[:4], gts)
    with pytest.raises(ValueError, match="differ in size"):
        dm.region_similarity(gts[1][:, :10], gts[1])

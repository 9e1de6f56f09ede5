"""DAVIS-2016 region (J) and boundary (F) measures and their statistics.

Follows the official DAVIS-2016 evaluation code (Perazzi et al., CVPR 2016)
definition by definition:

- J: intersection over union of binary masks; 1 when both are empty.
- F: boundary F-measure. Boundaries by the `seg2bmap` rule; a boundary pixel
  matches when a boundary pixel of the other mask lies within a disk of
  radius `ceil(0.008 * sqrt(H^2 + W^2))` (8 pixels at 854x480).
- Per sequence: statistics over frames 1 .. N-2 (the first and last frames
  are excluded): mean, recall (fraction of frames above 0.5) and decay (mean
  of the first quarter of frames minus mean of the last quarter, with the
  official binning).
"""

from __future__ import annotations

import math

import cv2
import numpy as np

BOUNDARY_TOLERANCE = 0.008


def _binary(mask: np.ndarray, name: str) -> np.ndarray:
    mask = np.asarray(mask)
    if mask.ndim == 3 and mask.shape[-1] == 1:
        mask = mask[..., 0]
    if mask.ndim != 2:
        raise ValueError(f"{name} must be a 2-D mask [H, W]; got shape {mask.shape}")
    return mask > 0


def _same_shape(a: np.ndarray, b: np.ndarray) -> None:
    if a.shape != b.shape:
        raise ValueError(f"prediction {a.shape} and annotation {b.shape} differ in size")


def region_similarity(prediction: np.ndarray, annotation: np.ndarray) -> float:
    """J: IoU of two binary masks (nonzero = foreground); 1.0 if both are empty."""
    p, a = _binary(prediction, "prediction"), _binary(annotation, "annotation")
    _same_shape(p, a)
    union = np.logical_or(p, a).sum()
    if union == 0:
        return 1.0
    return float(np.logical_and(p, a).sum() / union)


def seg2bmap(mask: np.ndarray) -> np.ndarray:
    """Boundary map of a binary mask: a pixel is on the boundary when it
    differs from its east, south or south-east neighbour; in the last row
    only the east neighbour counts, in the last column only the south one,
    and the bottom-right pixel is never a boundary."""
    seg = _binary(mask, "mask")
    e = np.zeros_like(seg)
    s = np.zeros_like(seg)
    se = np.zeros_like(seg)
    e[:, :-1] = seg[:, 1:]
    s[:-1, :] = seg[1:, :]
    se[:-1, :-1] = seg[1:, 1:]
    boundary = (seg ^ e) | (seg ^ s) | (seg ^ se)
    boundary[-1, :] = seg[-1, :] ^ e[-1, :]
    boundary[:, -1] = seg[:, -1] ^ s[:, -1]
    boundary[-1, -1] = False
    return boundary


def boundary_radius(height: int, width: int, tolerance: float = BOUNDARY_TOLERANCE) -> int:
    """Match tolerance in pixels: `tolerance` itself when >= 1, else
    ceil(tolerance * image diagonal)."""
    if tolerance >= 1:
        return int(tolerance)
    return int(math.ceil(tolerance * math.hypot(height, width)))


def _disk(radius: int) -> np.ndarray:
    # skimage.morphology.disk: x^2 + y^2 <= r^2.
    y, x = np.mgrid[-radius : radius + 1, -radius : radius + 1]
    return (x * x + y * y <= radius * radius).astype(np.uint8)


def _dilate(boundary: np.ndarray, radius: int) -> np.ndarray:
    return cv2.dilate(boundary.astype(np.uint8), _disk(radius)).astype(bool)


def boundary_measure(
    prediction: np.ndarray, annotation: np.ndarray, tolerance: float = BOUNDARY_TOLERANCE
) -> tuple[float, float, float]:
    """(F, precision, recall) of the boundary of `prediction` against `annotation`."""
    p, a = _binary(prediction, "prediction"), _binary(annotation, "annotation")
    _same_shape(p, a)
    radius = boundary_radius(*p.shape, tolerance)
    p_boundary, a_boundary = seg2bmap(p), seg2bmap(a)
    n_p, n_a = int(p_boundary.sum()), int(a_boundary.sum())
    if n_p == 0 and n_a > 0:
        precision, recall = 1.0, 0.0
    elif n_p > 0 and n_a == 0:
        precision, recall = 0.0, 1.0
    elif n_p == 0 and n_a == 0:
        precision, recall = 1.0, 1.0
    else:
        precision = float((p_boundary & _dilate(a_boundary, radius)).sum() / n_p)
        recall = float((a_boundary & _dilate(p_boundary, radius)).sum() / n_a)
    if precision + recall == 0:
        return 0.0, precision, recall
    return 2 * precision * recall / (precision + recall), precision, recall


def sequence_statistics(per_frame: np.ndarray) -> dict[str, float]:
    """Mean, recall and decay of a per-frame vector X = [nan, x_1, ..., x_{N-2}, nan]
    (first and last frame excluded), as the official DAVIS-2016 code computes them."""
    x = np.asarray(per_frame, dtype=np.float64)
    v = x[1:-1]
    if v.size == 0:
        raise ValueError(
            f"a sequence needs at least 3 frames to be evaluated (first and last are "
            f"excluded); got {x.size}"
        )
    mean = float(np.nanmean(x))
    recall = float(np.mean(v > 0.5))
    ids = (np.round(np.linspace(1, len(v), 5) + 1e-10) - 1).astype(int)
    bins = [v[ids[i] : ids[i + 1] + 1] for i in range(4)]
    decay = float(np.nanmean(bins[0]) - np.nanmean(bins[3]))
    return {"mean": mean, "recall": recall, "decay": decay}


def evaluate_sequence(
    predictions: list[np.ndarray], annotations: list[np.ndarray]
) -> dict[str, dict]:
    """J and F of one sequence: per-frame values (nan for the first and last
    frame) and their statistics."""
    if len(predictions) != len(annotations):
        raise ValueError(
            f"{len(predictions)} predicted masks for {len(annotations)} annotated frames"
        )
    n = len(annotations)
    j = np.full(n, np.nan)
    f = np.full(n, np.nan)
    for i in range(1, n - 1):
        j[i] = region_similarity(predictions[i], annotations[i])
        f[i] = boundary_measure(predictions[i], annotations[i])[0]
    return {
        "J": {**sequence_statistics(j), "per_frame": j.tolist()},
        "F": {**sequence_statistics(f), "per_frame": f.tolist()},
    }

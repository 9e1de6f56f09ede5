"""Dense CRF refinement of a foreground probability map (pydensecrf2)."""

from __future__ import annotations

import dataclasses
import math

import cv2
import numpy as np


@dataclasses.dataclass(frozen=True)
class CRFParams:
    """Fully connected CRF with a smoothness (Gaussian) and an appearance
    (bilateral) kernel. Defaults: gaussian sxy 3 / compat 3, bilateral sxy 50 /
    srgb 10 / compat 5, 5 mean-field iterations.

    `crop_threshold` > 0 runs the CRF only on the box around the pixels
    whose probability exceeds it, widened by the appearance kernel's width
    (`bilateral_sxy`) on each side; outside it the probability is kept (it
    is below the threshold, so background). The CRF's cost grows with its
    pixels: the fast model crops at 0.05 (README, "The fast model").

    `scale` < 1 runs it on the frame and probability resized by `scale`
    (area averaging), its kernel widths scaled with them, and upsamples the
    marginal bilinearly (README, "Segment videos", `--crf_scale`)."""

    gaussian_sxy: float = 3.0
    gaussian_compat: float = 3.0
    bilateral_sxy: float = 50.0
    bilateral_srgb: float = 10.0
    bilateral_compat: float = 5.0
    iterations: int = 5
    crop_threshold: float = 0.0
    scale: float = 1.0

    def __post_init__(self):
        for name in ("gaussian_sxy", "bilateral_sxy", "bilateral_srgb"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"--crf_{name} must be a positive finite width; got {value}")
        for name in ("gaussian_compat", "bilateral_compat"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"--crf_{name} must be a finite weight >= 0; got {value}")
        if self.iterations < 1:
            raise ValueError(f"--crf_iterations must be at least 1; got {self.iterations}")
        if not (math.isfinite(self.scale) and 0.0 < self.scale <= 1.0):
            raise ValueError(f"--crf_scale must be in (0, 1] (1: full size); got {self.scale}")
        if not 0.0 <= self.crop_threshold < 0.5:
            raise ValueError(
                f"--crf_crop_threshold must be in [0, 0.5) (0: no crop); got {self.crop_threshold}"
            )

    def scaled(self, factor: float) -> CRFParams:
        """The same CRF for a frame resized by `factor`: the kernels' spatial
        widths (pixels) scale with it; weights and colour width do not."""
        return dataclasses.replace(
            self,
            gaussian_sxy=self.gaussian_sxy * factor,
            bilateral_sxy=self.bilateral_sxy * factor,
        )


def refine(
    frame: np.ndarray, probability: np.ndarray, params: CRFParams = CRFParams()
) -> np.ndarray:
    """frame: RGB uint8 [H, W, 3]; probability: foreground [H, W] in [0, 1].
    Returns the refined foreground mask, bool [H, W]."""
    return marginal(frame, probability, params) > 0.5


def marginal(
    frame: np.ndarray, probability: np.ndarray, params: CRFParams = CRFParams()
) -> np.ndarray:
    """The CRF's foreground marginal after mean field, float32 [H, W] in
    [0, 1] (`refine` thresholds it at 0.5); with `params.crop_threshold`,
    the input probability outside the box the CRF ran on."""
    h, w = probability.shape
    if frame.shape[:2] != (h, w):
        raise ValueError(f"frame {frame.shape[:2]} and probability {(h, w)} differ in size")
    if params.scale < 1.0:
        size = (max(1, round(w * params.scale)), max(1, round(h * params.scale)))
        small = dataclasses.replace(params.scaled(size[1] / h), scale=1.0)
        q = marginal(
            cv2.resize(frame, size, interpolation=cv2.INTER_AREA),
            cv2.resize(probability.astype(np.float32), size, interpolation=cv2.INTER_AREA),
            small,
        )
        return cv2.resize(q, (w, h), interpolation=cv2.INTER_LINEAR)
    if params.crop_threshold <= 0:
        return _mean_field(frame, probability, params)
    out = probability.astype(np.float32)  # a copy
    box = crop_box(probability, params.crop_threshold, math.ceil(params.bilateral_sxy))
    if box is not None:
        out[box] = _mean_field(frame[box], probability[box], params)
    return out


def crop_box(probability: np.ndarray, threshold: float, margin: int):
    """(rows, cols) slices of the box around the pixels of `probability`
    above `threshold`, `margin` pixels wider on each side (within the
    frame); None when no pixel is above it."""
    above = probability > threshold
    rows = np.flatnonzero(np.any(above, axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(np.any(above, axis=0))
    h, w = probability.shape
    return (
        slice(max(0, rows[0] - margin), min(h, rows[-1] + 1 + margin)),
        slice(max(0, cols[0] - margin), min(w, cols[-1] + 1 + margin)),
    )


def _mean_field(frame: np.ndarray, probability: np.ndarray, params: CRFParams) -> np.ndarray:
    # lazily: pydensecrf loads only when a CRF runs (never with --nocrf)
    import pydensecrf.densecrf as dcrf
    from pydensecrf.utils import unary_from_softmax

    h, w = probability.shape
    p = np.clip(probability.astype(np.float32), 1e-5, 1 - 1e-5)
    crf = dcrf.DenseCRF2D(w, h, 2)
    crf.setUnaryEnergy(np.ascontiguousarray(unary_from_softmax(np.stack([1 - p, p]))))
    # A kernel of weight 0 adds nothing to the mean field; skipping it saves
    # building its permutohedral lattice (the smoothness kernel's is 1/3 of
    # the CRF's time at 240 rows).
    if params.gaussian_compat > 0:
        crf.addPairwiseGaussian(sxy=params.gaussian_sxy, compat=params.gaussian_compat)
    if params.bilateral_compat > 0:
        crf.addPairwiseBilateral(
            sxy=params.bilateral_sxy,
            srgb=params.bilateral_srgb,
            rgbim=np.ascontiguousarray(frame, dtype=np.uint8),
            compat=params.bilateral_compat,
        )
    q = np.array(crf.inference(params.iterations), np.float32).reshape(2, h, w)
    return q[1] / np.maximum(q[0] + q[1], 1e-12)

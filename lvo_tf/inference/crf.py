"""Dense CRF refinement of a foreground probability map (pydensecrf2)."""

from __future__ import annotations

import dataclasses
import math

import numpy as np


@dataclasses.dataclass(frozen=True)
class CRFParams:
    """Fully connected CRF with a smoothness (Gaussian) and an appearance
    (bilateral) kernel. Defaults: gaussian sxy 3 / compat 3, bilateral sxy 50 /
    srgb 10 / compat 5, 5 mean-field iterations."""

    gaussian_sxy: float = 3.0
    gaussian_compat: float = 3.0
    bilateral_sxy: float = 50.0
    bilateral_srgb: float = 10.0
    bilateral_compat: float = 5.0
    iterations: int = 5

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
    [0, 1] (`refine` thresholds it at 0.5)."""
    # lazily: pydensecrf loads only when a CRF runs (never with --nocrf)
    import pydensecrf.densecrf as dcrf
    from pydensecrf.utils import unary_from_softmax

    h, w = probability.shape
    if frame.shape[:2] != (h, w):
        raise ValueError(f"frame {frame.shape[:2]} and probability {(h, w)} differ in size")
    p = np.clip(probability.astype(np.float32), 1e-5, 1 - 1e-5)
    crf = dcrf.DenseCRF2D(w, h, 2)
    crf.setUnaryEnergy(np.ascontiguousarray(unary_from_softmax(np.stack([1 - p, p]))))
    crf.addPairwiseGaussian(sxy=params.gaussian_sxy, compat=params.gaussian_compat)
    crf.addPairwiseBilateral(
        sxy=params.bilateral_sxy,
        srgb=params.bilateral_srgb,
        rgbim=np.ascontiguousarray(frame, dtype=np.uint8),
        compat=params.bilateral_compat,
    )
    q = np.array(crf.inference(params.iterations), np.float32).reshape(2, h, w)
    return q[1] / np.maximum(q[0] + q[1], 1e-12)

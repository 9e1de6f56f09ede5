"""Dense CRF refinement of a foreground probability map (pydensecrf2)."""

from __future__ import annotations

import dataclasses

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


def refine(
    frame: np.ndarray, probability: np.ndarray, params: CRFParams = CRFParams()
) -> np.ndarray:
    """frame: RGB uint8 [H, W, 3]; probability: foreground [H, W] in [0, 1].
    Returns the refined foreground mask, bool [H, W]."""
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
    q = np.array(crf.inference(params.iterations)).reshape(2, h, w)
    return q[1] > q[0]

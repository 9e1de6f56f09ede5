"""Running an exported LVO ONNX file with ONNX Runtime: input checks and one clip.

No TensorFlow and no flags (the clients and tests import it): `check_inputs`
makes the checks the SavedModel's signature makes, which ONNX Runtime
would not (it returns NaN for NaN flow, or fails deep inside on a clip of
the wrong shape); `segment` runs a session on one clip after them.
"""

from __future__ import annotations

import numpy as np


def check_inputs(frames: np.ndarray, flow: np.ndarray) -> None:
    """The checks the SavedModel's signature makes, for ONNX Runtime (which
    would return NaN or fail deep inside): frames [T, H, W, 3] uint8 with
    T >= 1, flow [T, H, W, 2] of the same T, H, W, finite."""
    frames, flow = np.asarray(frames), np.asarray(flow)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be uint8 [T, H, W, 3]; got {frames.dtype} {frames.shape}")
    if frames.shape[0] < 1:
        raise ValueError("frames: the clip has no frames (T = 0)")
    if flow.shape != frames.shape[:3] + (2,):
        raise ValueError(f"flow must be [T, H, W, 2] = {frames.shape[:3] + (2,)}; got {flow.shape}")
    if not np.all(np.isfinite(flow)):
        raise ValueError("flow holds non-finite values (NaN or inf)")


def segment(session, frames: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """frames [T, H, W, 3] uint8, flow [T, H, W, 2] -> probabilities [T, H, W]."""
    check_inputs(frames, flow)
    names = {i.name.split(":")[0]: i.name for i in session.get_inputs()}
    feed = {names["frames"]: frames[None], names["flow"]: flow[None].astype(np.float32)}
    return session.run(None, feed)[0][0, ..., 0]

"""Independent NumPy implementations used as references by the tests."""

from __future__ import annotations

import numpy as np


def conv2d_same(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """2-D cross-correlation with TF's "same" padding. x: [N, H, W, C], w: [kh, kw, C, O]."""
    kh, kw = w.shape[:2]
    top, left = (kh - 1) // 2, (kw - 1) // 2
    xp = np.pad(
        x.astype(np.float64),
        ((0, 0), (top, kh - 1 - top), (left, kw - 1 - left), (0, 0)),
    )
    n, h, wd, _ = x.shape
    out = np.zeros((n, h, wd, w.shape[3]), np.float64)
    for i in range(kh):
        for j in range(kw):
            out += np.einsum("nhwc,co->nhwo", xp[:, i : i + h, j : j + wd], w[i, j])
    return out


def _sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


def conv_gru_step(x, h, kernel, recurrent_kernel, bias):
    """The ConvGRU equations of Tokmakov et al. (2017), written out gate by gate."""
    f = h.shape[-1]
    wx = {g: kernel[..., i * f : (i + 1) * f] for i, g in enumerate("zrh")}
    wh = {g: recurrent_kernel[..., i * f : (i + 1) * f] for i, g in enumerate("zrh")}
    b = {g: bias[i * f : (i + 1) * f] for i, g in enumerate("zrh")}
    z = _sigmoid(conv2d_same(x, wx["z"]) + conv2d_same(h, wh["z"]) + b["z"])
    r = _sigmoid(conv2d_same(x, wx["r"]) + conv2d_same(h, wh["r"]) + b["r"])
    cand = np.tanh(conv2d_same(x, wx["h"]) + conv2d_same(r * h, wh["h"]) + b["h"])
    return (1.0 - z) * h + z * cand


def conv_gru_sequence(x, kernel, recurrent_kernel, bias, h0=None, backwards=False):
    """x: [B, T, H, W, C] -> all memories [B, T, H, W, F] in processing order."""
    b, t, hh, ww, _ = x.shape
    f = recurrent_kernel.shape[2]
    h = np.zeros((b, hh, ww, f)) if h0 is None else h0.astype(np.float64)
    order = range(t - 1, -1, -1) if backwards else range(t)
    outs = []
    for i in order:
        h = conv_gru_step(x[:, i], h, kernel, recurrent_kernel, bias)
        outs.append(h)
    return np.stack(outs, axis=1)

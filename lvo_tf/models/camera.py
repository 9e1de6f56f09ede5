"""The camera's motion in a flow field: a robust (IRLS) fit of an affine or
quadratic field with a small Cholesky solve per frame (`camera_flow`), and the
per-frame percentile of what is left (`residual_percentile`). MP-Net's input
encoding (`frame_ops.FlowEncoding`) subtracts the camera's flow with these."""

from __future__ import annotations

import tensorflow as tf

# Motion models of the camera's flow: the basis functions of x and y (both in
# [-1, 1] over the frame) that u and v are fitted with. "quadratic" contains
# the 8-parameter planar (pseudo-perspective) model, so it follows fast pans
# and perspective that an affine field cannot.
CAMERA_MODELS = {"affine": 3, "quadratic": 6}


def _camera_basis(x, y, model: str):
    basis = [tf.ones_like(x), x, y]
    if model == "quadratic":
        basis += [x * x, x * y, y * y]
    return basis


def _solve_spd(a, b):
    """Solves A c = b for small symmetric positive definite systems given as
    nested lists of tensors (a[i][j], b[i] broadcastable), by an unrolled
    Cholesky factorisation: elementwise ops only, so it exports to ONNX."""
    k = len(b)
    low = [[None] * k for _ in range(k)]
    for i in range(k):
        for j in range(i + 1):
            acc = a[i][j] - sum((low[i][m] * low[j][m] for m in range(j)), tf.zeros_like(a[i][j]))
            if i == j:
                low[i][i] = tf.sqrt(tf.maximum(acc, 1e-12))
            else:
                low[i][j] = acc / low[j][j]
    z = [None] * k
    for i in range(k):
        z[i] = (b[i] - sum((low[i][m] * z[m] for m in range(i)), tf.zeros_like(b[i]))) / low[i][i]
    c = [None] * k
    for i in reversed(range(k)):
        rest = sum((low[m][i] * c[m] for m in range(i + 1, k)), tf.zeros_like(b[i]))
        c[i] = (z[i] - rest) / low[i][i]
    return c


def camera_flow(
    flow, iterations: int = 5, min_scale: float = 0.5, model: str = "affine", stride: int = 1
):
    """The camera's part of optical flow: a robust parametric fit per frame.

    `model="affine"` fits u = a0 + a1 x + a2 y (and v alike); `"quadratic"`
    adds x^2, xy and y^2 terms (it contains the planar-scene perspective
    model). x, y are in [-1, 1] over the frame. The fit is iteratively
    reweighted least squares with Cauchy weights w = 1 / (1 + |r|^2 / c^2),
    where r is the residual of the previous fit and c its weighted RMS (at
    least `min_scale` pixels): independently moving objects, a minority of
    pixels, are down-weighted, so the fit follows the background. The normal
    equations are solved by an unrolled Cholesky factorisation (no matrix
    ops, so it exports to ONNX). The fit uses every `stride`-th pixel in each
    direction (a smooth 3- or 6-parameter field needs few; stride 4 is 16x
    less work) and the fitted field is evaluated at every pixel.

    Args:
        flow: [N, H, W, 2] float32 flow in pixels.

    Returns:
        [N, H, W, 2] the fitted camera flow.
    """
    if model not in CAMERA_MODELS:
        raise ValueError(f"camera model must be one of {sorted(CAMERA_MODELS)}; got {model!r}")
    if not (isinstance(stride, int) and stride >= 1):
        raise ValueError(f"camera fit stride must be a positive integer; got {stride!r}")
    shape = tf.shape(flow)
    h, w = shape[1], shape[2]

    def axis(n):
        n_f = tf.cast(n, tf.float32)
        return tf.cast(tf.range(n), tf.float32) * (2.0 / tf.maximum(n_f - 1.0, 1.0)) - 1.0

    def grid(ax, ay):
        size = tf.stack([tf.shape(ay)[0], tf.shape(ax)[0]])
        x = tf.broadcast_to(ax[None, :], size)[None, :, :, None]
        y = tf.broadcast_to(ay[:, None], size)[None, :, :, None]
        return _camera_basis(x, y, model)

    full_x, full_y = axis(w), axis(h)
    basis = grid(full_x[::stride], full_y[::stride])  # the pixels the fit uses
    sample = flow[:, ::stride, ::stride]
    k = len(basis)
    weights = tf.ones_like(sample[..., :1])

    def total(t):
        return tf.reduce_sum(t, axis=[1, 2], keepdims=True)

    for _ in range(iterations):
        weights = weights / total(weights)  # weighted means keep the system well scaled
        weighted = [weights * f for f in basis]
        # Normal equations; each entry [N, 1, 1, 1], right-hand sides [N, 1, 1, 2]
        # (u and v share the matrix). A tiny ridge keeps degenerate frames finite.
        a = [[None] * k for _ in range(k)]
        for i in range(k):
            for j in range(i + 1):
                a[i][j] = a[j][i] = total(weighted[i] * basis[j]) + (1e-6 if i == j else 0.0)
        coefficients = _solve_spd(a, [total(wf * sample) for wf in weighted])
        fitted = sum(c * f for c, f in zip(coefficients, basis, strict=True))
        r2 = tf.reduce_sum(tf.square(sample - fitted), axis=-1, keepdims=True)
        c2 = tf.maximum(total(weights * r2), min_scale**2)
        weights = 1.0 / (1.0 + r2 / c2)
    return sum(c * f for c, f in zip(coefficients, grid(full_x, full_y), strict=True))


def residual_percentile(residual, fraction: float = 0.01):
    """Per frame, the magnitude that `fraction` of the pixels' residual flow
    reaches or exceeds (0.01: the 99th percentile), [N, 1, 1, 1]: the value
    of the k-th largest magnitude, k = ceil(fraction * H * W) (TopK, which
    exports to ONNX)."""
    magnitude = tf.sqrt(tf.reduce_sum(tf.square(residual), axis=-1))
    flat = tf.reshape(magnitude, tf.stack([tf.shape(magnitude)[0], -1]))
    pixels = tf.cast(tf.shape(flat)[1], tf.float32)
    k = tf.maximum(tf.cast(tf.math.ceil(fraction * pixels), tf.int32), 1)
    top = tf.math.top_k(flat, k=k, sorted=True).values
    return top[:, -1][:, None, None, None]

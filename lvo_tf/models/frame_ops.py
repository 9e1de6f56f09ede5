"""Small layers that move clips in and out of per-frame models.

Time is folded into batch with explicit reshapes ([B, T, ...] -> [B*T, ...]),
never with `keras.layers.TimeDistributed`, whose fallback for unknown time
axes gives different numbers in graph mode and in exported models.
"""

from __future__ import annotations

import keras
import tensorflow as tf

_PACKAGE = "lvo_tf"

# Caffe VGG/DeepLab mean pixel, BGR order (DeepLab-LargeFOV's train_val).
CAFFE_MEAN_BGR = (104.008, 116.669, 122.675)
CAFFE_MEAN_RGB = CAFFE_MEAN_BGR[::-1]


@keras.saving.register_keras_serializable(package=_PACKAGE)
class CaffePreprocess(keras.layers.Layer):
    """RGB in [0, 255] -> (BGR minus the Caffe mean pixel) * `scale`.

    `scale=1.0` is Caffe's convention (pretrained VGG/DeepLab weights expect
    it); networks trained from scratch here use a small scale so that their
    input is about unit-sized.
    """

    def __init__(self, scale: float = 1.0, **kwargs):
        super().__init__(**kwargs)
        self.scale = float(scale)

    def call(self, frames):
        x = tf.cast(frames, self.compute_dtype)
        x = tf.reverse(x, axis=[-1])
        x = x - tf.constant(CAFFE_MEAN_BGR, self.compute_dtype)
        return x * self.scale if self.scale != 1.0 else x

    def get_config(self):
        return {**super().get_config(), "scale": self.scale}


def camera_flow(flow, iterations: int = 5, min_scale: float = 0.5):
    """The camera's part of optical flow: a robust affine fit per frame.

    Fits u = a0 + a1 x + a2 y and v = b0 + b1 x + b2 y (x, y in [-1, 1] over
    the frame) by iteratively reweighted least squares with Cauchy weights
    w = 1 / (1 + |r|^2 / c^2), where r is the residual of the previous fit and
    c its weighted RMS (at least `min_scale` pixels). Independently moving
    objects, a minority of pixels, are down-weighted, so the fit follows the
    background. The 3x3 normal equations are solved in closed form (no
    matrix ops, so it exports to ONNX).

    Args:
        flow: [N, H, W, 2] float32 flow in pixels.

    Returns:
        [N, H, W, 2] the fitted camera flow.
    """
    shape = tf.shape(flow)
    h, w = shape[1], shape[2]

    def axis(n):
        n_f = tf.cast(n, tf.float32)
        return tf.cast(tf.range(n), tf.float32) * (2.0 / tf.maximum(n_f - 1.0, 1.0)) - 1.0

    x = tf.broadcast_to(axis(w)[None, :], tf.stack([h, w]))[None, :, :, None]
    y = tf.broadcast_to(axis(h)[:, None], tf.stack([h, w]))[None, :, :, None]
    weights = tf.ones_like(flow[..., :1])
    fitted = tf.zeros_like(flow)

    def total(t):
        return tf.reduce_sum(t, axis=[1, 2], keepdims=True)

    for _ in range(iterations):
        weights = weights / total(weights)  # weighted means keep the system well scaled
        s1, sx, sy = total(weights), total(weights * x), total(weights * y)
        sxx, sxy, syy = total(weights * x * x), total(weights * x * y), total(weights * y * y)
        # Inverse of the symmetric [[s1, sx, sy], [sx, sxx, sxy], [sy, sxy, syy]]
        # by cofactors; each t* is [N, 1, 1, 2] (u and v together).
        c00 = sxx * syy - sxy * sxy
        c01 = sy * sxy - sx * syy
        c02 = sx * sxy - sy * sxx
        c11 = s1 * syy - sy * sy
        c12 = sx * sy - s1 * sxy
        c22 = s1 * sxx - sx * sx
        det = s1 * c00 + sx * c01 + sy * c02
        det = tf.where(tf.abs(det) < 1e-9, tf.ones_like(det) * 1e-9, det)
        t0, tx, ty = total(weights * flow), total(weights * x * flow), total(weights * y * flow)
        a0 = (c00 * t0 + c01 * tx + c02 * ty) / det
        a1 = (c01 * t0 + c11 * tx + c12 * ty) / det
        a2 = (c02 * t0 + c12 * tx + c22 * ty) / det
        fitted = a0 + a1 * x + a2 * y
        r2 = tf.reduce_sum(tf.square(flow - fitted), axis=-1, keepdims=True)
        c2 = tf.maximum(total(weights * r2), min_scale**2)
        weights = 1.0 / (1.0 + r2 / c2)
    return fitted


@keras.saving.register_keras_serializable(package=_PACKAGE)
class FlowEncoding(keras.layers.Layer):
    """Optical flow in pixels -> MP-Net's input representation.

    `"uv"`: (u, v) / scale. `"angle_magnitude"`: (cos a, sin a, |f| / scale),
    with (cos a, sin a) = (1, 0) where the flow is zero. `"uv_residual"`:
    (u, v, u - u_cam, v - v_cam) / scale, where (u_cam, v_cam) is the camera's
    flow as `camera_flow` estimates it: the flow that is left is what moves
    independently of the camera (or shows parallax). `"residual"`: only
    (u - u_cam, v - v_cam) / scale.
    """

    REPRESENTATIONS = ("uv", "angle_magnitude", "uv_residual", "residual")

    def __init__(self, representation: str = "uv", scale: float = 20.0, **kwargs):
        super().__init__(**kwargs)
        if representation not in self.REPRESENTATIONS:
            raise ValueError(
                f"flow representation must be one of {self.REPRESENTATIONS}; got {representation!r}"
            )
        if not scale > 0:
            raise ValueError(f"flow scale must be positive; got {scale}")
        self.representation = representation
        self.scale = float(scale)

    def call(self, flow):
        flow = tf.cast(flow, self.compute_dtype)
        if self.representation == "uv":
            return flow / self.scale
        if self.representation in ("uv_residual", "residual"):
            residual = tf.cast(flow - camera_flow(tf.cast(flow, tf.float32)), flow.dtype)
            if self.representation == "residual":
                return residual / self.scale
            return tf.concat([flow, residual], axis=-1) / self.scale
        u, v = flow[..., 0], flow[..., 1]
        magnitude = tf.sqrt(u * u + v * v)
        safe = tf.maximum(magnitude, 1e-6)
        moving = magnitude > 1e-6
        cos = tf.where(moving, u / safe, tf.ones_like(u))
        sin = tf.where(moving, v / safe, tf.zeros_like(v))
        return tf.stack([cos, sin, magnitude / self.scale], axis=-1)

    def compute_output_shape(self, input_shape):
        channels = {"uv": 2, "angle_magnitude": 3, "uv_residual": 4, "residual": 2}
        channels = channels[self.representation]
        return tuple(input_shape[:-1]) + (channels,)

    def get_config(self):
        return {**super().get_config(), "representation": self.representation, "scale": self.scale}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class FrameWise(keras.layers.Layer):
    """Applies a per-frame layer or model to every frame of a clip.

    [B, T, *frame_shape] -> fold to [B*T, ...] -> `layer` -> unfold to
    [B, T, *output_frame_shape]. All of B, T, H, W may be dynamic.

    Args:
        layer: A layer or model taking one batch of frames.
    """

    def __init__(self, layer, **kwargs):
        super().__init__(**kwargs)
        self.layer = layer

    def build(self, input_shape):
        if not self.layer.built:
            self.layer.build((None,) + tuple(input_shape[2:]))

    def call(self, clip, training=None):
        shape = tf.shape(clip)
        folded = tf.reshape(clip, tf.concat([[-1], shape[2:]], 0))
        out = self.layer(folded, training=training)
        return tf.reshape(out, tf.concat([shape[:2], tf.shape(out)[1:]], 0))

    def compute_output_shape(self, input_shape):
        inner = self.layer.compute_output_shape((None,) + tuple(input_shape[2:]))
        return tuple(input_shape[:2]) + tuple(inner[1:])

    def get_config(self):
        return {**super().get_config(), "layer": keras.saving.serialize_keras_object(self.layer)}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["layer"] = keras.saving.deserialize_keras_object(config["layer"])
        return cls(**config)


@keras.saving.register_keras_serializable(package=_PACKAGE)
class PadFrames(keras.layers.Layer):
    """Pads a clip [B, T, H, W, C] at the bottom and right so that H and W are
    multiples of `multiple`, with a constant value per channel."""

    def __init__(self, multiple: int, values=(0.0,), **kwargs):
        super().__init__(**kwargs)
        self.multiple = int(multiple)
        self.values = tuple(float(v) for v in values)

    def call(self, clip):
        clip = tf.cast(clip, self.compute_dtype)
        shape = tf.shape(clip)
        # Non-negative operands only: tf2onnx's FloorMod of a negative
        # number does not round-trip.
        pad_h = (self.multiple - shape[2] % self.multiple) % self.multiple
        pad_w = (self.multiple - shape[3] % self.multiple) % self.multiple
        paddings = [[0, 0], [0, 0], [0, pad_h], [0, pad_w], [0, 0]]
        offset = tf.constant(self.values, self.compute_dtype)
        return tf.pad(clip - offset, paddings) + offset

    def compute_output_shape(self, input_shape):
        def up(n):
            return None if n is None else -(-n // self.multiple) * self.multiple

        return (
            input_shape[0],
            input_shape[1],
            up(input_shape[2]),
            up(input_shape[3]),
            input_shape[4],
        )

    def get_config(self):
        return {**super().get_config(), "multiple": self.multiple, "values": self.values}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class CheckClip(keras.layers.Layer):
    """Validates `frames` [B, T, H, W, 3] and `flow` [B, T, H, W, 2] and
    passes them through. Static mismatches raise `ValueError` when the model
    is called; in a traced graph or exported model the same checks run as
    assertions whose message names the input."""

    def call(self, frames, flow):
        fs, ws = frames.shape, flow.shape
        for name, shape, channels in (("frames", fs, 3), ("flow", ws, 2)):
            if len(shape) != 5:
                raise ValueError(
                    f"`{name}` must have rank 5 [batch, time, height, width, {channels}]; "
                    f"got shape {tuple(shape)}"
                )
            if shape[-1] is not None and shape[-1] != channels:
                raise ValueError(
                    f"`{name}` must have {channels} channels; got shape {tuple(shape)}"
                )
        for axis, what in ((0, "batch size"), (1, "clip length"), (2, "height"), (3, "width")):
            if fs[axis] is not None and ws[axis] is not None and fs[axis] != ws[axis]:
                raise ValueError(
                    f"`frames` and `flow` must have the same {what}; got frames "
                    f"{tuple(fs)} and flow {tuple(ws)}"
                )
        if tf.executing_eagerly() and not bool(
            tf.reduce_all(tf.math.is_finite(tf.cast(flow, tf.float32)))
        ):
            raise ValueError("`flow` contains NaN or Inf")
        checks = [
            tf.debugging.assert_equal(
                tf.shape(frames)[:4],
                tf.shape(flow)[:4],
                message="`frames` and `flow` must have the same batch, time, height, width",
            ),
            tf.debugging.assert_positive(
                tf.shape(frames)[1:4], message="`frames` has an empty time, height or width"
            ),
            tf.debugging.assert_all_finite(
                tf.cast(flow, tf.float32), message="`flow` contains NaN or Inf"
            ),
        ]
        with tf.control_dependencies(checks):
            return tf.identity(frames), tf.identity(flow)

    def compute_output_shape(self, frames_shape, flow_shape):
        return frames_shape, flow_shape


@keras.saving.register_keras_serializable(package=_PACKAGE)
class UpsampleToFrames(keras.layers.Layer):
    """Bilinear upsampling of per-frame maps [B, T, h, w, C] by `factor`,
    cropped to the frames' H x W (undoing `PadFrames`)."""

    def __init__(self, factor: int = 8, **kwargs):
        super().__init__(**kwargs)
        self.factor = int(factor)

    def call(self, maps, frames):
        shape = tf.shape(maps)
        target = tf.shape(frames)[2:4]
        folded = tf.reshape(maps, tf.concat([[-1], shape[2:]], 0))
        up = tf.image.resize(folded, shape[2:4] * self.factor, method="bilinear")
        up = tf.cast(up[:, : target[0], : target[1]], maps.dtype)
        return tf.reshape(up, tf.concat([shape[:2], target, shape[4:]], 0))

    def compute_output_shape(self, maps_shape, frames_shape):
        return tuple(maps_shape[:2]) + tuple(frames_shape[2:4]) + (maps_shape[-1],)

    def get_config(self):
        return {**super().get_config(), "factor": self.factor}

"""Small layers that move clips in and out of per-frame models, and MP-Net's
input encoding (the camera fit it uses: `camera.py`).

Time is folded into batch with explicit reshapes ([B, T, ...] -> [B*T, ...]),
never with `keras.layers.TimeDistributed`, whose fallback for unknown time
axes gives different numbers in graph mode and in exported models.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from lvo_tf.models.camera import CAMERA_MODELS, camera_flow, residual_percentile

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


@keras.saving.register_keras_serializable(package=_PACKAGE)
class FlowEncoding(keras.layers.Layer):
    """Optical flow in pixels -> MP-Net's input representation.

    `"uv"`: (u, v) / scale. `"angle_magnitude"`: (cos a, sin a, |f| / scale),
    with (cos a, sin a) = (1, 0) where the flow is zero. `"uv_residual"`:
    (u, v, u - u_cam, v - v_cam) / scale, where (u_cam, v_cam) is the camera's
    flow as `camera_flow` estimates it with `camera_model`: the flow that is
    left is what moves independently of the camera (or shows parallax).
    `"residual"`: only (u - u_cam, v - v_cam) / scale.

    Gain control (`peak` > 0, residual representations only): before the
    division by `scale`, each frame's residual is multiplied by
    peak / max(p99, MIN_PEAK), p99 being its 99th-percentile magnitude, so
    the frame's strongest independent motion is about `peak` pixels whether
    the object moves 1 pixel a frame or 20 (a per-frame gain, as a threshold
    that adapts to each frame does); frames whose residual is under
    MIN_PEAK everywhere (no mover, flow noise) are amplified at most
    peak / MIN_PEAK times. `camera_stride`: the camera fit uses every
    `camera_stride`-th pixel in each direction (see `camera_flow`).
    """

    REPRESENTATIONS = ("uv", "angle_magnitude", "uv_residual", "residual")
    PEAK_FRACTION = 0.01  # gain control: the 99th-percentile magnitude
    MIN_PEAK = 0.3  # pixels

    def __init__(
        self,
        representation: str = "uv",
        scale: float = 20.0,
        camera_model: str = "affine",
        peak: float = 0.0,
        camera_stride: int = 1,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if representation not in self.REPRESENTATIONS:
            raise ValueError(
                f"flow representation must be one of {self.REPRESENTATIONS}; got {representation!r}"
            )
        if not scale > 0:
            raise ValueError(f"flow scale must be positive; got {scale}")
        if camera_model not in CAMERA_MODELS:
            raise ValueError(
                f"camera model must be one of {sorted(CAMERA_MODELS)}; got {camera_model!r}"
            )
        if not peak >= 0:
            raise ValueError(f"flow peak must be >= 0 pixels (0: no gain control); got {peak}")
        if peak and representation not in ("uv_residual", "residual"):
            raise ValueError(
                f"gain control (peak={peak}) needs a residual representation; "
                f"got {representation!r}"
            )
        self.representation = representation
        self.scale = float(scale)
        self.camera_model = camera_model
        self.peak = float(peak)
        if not (isinstance(camera_stride, int) and camera_stride >= 1):
            raise ValueError(f"camera fit stride must be a positive integer; got {camera_stride!r}")
        self.camera_stride = camera_stride

    def call(self, flow):
        flow = tf.cast(flow, self.compute_dtype)
        if self.representation == "uv":
            return flow / self.scale
        if self.representation in ("uv_residual", "residual"):
            flow32 = tf.cast(flow, tf.float32)
            camera = camera_flow(flow32, model=self.camera_model, stride=self.camera_stride)
            residual = flow32 - camera
            if self.peak:
                p99 = residual_percentile(residual, self.PEAK_FRACTION)
                residual = residual * (self.peak / tf.maximum(p99, self.MIN_PEAK))
            residual = tf.cast(residual, flow.dtype)
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
        channels = {
            "uv": 2,
            "angle_magnitude": 3,
            "uv_residual": 4,
            "residual": 2,
        }
        channels = channels[self.representation]
        return tuple(input_shape[:-1]) + (channels,)

    def get_config(self):
        return {
            **super().get_config(),
            "representation": self.representation,
            "scale": self.scale,
            "camera_model": self.camera_model,
            "peak": self.peak,
            "camera_stride": self.camera_stride,
        }


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
class StreamMask(keras.layers.Layer):
    """Keeps one stream of the per-frame features [..., C] and zeroes the
    other (the last channel is motion, the others appearance): `"both"`
    (identity), `"motion"` or `"appearance"`."""

    def __init__(self, streams: str = "both", **kwargs):
        super().__init__(**kwargs)
        if streams not in ("both", "motion", "appearance"):
            raise ValueError(
                f"memory_streams must be 'both', 'motion' or 'appearance'; got {streams!r}"
            )
        self.streams = streams

    def call(self, features):
        if self.streams == "both":
            return features
        motion = features[..., -1:]
        appearance = features[..., :-1]
        if self.streams == "motion":
            return tf.concat([tf.zeros_like(appearance), motion], -1)
        return tf.concat([appearance, tf.zeros_like(motion)], -1)

    def get_config(self):
        return {**super().get_config(), "streams": self.streams}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class MotionMix(keras.layers.Layer):
    """Late fusion of the memory's foreground probability with the motion
    stream's: `(1 - weight) * probability + weight * motion`, where motion is
    the features' last channel (MP-Net's probability pooled to 1/8). It has
    no weights: the memory is trained alone and the mix is set when the
    model is assembled (`LVOConfig.motion_mix`)."""

    def __init__(self, weight: float, **kwargs):
        super().__init__(**kwargs)
        if not 0.0 <= weight <= 1.0:
            raise ValueError(f"motion_mix must be in [0, 1]; got {weight}")
        self.weight = float(weight)

    def call(self, probability, features):
        motion = tf.cast(features[..., -1:], probability.dtype)
        return (1.0 - self.weight) * probability + self.weight * motion

    def get_config(self):
        return {**super().get_config(), "weight": self.weight}


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
class HalveFlow(keras.layers.Layer):
    """Flow [..., H, W, 2] (H and W even) -> [..., H/2, W/2, 2]: the mean of
    each 2x2 block, halved, so it is the same motion in pixels of the half-size
    grid (what MP-Net reads with `LVOConfig.motion_stride` 2)."""

    def call(self, flow):
        shape = tf.shape(flow)
        h, w = shape[-3] // 2, shape[-2] // 2
        blocks = tf.reshape(flow, tf.stack([-1, h, 2, w, 2, 2]))
        half = tf.reduce_mean(blocks, axis=[2, 4]) * 0.5
        return tf.reshape(half, tf.concat([shape[:-3], tf.stack([h, w, 2])], axis=0))

    def compute_output_shape(self, input_shape):
        *lead, h, w, c = input_shape
        return (*lead, None if h is None else h // 2, None if w is None else w // 2, c)


@keras.saving.register_keras_serializable(package=_PACKAGE)
class CropToCells(keras.layers.Layer):
    """(features [B, T, h, w, C], flow [B, T, H, W, 2]) -> the features' first
    ceil(H / multiple) * multiple / stride rows (and columns alike): the cells
    of the frame padded to `multiple`, where the features came from a frame
    padded further (MP-Net at half size pads the frame to 32)."""

    def __init__(self, multiple: int, stride: int, **kwargs):
        super().__init__(**kwargs)
        self.multiple, self.stride = int(multiple), int(stride)

    def call(self, features, flow):
        shape = tf.shape(flow)
        m = self.multiple
        rows = (shape[2] + m - 1) // m * m // self.stride
        cols = (shape[3] + m - 1) // m * m // self.stride
        return features[:, :, :rows, :cols]

    def compute_output_shape(self, features_shape, flow_shape):
        def cells(n):
            return None if n is None else -(-n // self.multiple) * self.multiple // self.stride

        b, t, _, _, c = features_shape
        return (b, t, cells(flow_shape[2]), cells(flow_shape[3]), c)

    def get_config(self):
        return {**super().get_config(), "multiple": self.multiple, "stride": self.stride}


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

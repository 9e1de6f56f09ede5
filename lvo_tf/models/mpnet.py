"""MP-Net motion stream: optical flow -> probability of independent motion."""

from __future__ import annotations

import keras

from lvo_tf.models.deeplab_large_fov import scaled
from lvo_tf.models.frame_ops import FlowEncoding

# Encoder: (name, channels) per stage; each stage is two 3x3 convs, then a
# 2x2 max-pool (none after the last one).
ENCODER = (("enc1", 32), ("enc2", 64), ("enc3", 128), ("enc4", 256), ("enc5", 512))
# Decoder: up to 1/8 (skip from enc4), then to 1/4 (skip from enc3).
DECODER = (("dec4", 256, "enc4"), ("dec3", 128, "enc3"))


def _double_conv(x, channels: int, stage: str):
    for j in (1, 2):
        x = keras.layers.Conv2D(
            channels,
            3,
            padding="same",
            activation="relu",
            kernel_initializer="he_normal",  # keeps activations alive through ReLUs
            name=f"{stage}_conv{j}",
        )(x)
    return x


def build_mpnet(
    width: float = 1.0,
    representation: str = "uv",
    flow_scale: float = 20.0,
    name: str = "mpnet",
    camera_model: str = "affine",
    flow_peak: float = 0.0,
    camera_stride: int = 1,
) -> keras.Model:
    """MP-Net (Tokmakov et al., CVPR 2017): encoder-decoder over optical flow.

    Layers (channels at width 1.0):

    - flow encoding (`FlowEncoding`): `representation="uv"` gives
      (u, v) / flow_scale; `"angle_magnitude"` gives (cos a, sin a,
      |flow| / flow_scale), the angle as a unit vector so it does not wrap;
      `"uv_residual"` adds the flow left after a robust fit of the
      camera's flow (`camera_flow`, affine or quadratic), 4 channels;
      `"residual"` is that residual alone; `flow_peak` > 0 adds a per-frame
      gain on it (see `FlowEncoding`).
    - encoder: enc1 32, enc2 64, enc3 128, enc4 256, enc5 512; each two 3x3
      convs with ReLU, a 2x2 max-pool between stages (enc5 is at 1/16).
    - decoder: dec4 = 4x4 stride-2 up-convolution of enc5 to 256, concat
      enc4 (1/8), two 3x3 convs 256; dec3 = up-convolution to 128, concat
      enc3 (1/4), two 3x3 convs 128.
    - `motion_logits`: 1x1 conv, then sigmoid: the probability that a pixel
      moves independently of the camera, at 1/4 resolution.

    H and W must be multiples of 16 (LVO pads frames for this).

    Args:
        width: Channel multiplier.
        representation: One of `FlowEncoding.REPRESENTATIONS`.
        flow_scale: Pixels of flow that map to 1.0.
        name: Model name.
        camera_model: `"affine"` or `"quadratic"` (`camera_flow`).
        flow_peak: Gain control: pixels the 99th-percentile residual of each
            frame is scaled to (0: off).
        camera_stride: The camera fit uses every `camera_stride`-th pixel.

    Input shape:
        [N, H, W, 2] flow in pixels (u to the right, v down), t -> t+1.

    Output shape:
        [N, H/4, W/4, 1] motion probability.
    """
    flow = keras.Input((None, None, 2), name="flow")
    x = FlowEncoding(
        representation,
        flow_scale,
        camera_model,
        flow_peak,
        camera_stride=camera_stride,
        name="flow_encoding",
    )(flow)
    skips = {}
    for i, (stage, channels) in enumerate(ENCODER):
        if i:
            x = keras.layers.MaxPooling2D(2, name=f"{stage}_pool")(x)
        x = _double_conv(x, scaled(channels, width), stage)
        skips[stage] = x
    for stage, channels, skip in DECODER:
        x = keras.layers.Conv2DTranspose(
            scaled(channels, width),
            4,
            strides=2,
            padding="same",
            activation="relu",
            kernel_initializer="he_normal",
            name=f"{stage}_up",
        )(x)
        x = keras.layers.Concatenate(name=f"{stage}_concat")([x, skips[skip]])
        x = _double_conv(x, scaled(channels, width), stage)
    logits = keras.layers.Conv2D(1, 1, name="motion_logits")(x)
    probability = keras.layers.Activation("sigmoid", dtype="float32", name="motion")(logits)
    return keras.Model(flow, probability, name=name)

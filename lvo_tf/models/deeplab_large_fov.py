"""DeepLab-LargeFOV (VGG16) appearance backbone, up to fc6."""

from __future__ import annotations

import keras

from lvo_tf.models.frame_ops import CaffePreprocess

# (block, convs, channels) of VGG16; names follow Caffe's conv{block}_{i}.
VGG16_BLOCKS = ((1, 2, 64), (2, 2, 128), (3, 3, 256), (4, 3, 512), (5, 3, 512))
FC6_CHANNELS = 1024
VGG_CONV_NAMES = tuple(f"conv{b}_{i}" for b, n, _ in VGG16_BLOCKS for i in range(1, n + 1))


def scaled(channels: int, width: float) -> int:
    return max(1, int(round(channels * width)))


def build_deeplab_large_fov(
    width: float = 1.0,
    name: str = "deeplab_large_fov",
    input_scale: float = 1.0,
    fc6_channels: int | None = None,
) -> keras.Model:
    """DeepLab-LargeFOV (Chen et al., ICLR 2015) on VGG16, truncated at fc6.

    Exactly the LargeFOV topology: conv1_1 ... conv5_3 (3x3, ReLU); pool1-3
    3x3 stride 2; pool4 and pool5 3x3 stride 1; conv5_x with dilation 2; fc6
    3x3 with dilation 12 and 1024 channels, ReLU. Output stride 8: an H x W
    frame gives ceil(H/8) x ceil(W/8) features. Caffe's input convention
    (RGB -> BGR, minus the per-channel mean) is applied inside, so callers
    pass RGB frames in [0, 255] (uint8 or float).

    Args:
        width: Channel multiplier (1.0 is the paper's network; the `lite`
            preset uses fewer channels, same topology).
        input_scale: Multiplies the mean-subtracted input: 1.0 for Caffe's
            convention (pretrained weights), about 1/64 for training from
            scratch.
        name: Model name.
        fc6_channels: fc6's channels (default: 1024 times `width`); a
            narrower fc6 on the full-width VGG16 convs is the `davis`
            preset's (fc6 is trained there, on a small dataset).

    Input shape:
        [N, H, W, 3], RGB, 0..255.

    Output shape:
        [N, ceil(H/8), ceil(W/8), fc6_channels or round(1024 * width)], fc6
        after ReLU. The layer `pool5` gives the frozen convs' output (the
        input of fc6), [N, ceil(H/8), ceil(W/8), round(512 * width)].
    """
    frames = keras.Input((None, None, 3), name="frames")
    x = CaffePreprocess(input_scale, name="caffe_preprocess")(frames)
    for block, convs, channels in VGG16_BLOCKS:
        dilation = 2 if block == 5 else 1
        for i in range(1, convs + 1):
            x = keras.layers.Conv2D(
                scaled(channels, width),
                3,
                padding="same",
                dilation_rate=dilation,
                activation="relu",
                kernel_initializer="he_normal",  # for training from scratch
                name=f"conv{block}_{i}",
            )(x)
        stride = 2 if block <= 3 else 1
        x = keras.layers.MaxPooling2D(3, strides=stride, padding="same", name=f"pool{block}")(x)
    fc6 = keras.layers.Conv2D(
        fc6_channels or scaled(FC6_CHANNELS, width),
        3,
        padding="same",
        dilation_rate=12,
        activation="relu",
        kernel_initializer="he_normal",
        name="fc6",
    )(x)
    return keras.Model(frames, fc6, name=name)

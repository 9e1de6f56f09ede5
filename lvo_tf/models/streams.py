"""The per-frame streams: appearance (DeepLab-LargeFOV and the reduction), motion
(MP-Net), both over a clip (`build_streams`), and the pieces that train or
cache the appearance stream over VGG16's frozen convs (trunk and head)."""

from __future__ import annotations

import keras

from lvo_tf.models.config import OUTPUT_STRIDE, PAD_MULTIPLE, LVOConfig, resolve_config
from lvo_tf.models.deeplab_large_fov import build_deeplab_large_fov
from lvo_tf.models.frame_ops import (
    CAFFE_MEAN_RGB,
    CheckClip,
    CropToCells,
    FrameWise,
    HalveFlow,
    PadFrames,
)
from lvo_tf.models.mpnet import build_mpnet


def build_appearance(config: LVOConfig) -> keras.Model:
    """Frames [N, H, W, 3] -> appearance features [N, H/8, W/8, C].

    DeepLab-LargeFOV fc6 (frozen in LVO), then two 1x1 convs with tanh
    between, both to `appearance_channels`, Glorot-initialised.
    """
    deeplab = build_deeplab_large_fov(
        config.appearance_width,
        input_scale=config.appearance_input_scale,
        fc6_channels=config.appearance_fc6,
    )
    frames = keras.Input((None, None, 3), name="frames")
    x = deeplab(frames)
    x = keras.layers.Conv2D(config.appearance_channels, 1, activation="tanh", name="reduce1")(x)
    x = keras.layers.Conv2D(config.appearance_channels, 1, name="reduce2")(x)
    return keras.Model(frames, x, name="appearance")


def build_appearance_classifier(config: LVOConfig | str) -> tuple[keras.Model, keras.Model]:
    """(classifier, appearance) for training the appearance stream alone:
    frames [N, H, W, 3] -> the appearance stream -> `appearance_classifier`,
    a 1x1 conv with sigmoid -> foreground probability [N, H/8, W/8, 1]."""
    appearance = build_appearance(resolve_config(config))
    frames = keras.Input((None, None, 3), name="frames")
    logits = keras.layers.Conv2D(1, 1, name="appearance_classifier")(appearance(frames))
    probability = keras.layers.Activation("sigmoid", dtype="float32", name="foreground")(logits)
    return keras.Model(frames, probability, name="appearance_classifier"), appearance


def build_appearance_trunk(appearance: keras.Model) -> keras.Model:
    """Frames [N, H, W, 3] -> the frozen VGG16 convs' output (DeepLab's
    `pool5`, fc6's input) [N, H/8, W/8, 512 * width], sharing `appearance`'s
    layers. What `extract_features --trunk_only` caches."""
    deeplab = appearance.get_layer("deeplab_large_fov")
    return keras.Model(deeplab.input, deeplab.get_layer("pool5").output, name="appearance_trunk")


def build_appearance_head(appearance: keras.Model) -> keras.Model:
    """The trained part of the appearance stream on cached trunk features:
    [N, h, w, 512 * width] -> fc6 -> the two reduction convs -> [N, h, w, C],
    sharing `appearance`'s layers, so that
    `head(trunk(frames)) == appearance(frames)`."""
    fc6 = appearance.get_layer("deeplab_large_fov").get_layer("fc6")
    trunk = keras.Input((None, None, fc6.kernel.shape[2]), name="trunk")
    x = fc6(trunk)
    x = appearance.get_layer("reduce1")(x)
    x = appearance.get_layer("reduce2")(x)
    return keras.Model(trunk, x, name="appearance_head")


def build_head_classifier(config: LVOConfig | str) -> tuple[keras.Model, keras.Model]:
    """(classifier, appearance) like `build_appearance_classifier`, but the
    classifier reads cached trunk features (`build_appearance_head`): for
    training fc6 and the reduction over frozen, cached VGG16 convs."""
    appearance = build_appearance(resolve_config(config))
    head = build_appearance_head(appearance)
    trunk = keras.Input((None, None, head.input.shape[-1]), name="trunk")
    logits = keras.layers.Conv2D(1, 1, name="appearance_classifier")(head(trunk))
    probability = keras.layers.Activation("sigmoid", dtype="float32", name="foreground")(logits)
    return keras.Model(trunk, probability, name="head_classifier"), appearance


def build_motion(config: LVOConfig) -> keras.Model:
    return build_mpnet(
        config.motion_width,
        config.flow_representation,
        config.flow_scale,
        name="motion",
        camera_model=config.camera_model,
        flow_peak=config.flow_peak,
        camera_stride=config.camera_stride,
    )


# === Functional Models ===


def build_streams(config: LVOConfig, appearance=None, motion=None) -> keras.Model:
    """(frames [B, T, H, W, 3] uint8, flow [B, T, H, W, 2]) -> per-frame
    features [B, T, ceil16(H)/8, ceil16(W)/8, appearance_channels + 1]."""
    appearance = appearance or build_appearance(config)
    motion = motion or build_motion(config)
    frames_in = keras.Input((None, None, None, 3), dtype="uint8", name="frames")
    flow_in = keras.Input((None, None, None, 2), dtype="float32", name="flow")
    frames, flow = CheckClip(name="check_clip")(frames_in, flow_in)
    frames = PadFrames(PAD_MULTIPLE, CAFFE_MEAN_RGB, name="pad_frames")(frames)
    a = FrameWise(appearance, name="appearance_stream")(frames)
    layers = {
        "pad_flow": PadFrames(PAD_MULTIPLE * config.motion_stride, (0.0, 0.0), name="pad_flow"),
        "motion_stream": FrameWise(motion, name="motion_stream"),
    }
    if config.motion_stride == 1:
        layers["motion_pool"] = keras.layers.MaxPooling3D((1, 2, 2), name="motion_pool")
    else:
        layers["halve_flow"] = HalveFlow(name="halve_flow")
        layers["motion_pool"] = CropToCells(PAD_MULTIPLE, OUTPUT_STRIDE, name="motion_pool")
    m = motion_cells(layers.get, flow)
    features = keras.layers.Concatenate(axis=-1, name="features")([a, m])
    return keras.Model([frames_in, flow_in], features, name="streams")


def strided_motion(stream: keras.Model, stride: int) -> keras.Model:
    """flow [N, H, W, 2] -> `stream` (an MP-Net) on the flow at 1/stride
    (`HalveFlow`), as `build_streams` runs it with `motion_stride` 2."""
    if stride == 1:
        return stream
    flow = keras.Input((None, None, 2), name="flow")
    return keras.Model(flow, stream(HalveFlow(name="halve_flow")(flow)), name="strided_motion")


def motion_cells(layer, flow):
    """flow [B, T, H, W, 2] -> MP-Net's probability at the 1/8 cells of the
    frame padded to 16, through the motion layers of `build_streams`
    (`layer(name)` gives one, None if absent): at the frame's size, pooled
    1/4 -> 1/8; or with `motion_stride` 2 (a `halve_flow` layer) at half
    size, whose 1/4 is 1/8, cropped to those cells."""
    padded = layer("pad_flow")(flow)
    halve = layer("halve_flow")
    m = layer("motion_stream")(halve(padded) if halve else padded)
    return layer("motion_pool")(m, flow) if halve else layer("motion_pool")(m)


def _layer_or_none(model: keras.Model):
    names = {layer.name for layer in model.layers}
    return lambda name: model.get_layer(name) if name in names else None


def build_trunk_clip(streams: keras.Model) -> keras.Model:
    """frames [B, T, H, W, 3] -> the appearance trunk's output
    [B, T, ceil16(H)/8, ceil16(W)/8, 512 * width], padded as `streams`
    pads them, sharing its layers (`extract_features --trunk_only`)."""
    trunk = build_appearance_trunk(streams.get_layer("appearance_stream").layer)
    frames = keras.Input((None, None, None, 3), dtype="uint8", name="frames")
    padded = streams.get_layer("pad_frames")(frames)
    return keras.Model(frames, FrameWise(trunk, name="trunk")(padded), name="trunk_clip")


def build_streams_from_trunk(streams: keras.Model) -> keras.Model:
    """(trunk [B, T, h, w, 512 * width] as `build_trunk_clip` gives, flow
    [B, T, H, W, 2]) -> the features `streams` computes from the frames
    whose trunk output that is, sharing its layers: fc6, the reduction and
    MP-Net only (`extract_features --trunk_cache`)."""
    head = build_appearance_head(streams.get_layer("appearance_stream").layer)
    trunk = keras.Input((None, None, None, head.input.shape[-1]), name="trunk")
    flow_in = keras.Input((None, None, None, 2), dtype="float32", name="flow")
    a = FrameWise(head, name="appearance_head")(trunk)
    m = motion_cells(_layer_or_none(streams), flow_in)
    features = keras.layers.Concatenate(axis=-1, name="features")([a, m])
    return keras.Model([trunk, flow_in], features, name="streams_from_trunk")


def build_motion_features(streams: keras.Model) -> keras.Model:
    """(frames, flow) as `streams` takes them -> the features `streams` gives
    with the appearance channels zero, sharing its layers, without running
    the appearance stream: what a memory that reads the motion stream only
    (`memory_streams="motion"`, whose stream mask zeroes those channels)
    sees, at the cost of MP-Net alone."""
    frames_in = keras.Input((None, None, None, 3), dtype="uint8", name="frames")
    flow_in = keras.Input((None, None, None, 2), dtype="float32", name="flow")
    _, flow = streams.get_layer("check_clip")(frames_in, flow_in)
    m = motion_cells(_layer_or_none(streams), flow)
    appearance_channels = streams.output.shape[-1] - 1
    zeros = keras.ops.repeat(keras.ops.zeros_like(m), appearance_channels, axis=-1)
    features = keras.layers.Concatenate(axis=-1, name="features")([zeros, m])
    return keras.Model([frames_in, flow_in], features, name="motion_features")

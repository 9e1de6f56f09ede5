"""The visual memory and head over stream features (`build_memory`), and its
streaming step sharing the same layers (`build_memory_step`)."""

from __future__ import annotations

import keras

from lvo_tf.layers import ConvGRU
from lvo_tf.models.config import LVOConfig
from lvo_tf.models.frame_ops import MotionMix, StreamMask


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
    def conv_gru(name: str) -> ConvGRU:
        return ConvGRU(
            config.memory_filters,
            config.memory_kernel,
            return_sequences=True,
            recompute=config.memory_recompute,
            name=name,
        )

    if config.memory_type == "bidirectional":
        gru = conv_gru("conv_gru")
        memory = keras.layers.Bidirectional(gru, merge_mode="concat", name="visual_memory")
    elif config.memory_type == "forward":
        memory = conv_gru("visual_memory")
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


def carries_state(memory: keras.Model) -> bool:
    """Whether a `build_memory` model's memory is recurrent (bidirectional or
    forward ConvGRU), so that `build_memory_step` can carry its state; the
    per-frame memory (`memory_type="none"`) carries none."""
    return isinstance(memory.get_layer("visual_memory"), (keras.layers.Bidirectional, ConvGRU))


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
    if not carries_state(memory):
        raise ValueError("build_memory_step: a memory without recurrence has no state to carry")
    layer = memory.get_layer("visual_memory")
    bidirectional = isinstance(layer, keras.layers.Bidirectional)
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

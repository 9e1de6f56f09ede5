"""LVO, the whole network: frames and flow in, foreground probability out
(`build_lvo`). Its parts: `config.py` (settings and presets), `streams.py`
(appearance and motion), `memory.py` (visual memory, head, streaming step)."""

from __future__ import annotations

import keras

from lvo_tf.models.config import OUTPUT_STRIDE, LVOConfig, resolve_config
from lvo_tf.models.frame_ops import UpsampleToFrames
from lvo_tf.models.memory import build_memory
from lvo_tf.models.streams import build_appearance, build_motion, build_streams


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

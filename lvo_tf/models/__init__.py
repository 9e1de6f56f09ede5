"""LVO networks: DeepLab-LargeFOV, MP-Net, the memory + head, and the factory."""

from lvo_tf.models.deeplab_large_fov import build_deeplab_large_fov
from lvo_tf.models.lvo import (
    PRESETS,
    LVOConfig,
    build_appearance,
    build_appearance_classifier,
    build_appearance_head,
    build_appearance_trunk,
    build_head_classifier,
    build_lvo,
    build_memory,
    build_memory_step,
    build_motion,
    build_streams,
    build_streams_from_trunk,
    build_trunk_clip,
    resolve_config,
)
from lvo_tf.models.mpnet import build_mpnet

__all__ = [
    "PRESETS",
    "LVOConfig",
    "build_appearance",
    "build_appearance_classifier",
    "build_appearance_head",
    "build_appearance_trunk",
    "build_head_classifier",
    "build_deeplab_large_fov",
    "build_lvo",
    "build_memory",
    "build_memory_step",
    "build_motion",
    "build_mpnet",
    "build_streams",
    "build_streams_from_trunk",
    "build_trunk_clip",
    "resolve_config",
]

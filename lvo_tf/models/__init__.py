"""LVO networks, in the spirit of keras-hub's presets / backbone / task files:
`config.py` (LVOConfig and the presets), `streams.py` (appearance and motion
streams), `memory.py` (visual memory, head and its streaming step), `lvo.py`
(the whole network), with their layers (`frame_ops.py`, `camera.py`,
`deeplab_large_fov.py`, `mpnet.py`) and weight I/O (`weights.py`)."""

from lvo_tf.models.config import OUTPUT_STRIDE, PAD_MULTIPLE, PRESETS, LVOConfig, resolve_config
from lvo_tf.models.deeplab_large_fov import build_deeplab_large_fov
from lvo_tf.models.lvo import build_lvo
from lvo_tf.models.memory import build_memory, build_memory_step, carries_state
from lvo_tf.models.mpnet import build_mpnet
from lvo_tf.models.streams import (
    build_appearance,
    build_appearance_classifier,
    build_appearance_head,
    build_appearance_trunk,
    build_head_classifier,
    build_motion,
    build_motion_features,
    build_streams,
    build_streams_from_trunk,
    build_trunk_clip,
    strided_motion,
)

__all__ = [
    "OUTPUT_STRIDE",
    "PAD_MULTIPLE",
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
    "build_motion_features",
    "build_mpnet",
    "build_streams",
    "build_streams_from_trunk",
    "build_trunk_clip",
    "strided_motion",
    "carries_state",
    "resolve_config",
]

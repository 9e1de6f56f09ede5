"""Optical flow: OpenCV DIS / Farneback, Middlebury .flo files, an on-disk cache.

Convention (Middlebury, and the synthetic world's ground truth): flow[t] is
the motion from frame t to frame t+1, `flow[t][y, x] = (u, v)` in pixels,
so pixel (x, y) of frame t is at (x + u, y + v) in frame t+1. A clip of T
frames gets T flow fields: the last frame has no successor and repeats the
previous frame's flow (a moving object keeps its motion cue); a single-frame
clip gets zero flow.
"""

from __future__ import annotations

import os
import threading

import cv2
import numpy as np
from absl import logging

from lvo_tf.common import io_utils

FLO_MAGIC = 202021.25  # "PIEH" as a little-endian float32
MAX_FLO_SIDE = 100_000
# A displacement larger than this many times the field's side is not flow.
MAX_DISPLACEMENT = 4

# name: (OpenCV preset, finest pyramid scale or None for the preset's own).
DIS_PRESETS = {
    "ultrafast": (cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST, None),
    "fast": (cv2.DISOPTICAL_FLOW_PRESET_FAST, None),
    "medium": (cv2.DISOPTICAL_FLOW_PRESET_MEDIUM, None),
    # OpenCV's presets stop their coarse-to-fine pyramid at half the frame's
    # resolution (finest scale 1) and upsample from there. "fine" is the
    # medium preset carried down to the frame itself (finest scale 0): the
    # flow of a 240-row frame at 240 rows, about 3.5x the cost of "medium".
    "fine": (cv2.DISOPTICAL_FLOW_PRESET_MEDIUM, 0),
}
METHODS = tuple(f"dis_{p}" for p in DIS_PRESETS) + ("farneback",)
DEFAULT_METHOD = "dis_medium"


class FlowFileError(ValueError):
    """A .flo file is malformed; the message names the file and the problem."""


# === Middlebury .flo ===


def write_flo(path: str, flow: np.ndarray) -> None:
    """Writes [H, W, 2] float flow as a Middlebury .flo file, atomically."""
    flow = np.asarray(flow)
    if flow.ndim != 3 or flow.shape[2] != 2 or 0 in flow.shape:
        raise ValueError(f"flow for {path!r} must be [H, W, 2]; got shape {flow.shape}")
    h, w = flow.shape[:2]
    with io_utils.atomic_path(path, suffix=".flo") as tmp, open(tmp, "wb") as f:
        np.array([FLO_MAGIC], "<f4").tofile(f)
        np.array([w, h], "<i4").tofile(f)
        flow.astype("<f4").tofile(f)


def read_flo(path: str) -> np.ndarray:
    """Reads a Middlebury .flo file into [H, W, 2] float32, validating the
    magic number, the sizes and the length."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise FlowFileError(f"cannot read flow file {path!r}: {e.strerror}") from None
    if len(data) < 12:
        raise FlowFileError(f"flow file {path!r} is truncated ({len(data)} bytes, no header)")
    magic = np.frombuffer(data, "<f4", 1)[0]
    if magic != np.float32(FLO_MAGIC):
        raise FlowFileError(f"flow file {path!r} has a wrong magic number ({magic}); not a .flo")
    w, h = (int(v) for v in np.frombuffer(data, "<i4", 2, offset=4))
    if not (0 < w <= MAX_FLO_SIDE and 0 < h <= MAX_FLO_SIDE):
        raise FlowFileError(f"flow file {path!r} declares an invalid size {w}x{h}")
    expected = 12 + 8 * w * h
    if len(data) != expected:
        raise FlowFileError(
            f"flow file {path!r} is truncated or padded: {len(data)} bytes for {w}x{h} "
            f"(expected {expected})"
        )
    flow = np.frombuffer(data, "<f4", 2 * w * h, offset=12).reshape(h, w, 2).copy()
    if not np.all(np.isfinite(flow)):
        raise FlowFileError(f"flow file {path!r} holds non-finite values (NaN or inf)")
    limit = MAX_DISPLACEMENT * max(h, w)
    if np.abs(flow).max(initial=0.0) > limit:
        raise FlowFileError(
            f"flow file {path!r} holds displacements up to {np.abs(flow).max():.3g} pixels, "
            f"more than {MAX_DISPLACEMENT}x the field's size: not a flow field"
        )
    return flow


# === Computing flow ===


def _gray(frame: np.ndarray) -> np.ndarray:
    if frame.ndim == 3:
        return cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
    return frame


class FlowEstimator:
    """Flow between two RGB uint8 frames with one of `METHODS`.

    Safe to call from several threads (tf.data workers): each thread gets its
    own OpenCV DIS object, which is not thread-safe to share."""

    def __init__(self, method: str = DEFAULT_METHOD):
        if method not in METHODS:
            raise ValueError(f"unknown flow method {method!r}; choose from {METHODS}")
        self.method = method
        self._local = threading.local()

    def _dis(self):
        dis = getattr(self._local, "dis", None)
        if dis is None:
            preset, finest_scale = DIS_PRESETS[self.method[4:]]
            dis = self._local.dis = cv2.DISOpticalFlow_create(preset)
            if finest_scale is not None:
                dis.setFinestScale(finest_scale)
        return dis

    def __call__(self, frame: np.ndarray, next_frame: np.ndarray) -> np.ndarray:
        a, b = _gray(frame), _gray(next_frame)
        if a.shape != b.shape:
            raise ValueError(f"frames differ in size: {a.shape} and {b.shape}")
        if self.method.startswith("dis_"):
            flow = self._dis().calc(a, b, None)
        else:
            flow = cv2.calcOpticalFlowFarneback(a, b, None, 0.5, 4, 21, 3, 5, 1.1, 0)
        # A field larger than the frame is garbage (what a DIS object shared
        # between threads produced); never let it reach a cache or a network.
        if not np.all(np.abs(flow) <= 2 * max(a.shape)):
            raise RuntimeError(f"{self.method} produced an invalid flow field (non-finite or huge)")
        return flow


def clip_flow(frames: np.ndarray, method: str = DEFAULT_METHOD) -> np.ndarray:
    """[T, H, W, 3] uint8 frames -> [T, H, W, 2] float32 flow (see module doc
    for the last frame)."""
    frames = np.asarray(frames)
    estimator = FlowEstimator(method)
    t = len(frames)
    flow = np.zeros(frames.shape[:3] + (2,), np.float32)
    for i in range(t - 1):
        flow[i] = estimator(frames[i], frames[i + 1])
    if t > 1:
        flow[-1] = flow[-2]
    return flow


class FlowCache:
    """Flow fields on disk: `<root>/<method>/<sequence>/<frame stem>.flo`,
    computed on first use, written atomically, reused afterwards. A cached
    field that is unreadable, non-finite or of another size than the frames
    is computed again (and replaced), with a warning naming it."""

    def __init__(self, root: str, method: str = DEFAULT_METHOD):
        self.root = root
        self.estimator = FlowEstimator(method)
        self.method = method

    def path(self, sequence: str, stem: str) -> str:
        return os.path.join(self.root, self.method, sequence, stem + ".flo")

    def _cached(self, path: str, size: tuple[int, int] | None) -> np.ndarray | None:
        """The field at `path` if it is there and valid for frames of `size`."""
        if not os.path.isfile(path):
            return None
        try:
            flow = read_flo(path)
        except FlowFileError as e:
            logging.warning("%s; computing it again", e)
            return None
        if size is not None and flow.shape[:2] != tuple(size):
            logging.warning(
                "flow file %r is %dx%d but the frames are %dx%d; computing it again",
                path,
                flow.shape[1],
                flow.shape[0],
                size[1],
                size[0],
            )
            return None
        return flow

    def field(self, sequence: str, stems: list[str], i: int, frames) -> np.ndarray:
        """Flow of frame i alone (the last frame repeats the previous field;
        a one-frame sequence gets zeros). `frames(j)` loads frame j."""
        t = len(stems)
        if t == 1:
            return np.zeros(frames(0).shape[:2] + (2,), np.float32)
        i = min(i, t - 2)
        path = self.path(sequence, stems[i])
        first = frames(i)
        flow = self._cached(path, first.shape[:2])
        if flow is not None:
            return flow
        flow = self.estimator(first, frames(i + 1))
        write_flo(path, flow)
        return flow

    def sequence_flow(self, sequence: str, stems: list[str], frames) -> np.ndarray:
        """Flow for every frame of a sequence. `frames(i)` returns frame i
        (called only for fields not in the cache)."""
        t = len(stems)
        out = [None] * t
        cached = {}
        size = None
        for i in range(t - 1):
            path = self.path(sequence, stems[i])
            if size is None and os.path.isfile(path):
                cached[0] = frames(0)  # one frame read gives the size every field must have
                size = cached[0].shape[:2]
            flow = self._cached(path, size)
            if flow is not None:
                out[i] = flow
                continue
            if i not in cached:
                cached[i] = frames(i)
            cached[i + 1] = frames(i + 1)
            out[i] = self.estimator(cached[i], cached[i + 1])
            write_flo(path, out[i])
            cached.pop(i)
        if t == 1:
            out[0] = np.zeros(frames(0).shape[:2] + (2,), np.float32)
        else:
            out[-1] = out[-2]
        return np.stack(out)

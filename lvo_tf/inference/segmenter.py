"""Segmenting whole videos with an LVO model: windows, streaming, upsampling.

The model is a pure function of a clip; how a long or live video is cut into
clips, and which memory is carried between them, lives here.

- `segment_windows`: the bidirectional memory over windows of `window`
  frames overlapping by `overlap`. Stream features are computed once per
  frame and only the current window's are kept, so memory is bounded by the
  window, not the video. Each frame takes its prediction from the window in
  which it lies farthest from a window edge. With `window >= T` the result is
  exactly that of the whole video.
- `OnlineSegmenter`: for live or unbounded input. The forward memory carries
  its state from chunk to chunk; the backward memory only sees the current
  chunk (of `chunk` frames, 1 for no latency). This is the causal trade-off:
  an object that starts moving later cannot be found in earlier frames. For
  a model trained forward-only it is exact.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterator

import keras
import numpy as np
import tensorflow as tf

from lvo_tf.models.config import OUTPUT_STRIDE
from lvo_tf.models.frame_ops import UpsampleToFrames
from lvo_tf.models.memory import build_memory_step, carries_state
from lvo_tf.models.streams import build_motion_features


@dataclasses.dataclass
class StageTimes:
    """Seconds spent per stage (wall time, summed over calls). With a
    `Prefetcher`, "read" and "flow" run on its thread at the same time as
    the others, and "wait" is the time the network's thread waited for them."""

    read: float = 0.0
    flow: float = 0.0
    streams: float = 0.0
    memory: float = 0.0
    upsample: float = 0.0
    crf: float = 0.0
    write: float = 0.0
    wait: float = 0.0  # the network's thread blocked for prefetched input

    def add(self, stage: str, seconds: float) -> None:
        setattr(self, stage, getattr(self, stage) + seconds)


class LVORunner:
    """Compiled pieces of an LVO model, each with a fully dynamic signature.

    The streams run on `stream_batch` frames at a time (time folded into
    batch): large enough for full-speed convolutions, small enough that a
    window of full-size frames does not hold all its activations at once.
    With a memory that reads the motion stream only (both shipped models),
    the appearance stream is skipped: its channels are zeros, as the
    memory's stream mask makes them anyway (`full_streams` runs it all the
    same, for comparison)."""

    def __init__(self, model: keras.Model, stream_batch: int = 8, full_streams: bool = False):
        if stream_batch < 1:
            raise ValueError(f"stream_batch must be >= 1; got {stream_batch}")
        self.model = model
        self.stream_batch = stream_batch
        streams = model.get_layer("streams")
        memory = model.get_layer("memory")
        self.memory = memory
        self.recurrent = carries_state(memory)  # else per frame (memory_type="none")
        c = memory.input.shape[-1]
        clip = (None, None, None, None)
        # A memory that reads motion only zeroes the appearance channels itself:
        # the appearance stream need not run (same features, MP-Net's cost alone).
        self.motion_only = memory.get_layer("stream_mask").streams == "motion"
        if self.motion_only and not full_streams:
            streams = build_motion_features(streams)
        self.streams_model = streams
        self._streams = tf.function(
            lambda f, w: streams([f, w], training=False),
            input_signature=[
                tf.TensorSpec(clip + (3,), tf.uint8),
                tf.TensorSpec(clip + (2,), tf.float32),
            ],
        )
        self._memory = tf.function(
            lambda x: memory(x, training=False),
            input_signature=[tf.TensorSpec(clip + (c,), tf.float32)],
        )
        upsample = UpsampleToFrames(OUTPUT_STRIDE)
        self._upsample = tf.function(
            lambda p, f: upsample(p, f),
            input_signature=[
                tf.TensorSpec(clip + (1,), tf.float32),
                tf.TensorSpec(clip + (3,), tf.uint8),
            ],
        )
        if self.recurrent:  # the model's own streaming step (models.build_memory_step)
            step = build_memory_step(memory)
            self.state_channels = step.input["state"].shape[-1]
            self._online = tf.function(
                lambda x, h: step({"features": x, "state": h}, training=False),
                input_signature=[
                    tf.TensorSpec(clip + (c,), tf.float32),
                    tf.TensorSpec((None, None, None, self.state_channels), tf.float32),
                ],
            )

    def features(self, frames: np.ndarray, flow: np.ndarray) -> np.ndarray:
        """[T, H, W, 3], [T, H, W, 2] -> [T, h, w, C] float32."""
        b = self.stream_batch
        parts = [
            np.asarray(self._streams(frames[None, s : s + b], flow[None, s : s + b]))[0]
            for s in range(0, len(frames), b)
        ]
        return np.concatenate(parts) if len(parts) > 1 else parts[0]

    def coarse(self, features: np.ndarray) -> np.ndarray:
        """Memory + head over one clip: [T, h, w, C] -> [T, h, w, 1]."""
        return np.asarray(self._memory(features[None].astype(np.float32)))[0]

    def upsample(self, coarse: np.ndarray, frames: np.ndarray) -> np.ndarray:
        """[T, h, w, 1] at 1/8 -> [T, H, W] at the frames' size."""
        return np.asarray(self._upsample(coarse[None], frames[None]))[0, ..., 0]

    def online(self, features: np.ndarray, state: np.ndarray | None):
        """One chunk [T, h, w, C] with the forward memory carried in `state`
        ([h, w, F] or None): returns ([T, h, w, 1], new state). A model without
        memory (`memory_type="none"`) has no state: it returns an empty one."""
        if not self.recurrent:
            return self.coarse(features), np.zeros(features.shape[1:3] + (0,), np.float32)
        if state is None:
            state = np.zeros(features.shape[1:3] + (self.state_channels,), np.float32)
        out = self._online(features[None].astype(np.float32), state[None])
        return np.asarray(out["probabilities"])[0], np.asarray(out["state"])[0]

    def online_probabilities(
        self,
        frames: np.ndarray,
        flow: np.ndarray,
        state: np.ndarray | None,
        times: StageTimes | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """One chunk of a stream end to end: frames [T, H, W, 3] and flow
        [T, H, W, 2] with the carried state (None at the start) ->
        (probabilities [T, H, W] at the frames' size, new state), each
        stage's time added to `times`. `segment --online` on a file and on a
        live source both run this."""
        times = times or StageTimes()
        t0 = time.perf_counter()
        feats = self.features(frames, flow)
        t1 = time.perf_counter()
        coarse, state = self.online(feats, state)
        t2 = time.perf_counter()
        probabilities = self.upsample(coarse, frames)
        times.add("streams", t1 - t0)
        times.add("memory", t2 - t1)
        times.add("upsample", time.perf_counter() - t2)
        return probabilities, state


def window_starts(length: int, window: int, overlap: int) -> list[int]:
    """Start frames of the windows covering [0, length)."""
    if window < 1 or not 0 <= overlap < window:
        raise ValueError(f"need window >= 1 and 0 <= overlap < window; got {window}, {overlap}")
    if length <= window:
        return [0]
    step = window - overlap
    starts = list(range(0, length - window, step)) + [length - window]
    return sorted(set(starts))


def window_owner(length: int, starts: list[int], window: int) -> list[int]:
    """For each frame, the index of the window in which it lies farthest from
    an interior window edge (an edge that is not the video's own first or
    last frame); ties go to the earlier window. Non-decreasing in t."""
    owner = []
    for t in range(length):
        margins = []
        for s in starts:
            if not s <= t < s + window:
                margins.append(-1.0)
                continue
            left = t - s if s > 0 else np.inf
            right = s + window - 1 - t if s + window < length else np.inf
            margins.append(min(left, right))
        owner.append(int(np.argmax(margins)))
    return owner


def segment_windows(
    runner: LVORunner,
    length: int,
    frame: Callable[[int], np.ndarray],
    flow: Callable[[int], np.ndarray],
    window: int = 28,
    overlap: int = 8,
    times: StageTimes | None = None,
    done: Callable[[int], bool] | None = None,
) -> Iterator[tuple[int, np.ndarray]]:
    """Yields (t, coarse probability [h, w, 1]) in order for every frame not
    `done`, keeping only one window of features in memory. A window whose
    frames are all done is not computed."""
    times = times or StageTimes()
    starts = window_starts(length, window, overlap)
    owner = window_owner(length, starts, window)
    todo_frames = [t for t in range(length) if not (done and done(t))]
    cache: dict[int, np.ndarray] = {}
    emitted = 0
    for k, s in enumerate(starts):
        if not any(owner[t] == k for t in todo_frames):
            continue
        end = min(s + window, length)
        for t in [t for t in list(cache) if t < s]:
            del cache[t]
        todo = [t for t in range(s, end) if t not in cache]
        # The streams run on `stream_batch` frames at a time as their inputs
        # arrive, so a prefetcher prepares the next ones meanwhile (the
        # callbacks time reading and flow themselves).
        for c in range(0, len(todo), runner.stream_batch):
            part = todo[c : c + runner.stream_batch]
            flows = np.stack([flow(t) for t in part])
            images = np.stack([frame(t) for t in part])
            t1 = time.perf_counter()
            feats = runner.features(images, flows)
            times.add("streams", time.perf_counter() - t1)
            cache.update(zip(part, feats, strict=True))
        t0 = time.perf_counter()
        coarse = runner.coarse(np.stack([cache[t] for t in range(s, end)]))
        times.add("memory", time.perf_counter() - t0)
        while emitted < len(todo_frames) and owner[todo_frames[emitted]] == k:
            t = todo_frames[emitted]
            yield t, coarse[t - s]
            emitted += 1

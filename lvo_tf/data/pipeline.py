"""tf.data pipelines of training clips, with the paper's stop-and-go augmentation.

A clip is `clip_length` consecutive frames of one random video, randomly
cropped and horizontally flipped (the same crop and flip for the whole clip).
Two kinds of source:

- `FeatureSource`: cached per-frame stream features [T, h, w, C] (the motion
  probability is the last channel) with soft labels [T, h, w, 1] at 1/8,
  as written by `lvo_tf.extract_features`;
- `FrameSource`: frames [T, H, W, 3] uint8, flow [T, H, W, 2] and masks
  [T, H, W, 1] (a flip negates the flow's u).

Stop-and-go augmentation (Tokmakov et al. 2017), in a fraction of the clips:

- `stop`: the clip's first `L - k` real frames, then the last real frame
  repeated k times with zero motion input and its ground truth: an object
  that stops;
- `static_start`: the first real frame repeated k times with zero motion
  input and its ground truth, then `L - k` real frames: an object static at
  the start. (k = 5 in the paper.)

"Zero motion input" is the motion channel for features and the flow for
frames. Every random choice of clip `i` is a stateless draw from
`(seed, i)`, so the stream is the same for a seed whatever the parallelism.
"""

from __future__ import annotations

import dataclasses
import json
import os

import cv2
import numpy as np
import tensorflow as tf

from lvo_tf.common import flag_values
from lvo_tf.data import flow as flow_lib
from lvo_tf.data import readers

NO_AUGMENT, STOP, STATIC_START = 0, 1, 2


@dataclasses.dataclass(frozen=True)
class ClipConfig:
    clip_length: int = 14
    crop: tuple[int, int] | None = None  # (height, width) at the source's resolution
    flip: bool = True
    stop_and_go: float = 0.2  # fraction of clips augmented
    stop_frames: int = 5
    seed: int = 0
    # Features only: each clip's motion channel times a log-uniform factor in
    # [lo, hi] (weaker or stronger motion responses than the source has).
    motion_gain: tuple[float, float] | None = None
    # Features only: the fraction of clips whose appearance channels are
    # zeroed (the memory learns to segment from motion alone as well).
    appearance_dropout: float = 0.0

    def __post_init__(self):
        if self.motion_gain is not None:
            flag_values.check_range("motion_gain", self.motion_gain)
        if not 0.0 <= self.appearance_dropout <= 1.0:
            raise ValueError(f"appearance_dropout must be in [0, 1]; got {self.appearance_dropout}")
        if self.clip_length < 1:
            raise ValueError(f"clip_length must be >= 1; got {self.clip_length}")
        if not 0.0 <= self.stop_and_go <= 1.0:
            raise ValueError(f"stop_and_go must be in [0, 1]; got {self.stop_and_go}")
        if self.stop_and_go > 0 and not 0 < self.stop_frames < self.clip_length:
            raise ValueError(
                f"stop_frames must be in [1, clip_length); got {self.stop_frames} "
                f"with clip_length {self.clip_length}"
            )


class FeatureSource:
    """Cached features: `<root>/index.json`, `<root>/<seq>.features.npy`
    (float16 [T, h, w, C]) and `<root>/<seq>.labels.npy` (float16 [T, h, w, 1],
    the fraction of foreground pixels in each 8x8 cell)."""

    kind = "features"

    def __init__(self, root: str, sequences: list[str] | None = None):
        index_path = os.path.join(root, "index.json")
        if not os.path.isfile(index_path):
            raise FileNotFoundError(f"no feature cache at {root!r} (missing index.json)")
        with open(index_path) as f:
            index = json.load(f)
        names = sequences or sorted(index["sequences"])
        unknown = sorted(set(names) - set(index["sequences"]))
        if unknown:
            raise ValueError(f"sequences not in the feature cache {root!r}: {unknown}")
        self.root, self.names = root, names
        self.lengths = [index["sequences"][n]["frames"] for n in names]
        self.channels = index["channels"]
        self.size = tuple(index["sequences"][names[0]]["size"])
        sizes = {tuple(index["sequences"][n]["size"]) for n in names}
        if len(sizes) > 1:
            raise ValueError(f"feature cache {root!r} mixes sizes {sorted(sizes)}; crop needed")
        self._arrays = {}

    def _load(self, name):
        if name not in self._arrays:
            base = os.path.join(self.root, name)
            self._arrays[name] = (
                np.load(base + ".features.npy", mmap_mode="r"),
                np.load(base + ".labels.npy", mmap_mode="r"),
            )
        return self._arrays[name]

    def clip(self, index: int, start: int, length: int):
        features, labels = self._load(self.names[index])
        return (
            np.asarray(features[start : start + length], np.float32),
            np.asarray(labels[start : start + length], np.float32),
        )

    def signature(self, length):
        h, w = self.size
        return (
            tf.TensorSpec((length, h, w, self.channels), tf.float32),
            tf.TensorSpec((length, h, w, 1), tf.float32),
        )


class FrameSource:
    """Frames, flow and masks held as arrays: {name: (frames, flow, masks)}."""

    kind = "frames"

    def __init__(self, videos: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]):
        if not videos:
            raise ValueError("FrameSource needs at least one video")
        self.names = sorted(videos)
        self.videos = videos
        self.lengths = [len(videos[n][0]) for n in self.names]
        sizes = {videos[n][0].shape[1:3] for n in self.names}
        if len(sizes) > 1:
            raise ValueError(f"videos of different sizes {sorted(sizes)}; give a crop")
        self.size = next(iter(sizes))

    def clip(self, index: int, start: int, length: int):
        frames, flow, masks = self.videos[self.names[index]]
        s = slice(start, start + length)
        return frames[s], flow[s].astype(np.float32), masks[s].astype(np.float32)

    def signature(self, length):
        h, w = self.size
        return (
            tf.TensorSpec((length, h, w, 3), tf.uint8),
            tf.TensorSpec((length, h, w, 2), tf.float32),
            tf.TensorSpec((length, h, w, 1), tf.float32),
        )


class DiskFrameSource:
    """Like `FrameSource`, read from a DAVIS-layout dataset on demand: frames
    (JPEGImages), flow through a `FlowCache` (computed on first use) and
    masks (Annotations). For training on frames + flow without holding the
    videos in memory."""

    kind = "frames"

    def __init__(self, root: str, split: str, flow_cache):
        self.sequences = {s.name: s for s in readers.davis_sequences(root, split)}
        if not self.sequences:
            raise ValueError(f"no sequences in {root!r} for split {split!r}")
        self.names = sorted(self.sequences)
        self.lengths = [len(self.sequences[n]) for n in self.names]
        self.flow_cache = flow_cache
        first = readers.read_frame(self.sequences[self.names[0]].frame_paths[0])
        self.size = first.shape[:2]

    def clip(self, index: int, start: int, length: int):
        seq = self.sequences[self.names[index]]
        frames = np.stack([readers.read_frame(p) for p in seq.frame_paths[start : start + length]])
        if frames.shape[1:3] != self.size:
            raise ValueError(
                f"sequence {seq.name!r}: frames of {frames.shape[1:3]}, not {self.size}"
            )
        flow = np.stack(
            [
                self.flow_cache.field(
                    seq.name, seq.stems, t, lambda j: readers.read_frame(seq.frame_paths[j])
                )
                for t in range(start, start + length)
            ]
        )
        masks = readers.load_annotations(seq, self.size)
        labels = np.stack([masks[s] for s in seq.stems[start : start + length]])
        return frames, flow.astype(np.float32), labels[..., None].astype(np.float32)

    signature = FrameSource.signature


def _draws(seed: int, i):
    """Six uniform numbers in [0, 1) for clip i: sequence, start, crop y, crop x,
    flip, augmentation (kind)."""
    return tf.random.stateless_uniform([6], seed=tf.stack([tf.cast(seed, tf.int64), i]))


def _stop_and_go(parts, kind, k, motion_slices):
    """Applies a stop-and-go kind to a tuple of clip tensors [L, ...]."""
    length = tf.shape(parts[0])[0]

    def stop():
        keep = tf.range(length - k)
        idx = tf.concat([keep, tf.fill([k], length - k - 1)], 0)
        repeated = tf.concat([tf.zeros([length - k]), tf.ones([k])], 0)
        return idx, repeated

    def static_start():
        idx = tf.concat([tf.zeros([k], tf.int32), tf.range(length - k)], 0)
        repeated = tf.concat([tf.ones([k]), tf.zeros([length - k])], 0)
        return idx, repeated

    def none():
        return tf.range(length), tf.zeros([length])

    idx, repeated = tf.switch_case(kind, [none, stop, static_start])
    out = [tf.gather(p, idx) for p in parts]
    for part, channels in motion_slices:  # zero the motion input of repeated frames
        keep = 1.0 - repeated[:, None, None, None]
        x = out[part]
        if channels is None:
            out[part] = x * keep
        else:
            lo, hi = channels
            out[part] = tf.concat([x[..., :lo], x[..., lo:hi] * keep, x[..., hi:]], -1)
    return out


def clip_dataset(
    source, config: ClipConfig = ClipConfig(), batch_size: int = 1, start: int = 0
) -> tf.data.Dataset:
    """An endless, deterministic dataset of (inputs, labels) batches.

    For `FeatureSource`: `features` [B, L, h, w, C] -> labels [B, L, h, w, 1].
    For `FrameSource`: `{"frames", "flow"}` -> masks [B, L, H, W, 1].
    Each element also carries `augment` [B] (0 none, 1 stop, 2 static start).
    `start` skips the first `start` clips at no cost (resuming training at
    clip `step * batch_size` gives exactly the stream an uninterrupted run sees).
    """
    length = config.clip_length
    usable = [i for i, t in enumerate(source.lengths) if t >= length]
    if not usable:
        raise ValueError(
            f"no video has {length} frames (longest: {max(source.lengths)}); lower the clip length"
        )
    usable_t = tf.constant(usable, tf.int32)
    lengths_t = tf.constant([source.lengths[i] for i in usable], tf.int32)
    h, w = source.size
    ch, cw = config.crop or (h, w)
    if ch > h or cw > w:
        raise ValueError(f"crop {ch}x{cw} is larger than the clips ({h}x{w})")
    signature = source.signature(length)

    def load(i):
        u = _draws(config.seed, i)
        pick = tf.minimum(tf.cast(u[0] * len(usable), tf.int32), len(usable) - 1)
        index = usable_t[pick]
        span = lengths_t[pick] - length + 1
        start = tf.minimum(tf.cast(u[1] * tf.cast(span, tf.float32), tf.int32), span - 1)
        parts = tf.numpy_function(
            lambda a, b: source.clip(int(a), int(b), length),
            [index, start],
            [s.dtype for s in signature],
            stateful=False,
        )
        for p, s in zip(parts, signature, strict=True):
            p.set_shape(s.shape)
        return i, u, tuple(parts)

    def augment(i, u, parts):
        y = tf.cast(u[2] * (h - ch + 1), tf.int32)
        x = tf.cast(u[3] * (w - cw + 1), tf.int32)
        parts = [p[:, y : y + ch, x : x + cw] for p in parts]
        flip = config.flip and True
        do_flip = tf.logical_and(tf.constant(flip), u[4] < 0.5)
        parts = [tf.cond(do_flip, lambda p=p: tf.reverse(p, [2]), lambda p=p: p) for p in parts]
        if source.kind == "frames":  # flipping negates the horizontal flow
            parts[1] = tf.cond(
                do_flip, lambda: parts[1] * tf.constant([-1.0, 1.0]), lambda: parts[1]
            )
        aug = u[5] < config.stop_and_go
        kind = tf.where(aug, tf.where(u[5] < config.stop_and_go / 2, STOP, STATIC_START), 0)
        kind = tf.cast(kind, tf.int32)
        if source.kind == "features":
            c = source.channels
            motion = [(0, (c - 1, c))]
            if config.motion_gain:
                key = tf.random.experimental.stateless_fold_in(
                    tf.stack([tf.cast(config.seed, tf.int64), i]), 1
                )
                lo, hi = np.log(config.motion_gain[0]), np.log(config.motion_gain[1])
                gain = tf.exp(lo + tf.random.stateless_uniform([], seed=key) * (hi - lo))
                scale = tf.concat([tf.ones([c - 1]), [gain]], 0)
                parts[0] = parts[0] * tf.cast(scale, parts[0].dtype)
            if config.appearance_dropout > 0:
                key = tf.random.experimental.stateless_fold_in(
                    tf.stack([tf.cast(config.seed, tf.int64), i]), 2
                )
                drop = tf.random.stateless_uniform([], seed=key) < config.appearance_dropout
                keep = tf.concat([tf.fill([c - 1], 1.0 - tf.cast(drop, tf.float32)), [1.0]], 0)
                parts[0] = parts[0] * tf.cast(keep, parts[0].dtype)
        else:
            motion = [(1, None)]
        parts = _stop_and_go(parts, kind, config.stop_frames, motion)
        if source.kind == "features":
            return {"features": parts[0], "augment": kind}, parts[1]
        return {"frames": parts[0], "flow": parts[1], "augment": kind}, parts[2]

    ds = tf.data.Dataset.counter(start=start)
    ds = ds.map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    ds = ds.map(augment, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.batch(batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)


# === Per-frame training examples (MP-Net, the appearance stream) ===


def _padded_cells(mask: np.ndarray, size: tuple[int, int], stride: int) -> np.ndarray:
    """Binary mask -> zero-padded to `size` -> fraction of foreground per
    `stride` x `stride` cell, [h / stride, w / stride, 1] float32."""
    hp, wp = size
    padded = np.zeros((hp, wp), np.float32)
    padded[: mask.shape[0], : mask.shape[1]] = mask
    return padded.reshape(hp // stride, stride, wp // stride, stride).mean(axis=(1, 3))[..., None]


class _FrameExamples:
    """Examples (input, label) of single frames with a label PNG in
    `<root>/<label_dir>/480p/<seq>/<stem>.png`. Inputs are padded to a
    multiple of 16; labels come at 1/`label_stride` as cell fractions.
    Subclasses set `label_dir`, `label_stride`, `channels`, `dtype`,
    `flip_scale` (multiplied into the input on a flip, or None) and
    `last_frame` (whether the last frame of a sequence has an example)."""

    label_dir = label_stride = channels = dtype = flip_scale = None
    last_frame = True
    crop_multiple = 16  # crops start and end on this grid of the input

    def __init__(self, root: str, split: str):
        self.root = root
        self.items = []
        for seq in readers.davis_sequences(root, split):
            stems = seq.stems if self.last_frame else seq.stems[:-1]
            for i, stem in enumerate(stems):
                label = os.path.join(root, self.label_dir, "480p", seq.name, stem + ".png")
                if os.path.isfile(label):
                    self.items.append((seq, i, label))
        if not self.items:
            raise ValueError(f"no labels under {root!r}/{self.label_dir}/480p for split {split!r}")
        first = readers.read_frame(self.items[0][0].frame_paths[0])
        h, w = first.shape[:2]
        self.size = (-(-h // 16) * 16, -(-w // 16) * 16)
        self.frame_size = (h, w)

    def _label(self, path: str, size: tuple[int, int]) -> np.ndarray:
        label = cv2.imread(path, cv2.IMREAD_GRAYSCALE)
        if label is None or label.shape != size or size != self.frame_size:
            raise ValueError(f"{path!r}: unreadable, or its size differs from its input")
        return _padded_cells(label > 127, self.size, self.label_stride)

    def _pad(self, x: np.ndarray) -> np.ndarray:
        out = np.zeros((*self.size, x.shape[-1]), x.dtype)
        out[: x.shape[0], : x.shape[1]] = x
        return out


class TrunkSource:
    """Per-frame (cached trunk features, foreground label) examples from a
    feature cache of the appearance trunk (`extract_features --trunk_only`:
    VGG16's conv output at 1/8, labels as foreground fractions per 8x8
    cell), for training fc6 and the reduction without running VGG16.
    `sequences`: the cache's sequences to use (default all)."""

    label_stride, dtype, flip_scale, crop_multiple = 1, np.float32, None, 1

    def __init__(self, root: str, sequences: list[str] | None = None):
        self.features = FeatureSource(root, sequences)
        self.channels = self.features.channels
        self.size = self.features.size
        self.items = [(k, t) for k, n in enumerate(self.features.lengths) for t in range(n)]

    def example(self, index: int):
        k, t = self.items[index]
        features, labels = self.features.clip(k, t, 1)
        return features[0], labels[0]


class MotionSource(_FrameExamples):
    """Per-frame (flow, independently-moving label) examples from a dataset in
    the layout `lvo_tf.synthesize` writes (labels in `Motion/480p/<seq>/`).

    `flow`: `"ground_truth"` reads `Flow/<seq>/<stem>.flo`; a flow method
    name (`dis_medium`, ...) estimates it through the flow cache in
    `flow_dir`, so the network learns the noise of the flow it will see at
    inference. Flow and labels are padded (zeros) to a multiple of 16; labels
    come at 1/4 resolution as the fraction of moving pixels per 4x4 cell.
    """

    label_dir, label_stride, channels, dtype = "Motion", 4, 2, np.float32
    flip_scale = (-1.0, 1.0)  # a horizontal flip negates u
    last_frame = False  # no flow out of the last frame

    def __init__(
        self, root: str, split: str = "train", flow: str = "dis_medium", flow_dir: str | None = None
    ):

        super().__init__(root, split)
        self.flow = flow
        if flow != "ground_truth":
            self.cache = flow_lib.FlowCache(flow_dir or os.path.join(root, "FlowCache"), flow)

    def example(self, index: int):
        seq, i, label_path = self.items[index]
        if self.flow == "ground_truth":
            flow = flow_lib.read_flo(
                os.path.join(self.root, "Flow", seq.name, seq.stems[i] + ".flo")
            )
        else:
            flow = self.cache.field(
                seq.name, seq.stems, i, lambda j: readers.read_frame(seq.frame_paths[j])
            )
        label = self._label(label_path, flow.shape[:2])
        return self._pad(flow.astype(np.float32)), label


class AppearanceSource(_FrameExamples):
    """Per-frame (RGB frame, foreground label) examples from a DAVIS-layout
    dataset (labels in `Annotations/480p/<seq>/`): uint8 frames padded with
    zeros to a multiple of 16, labels at 1/8 resolution as the fraction of
    foreground pixels per 8x8 cell (the appearance stream's output stride)."""

    label_dir, label_stride, channels, dtype = "Annotations", 8, 3, np.uint8

    def example(self, index: int):
        seq, i, label_path = self.items[index]
        frame = readers.read_frame(seq.frame_paths[i])
        return self._pad(frame), self._label(label_path, frame.shape[:2])


def example_dataset(
    source: _FrameExamples,
    crop: tuple[int, int] | None = None,
    flip: bool = True,
    seed: int = 0,
    batch_size: int = 8,
    start: int = 0,
    scale_range: tuple[float, float] | None = None,
) -> tf.data.Dataset:
    """Endless deterministic batches of (inputs [B, h, w, C], labels
    [B, h/s, w/s, 1]) from a `MotionSource`, `AppearanceSource` or
    `TrunkSource`, randomly cropped (offsets on the source's
    `crop_multiple` grid: 16 pixels of frames, 1 cell of cached features)
    and flipped (with flow, u negated).
    `scale_range=(lo, hi)` multiplies each input by a log-uniform factor in
    [lo, hi] (for flow: faster and slower cameras and objects than the
    source has)."""
    h, w = source.size
    ch, cw = crop or (h, w)
    g = source.crop_multiple
    if ch % g or cw % g or ch > h or cw > w:
        raise ValueError(f"crop must be multiples of {g} within {h}x{w}; got {ch}x{cw}")
    n, s = len(source.items), source.label_stride
    dtype = tf.as_dtype(source.dtype)

    def load(i):
        u = _draws(seed, i)
        index = tf.minimum(tf.cast(u[0] * n, tf.int32), n - 1)
        x, label = tf.numpy_function(
            lambda k: source.example(int(k)), [index], [dtype, tf.float32], stateful=False
        )
        x.set_shape((h, w, source.channels))
        label.set_shape((h // s, w // s, 1))
        y0 = tf.cast(u[1] * ((h - ch) // g + 1), tf.int32) * g
        x0 = tf.cast(u[2] * ((w - cw) // g + 1), tf.int32) * g
        x = x[y0 : y0 + ch, x0 : x0 + cw]
        label = label[y0 // s : (y0 + ch) // s, x0 // s : (x0 + cw) // s]
        if flip:
            do = u[3] < 0.5

            def flipped():
                f = tf.reverse(x, [1])
                return f * tf.constant(source.flip_scale, dtype) if source.flip_scale else f

            x = tf.cond(do, flipped, lambda: x)
            label = tf.cond(do, lambda: tf.reverse(label, [1]), lambda: label)
        if scale_range:
            lo, hi = np.log(scale_range[0]), np.log(scale_range[1])
            x = x * tf.cast(tf.exp(lo + u[4] * (hi - lo)), x.dtype)
        return x, label

    ds = tf.data.Dataset.counter(start=start)
    ds = ds.map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.batch(batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)

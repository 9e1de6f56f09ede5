"""Cached per-frame stream features for training the memory without the streams.

Layout (read by `lvo_tf.data.pipeline.FeatureSource`):

    <root>/index.json          {"channels": C, "stride": 8,
                                "sequences": {name: {"frames": T, "size": [h, w]}}}
    <root>/<seq>.features.npy  float16 [T, h, w, C]: appearance channels, then motion
    <root>/<seq>.labels.npy    float16 [T, h, w, 1]: foreground fraction per 8x8 cell

One shard per sequence; each file is written atomically and the index is
updated after both files of a sequence exist, so an interrupted extraction
resumes with the first sequence not in the index.
"""

from __future__ import annotations

import json
import os

import numpy as np
import tensorflow as tf

from lvo_tf.common import io_utils
from lvo_tf.data import flow as flow_lib
from lvo_tf.models.config import OUTPUT_STRIDE, PAD_MULTIPLE
from lvo_tf.models.streams import build_streams_from_trunk, build_trunk_clip

STREAMS = ("both", "motion", "appearance")


def stream_mask(streams: str, channels: int) -> np.ndarray:
    """Float32 [channels] that keeps one stream of cached features (the last
    channel is motion, the others appearance) and zeroes the other, for
    ablations of the memory on one stream: `"both"`, `"motion"`,
    `"appearance"`."""
    if streams not in STREAMS:
        raise ValueError(f"streams must be one of {STREAMS}; got {streams!r}")
    mask = np.ones(channels, np.float32)
    if streams == "motion":
        mask[:-1] = 0
    elif streams == "appearance":
        mask[-1] = 0
    return mask


def labels_at_stride(masks: np.ndarray) -> np.ndarray:
    """[T, H, W] bool -> [T, h, w, 1] float16 foreground fraction per cell,
    on the model's padded grid (H, W padded to a multiple of 16 with background)."""
    t, h, w = masks.shape
    hp, wp = -(-h // PAD_MULTIPLE) * PAD_MULTIPLE, -(-w // PAD_MULTIPLE) * PAD_MULTIPLE
    padded = np.zeros((t, hp, wp), np.float32)
    padded[:, :h, :w] = masks
    s = OUTPUT_STRIDE
    cells = padded.reshape(t, hp // s, s, wp // s, s).mean(axis=(2, 4))
    return cells[..., None].astype(np.float16)


class FeatureCache:
    def __init__(self, root: str):
        self.root = root
        os.makedirs(root, exist_ok=True)
        path = os.path.join(root, "index.json")
        if os.path.isfile(path):
            with open(path) as f:
                self.index = json.load(f)
        else:
            self.index = {"channels": None, "stride": OUTPUT_STRIDE, "sequences": {}}

    def __contains__(self, name: str) -> bool:
        return name in self.index["sequences"]

    def write(self, name: str, features: np.ndarray, labels: np.ndarray) -> None:
        """Writes a sequence's shard, then records it in the index."""
        self.write_shard(name, features, labels)
        self._record(name, features.shape)
        io_utils.write_json(os.path.join(self.root, "index.json"), self.index)

    def write_shard(self, name: str, features: np.ndarray, labels: np.ndarray) -> None:
        """A sequence's two files, each atomically, without touching the index
        (for writers in parallel; `index_shards` records them after)."""
        if features.shape[:3] != labels.shape[:3]:
            raise ValueError(f"{name}: features {features.shape} and labels {labels.shape} differ")
        self._check_channels(name, int(features.shape[-1]))
        for suffix, array in ((".features.npy", features), (".labels.npy", labels)):
            path = os.path.join(self.root, name + suffix)
            with io_utils.atomic_path(path, suffix=".npy") as tmp:
                np.save(tmp, array.astype(np.float16))

    def _check_channels(self, name: str, channels: int) -> None:
        if self.index["channels"] not in (None, channels):
            raise ValueError(
                f"{name}: {channels} channels, but the cache at {self.root!r} holds "
                f"{self.index['channels']} (another preset?)"
            )

    def _record(self, name: str, shape) -> None:
        self._check_channels(name, int(shape[-1]))
        self.index["channels"] = int(shape[-1])
        size = [int(shape[1]), int(shape[2])]
        self.index["sequences"][name] = {"frames": int(shape[0]), "size": size}

    def index_shards(self, names: list[str]) -> None:
        """Records the shards of `names` (written by `write_shard`) in the
        index, in that order, reading only their headers; one write."""
        for name in names:
            feats = np.load(os.path.join(self.root, name + ".features.npy"), mmap_mode="r")
            labels = np.load(os.path.join(self.root, name + ".labels.npy"), mmap_mode="r")
            if feats.shape[:3] != labels.shape[:3]:
                raise ValueError(f"{name}: shard's features and labels differ in shape")
            self._record(name, feats.shape)
        io_utils.write_json(os.path.join(self.root, "index.json"), self.index)


def flow_cache(flow_dir: str, height: int | None, method: str):
    """The training layout's flow cache of frames resized to `height` rows
    (`<flow_dir>/h<height>/<method>/<sequence>/`), or at their own size."""

    return flow_lib.FlowCache(os.path.join(flow_dir, f"h{height}") if height else flow_dir, method)


def _chunked(network, inputs: list[np.ndarray], chunk: int) -> np.ndarray:
    """`network` over [T, ...] inputs, `chunk` frames per call (as one clip
    [1, chunk, ...]): [T, ...] float16."""

    run = tf.function(lambda *x: network(list(x), training=False), reduce_retracing=True)
    out = []
    for start in range(0, len(inputs[0]), chunk):
        x = [a[None, start : start + chunk] for a in inputs]
        out.append(np.asarray(run(*x))[0].astype(np.float16))
    return np.concatenate(out)


def extract(streams, frames: np.ndarray, flow: np.ndarray, chunk: int = 8) -> np.ndarray:
    """Runs the streams model over a video in chunks of frames: [T, h, w, C] float16."""
    return _chunked(lambda x, training: streams(x, training=training), [frames, flow], chunk)


def streams_runner(model):
    """run(name, frames, flow, chunk) -> features: the whole streams model."""
    streams = model.get_layer("streams")
    return lambda name, frames, flow, chunk: extract(streams, frames, flow, chunk)


def trunk_runner(model):
    """run(name, frames, flow, chunk) -> the appearance trunk's output (fc6's
    input), what `extract_features --trunk_only` caches; flow is unused."""

    trunk = build_trunk_clip(model.get_layer("streams"))
    return lambda name, frames, flow, chunk: _chunked(
        lambda x, training: trunk(x[0], training=training), [frames], chunk
    )


def streams_from_trunk_runner(model, trunk_source):
    """run(name, frames, flow, chunk) -> features from the sequence's cached
    trunk output in `trunk_source` (a `FeatureSource`) and its flow: fc6,
    the reduction and MP-Net, no VGG16 (`extract_features --trunk_cache`)."""

    network = build_streams_from_trunk(model.get_layer("streams"))

    def run(name, frames, flow, chunk):
        k = trunk_source.names.index(name)
        trunk, _ = trunk_source.clip(k, 0, trunk_source.lengths[k])
        if len(trunk) != len(flow):
            raise ValueError(
                f"trunk cache {trunk_source.root!r}: sequence {name!r} has {len(trunk)} "
                f"frames, the video {len(flow)}"
            )
        return _chunked(network, [trunk, flow], chunk)

    return run

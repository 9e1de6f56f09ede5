"""Which part of LVO does the work: variants scored on cached stream features.

Every variant is scored with the DAVIS protocol (`davis_metrics`) at the
annotations' full size, overall and on the frames where the foreground is
static (known exactly in the synthetic world; `static_frames` in its Meta
JSON). Variants read the same cached features (`lvo_tf.extract_features`), so
they differ only in what comes after the streams:

- `motion`: MP-Net's probability alone (the feature's last channel), > 0.5;
- `appearance`: the appearance stream's per-frame classifier (the 1x1 conv
  `train_appearance` trains on the cached appearance channels), > 0.5;
- `memory`: a trained memory model (`memory.weights.h5` of `lvo_tf.train`,
  with its `memory_type`), > 0.5, optionally refined by the dense CRF on the
  full-size frames;
- `baseline`: the non-learned floor (`lvo_tf.inference.baseline`) on the flow
  of the full-size frames, optionally refined by the dense CRF.

`markdown` writes the table of `python -m lvo_tf.ablations` (docs/ablations.md).
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable, Iterator

import cv2
import numpy as np
import tensorflow as tf

from lvo_tf.data import readers
from lvo_tf.data.pipeline import FeatureSource
from lvo_tf.evaluation import davis_metrics
from lvo_tf.inference import baseline, crf
from lvo_tf.models import (
    build_appearance_classifier,
    build_head_classifier,
    build_memory,
    resolve_config,
    weights,
)
from lvo_tf.models.config import OUTPUT_STRIDE


@dataclasses.dataclass
class Sequence:
    name: str
    features: np.ndarray  # [T, h, w, C] float32, at 1/8 of the processed size
    processed_size: tuple[int, int]  # (H, W) the streams saw
    frames: Callable[[int], np.ndarray]  # full-size RGB frame t
    masks: list[np.ndarray]  # full-size bool annotations
    flow: Callable[[int], np.ndarray] | None  # flow of the full-size frames, t -> t+1
    static: list[int]  # frames whose foreground does not move (may be empty)


def load_sequences(
    data_root: str,
    feature_root: str,
    split: str,
    process_height: int | None,
    flow_cache=None,
) -> Iterator[Sequence]:
    """The sequences of `split` that are in the feature cache, with their
    full-size annotations and, for synthetic data, their static frames."""
    source = FeatureSource(feature_root)
    names = set(source.names)
    for seq in readers.davis_sequences(data_root, split):
        if seq.name not in names:
            continue
        features, _ = source.clip(source.names.index(seq.name), 0, len(seq))
        first = readers.read_frame(seq.frame_paths[0])
        masks = readers.load_annotations(seq, first.shape[:2])
        processed = readers.shrink_to_height(first, process_height).shape[:2]
        meta = os.path.join(data_root, "Meta", seq.name + ".json")
        static = []
        if os.path.isfile(meta):
            with open(meta) as f:
                static = list(json.load(f).get("static_frames", []))

        def frame(t, seq=seq):
            return readers.read_frame(seq.frame_paths[t])

        def flow(t, seq=seq, frame=frame):
            return flow_cache.field(seq.name, seq.stems, t, frame)

        yield Sequence(
            seq.name,
            features,
            processed,
            frame,
            [masks[s] for s in seq.stems],
            flow if flow_cache is not None else None,
            static,
        )


def upsample(coarse: np.ndarray, processed: tuple[int, int], full: tuple[int, int]) -> np.ndarray:
    """[h, w] at 1/8 of the padded processed frame -> [H, W] at full size:
    bilinear x8 with half-pixel centres (as `UpsampleToFrames`), crop the
    padding, then bilinear to the full size."""
    h, w = coarse.shape
    up = cv2.resize(coarse, (w * OUTPUT_STRIDE, h * OUTPUT_STRIDE), interpolation=cv2.INTER_LINEAR)
    up = up[: processed[0], : processed[1]]
    if up.shape != tuple(full):
        up = cv2.resize(up, (full[1], full[0]), interpolation=cv2.INTER_LINEAR)
    return up


def appearance_classifier(
    path: str, preset: str = "lite", on_trunk: bool = False
) -> Callable[[np.ndarray], np.ndarray]:
    """The 1x1 sigmoid classifier of a `train_appearance` run
    (`appearance_classifier.weights.h5`; `on_trunk`: of a run on a trunk
    cache, `--trunk_cache`), as a function of the cached appearance
    channels [T, h, w, C-1] -> [T, h, w]."""

    build = build_head_classifier if on_trunk else build_appearance_classifier
    classifier, _ = build(preset)
    classifier.load_weights(path)
    kernel, bias = classifier.get_layer("appearance_classifier").get_weights()
    w, b = kernel[0, 0, :, 0], float(bias[0])
    return lambda x: 1.0 / (1.0 + np.exp(-(x @ w + b)))


def memory_model(
    path: str, preset: str, memory_type: str, streams: str = "both", motion_mix: float = 0.0
):
    """A trained memory (feature model) as a function [T, h, w, C] -> [T, h, w];
    `streams`: what it was trained on (`train --streams`), the other stream's
    channels are zeroed inside; `motion_mix`: as the packaged model mixes the
    motion stream in (`LVOConfig.motion_mix`)."""

    model = build_memory(
        resolve_config(preset).replace(
            memory_type=memory_type, memory_streams=streams, motion_mix=motion_mix
        )
    )
    weights.load_weights(model, path)
    run = tf.function(
        lambda x: model(x, training=False),
        input_signature=[tf.TensorSpec((1, None, None, None, model.input.shape[-1]))],
    )
    return lambda x: np.asarray(run(x[None].astype(np.float32)))[0, ..., 0]


@dataclasses.dataclass
class Scores:
    j: float
    f: float
    j_static: float | None  # None: no static frames known
    f_static: float | None
    static_frames: int
    per_sequence: dict


def score(
    sequences: list[Sequence],
    coarse: Callable[[Sequence], np.ndarray] | None = None,
    full: Callable[[Sequence], list[np.ndarray]] | None = None,
    crf_params=None,
) -> Scores:
    """DAVIS J/F of a variant: `coarse(seq)` gives [T, h, w] probabilities at
    1/8 (upsampled, thresholded at 0.5 or refined by the CRF), or `full(seq)`
    gives full-size masks directly. Means over sequences (the DAVIS
    protocol); the static means pool the static frames of all sequences."""

    per_sequence, static_j, static_f = {}, [], []
    for seq in sequences:
        size = seq.masks[0].shape
        if full is not None:
            masks = full(seq)
        else:
            probabilities = coarse(seq)
            masks = []
            for t, p in enumerate(probabilities):
                up = upsample(p.astype(np.float32), seq.processed_size, size)
                masks.append(crf.refine(seq.frames(t), up, crf_params) if crf_params else up > 0.5)
        result = davis_metrics.evaluate_sequence(masks, seq.masks)
        per_sequence[seq.name] = {"J": result["J"]["mean"], "F": result["F"]["mean"]}
        for t in seq.static:
            if 0 < t < len(seq.masks) - 1 and seq.masks[t].any():
                static_j.append(result["J"]["per_frame"][t])
                static_f.append(result["F"]["per_frame"][t])

    def mean(values):  # None (JSON null) when there is nothing to average
        return float(np.mean(values)) if values else None

    return Scores(
        mean([v["J"] for v in per_sequence.values()]),
        mean([v["F"] for v in per_sequence.values()]),
        mean(static_j),
        mean(static_f),
        len(static_j),
        per_sequence,
    )


def format_score(v) -> str:
    """A score as 0.123, or n/a when missing."""
    return "n/a" if v is None or not np.isfinite(v) else f"{v:.3f}"


# Variants that do not depend on the default model (its rows carry no "model").
MODEL_FREE = ("baseline", "baseline_crf")


def headline_metrics(results: dict) -> dict:
    """What the manifest records of an ablations table: per dataset, the
    default model's J / F / static J and sequence count, with the J and F of
    the CRF and baseline rows (prefixed `crf_`, `baseline_`, `baseline_crf_`)."""
    metrics = {}
    for dataset, scores in results["bidirectional"].items():
        if not isinstance(scores, dict):  # the row's label and model id
            continue
        metrics[dataset] = {k: scores[k] for k in ("j", "f", "j_static")}
        metrics[dataset]["sequences"] = len(scores["per_sequence"])
        for key, prefix in (
            ("baseline", "baseline_"),
            ("crf", "crf_"),
            ("baseline_crf", "baseline_crf_"),
        ):
            if dataset in results.get(key, {}):
                other = results[key][dataset]
                metrics[dataset].update({prefix + "j": other["j"], prefix + "f": other["f"]})
    return metrics


def _earlier_model(key: str, row: dict, results: dict) -> bool:
    """Whether a row was measured for another model than the default model's
    row (rows written before rows named their model count as another)."""
    current = results.get("bidirectional", {}).get("model")
    return key not in MODEL_FREE and current is not None and row.get("model") != current


# Column groups of the table: (dataset, heading, score keys shown).
COLUMNS = (
    ("heldout", "held-out", ("j", "f")),
    ("dev", "dev", ("j", "f")),
    ("synthetic", "synthetic", ("j", "f", "j_static", "f_static")),
)
_KEY_TEXT = {"j": "J", "f": "F", "j_static": "J static", "f_static": "F static"}
DESCRIPTIONS = {
    "heldout": "*held-out*: the train sequences of the held-out fold (fold 0), which no "
    "stream or memory was trained on, scored at full size",
    "dev": "*dev*: the real DAVIS-2016 sequences of `--dev_root`, scored at full size",
    "synthetic": "*synthetic*: held-out synthetic stop-and-go videos; *static*: the frames "
    "where every object is still ({static} frames, pooled)",
}


def markdown(
    results: dict,
    dev_height: int | None = 240,
    flagfile: str = "flags/synthetic_memory.flags",
    model: str = "default model",
) -> str:
    """The ablations table (docs/ablations.md): a column group per dataset
    any row has, then per-sequence tables of the real datasets. `model`
    names the model the rows are of (the `davis` model's table says so)."""
    present = [c for c in COLUMNS if any(c[0] in row for row in results.values())]
    synthetic = results.get("bidirectional", {}).get("synthetic", {})
    c = baseline.MASK_CONFIDENCE
    described = "; ".join(
        DESCRIPTIONS[name].format(static=synthetic.get("static_frames", "n/a"))
        for name, *_ in present
    )
    lines = [
        f"# Ablations of the {model}",
        "",
        "Written by `python -m lvo_tf.ablations`. Every memory variant is "
        f"trained with the {model}'s flagfile (`{flagfile}`: same steps, "
        "seed and data) on the same cached stream features; thresholds are 0.5; the "
        "dense CRF rows refine the map upsampled to the video's size (the baseline hands the "
        f"CRF its mask as a {c:g} / {1 - c:g} map, `baseline.MASK_CONFIDENCE`). Real video is "
        + (f"processed at {dev_height} rows" if dev_height else "processed at its own size")
        + " (the baseline at its own size, as `segment --method=baseline` runs it). "
        "DAVIS-2016 J/F means over sequences. " + described + ".",
        "",
        "| variant | "
        + " | ".join(f"{head} {_KEY_TEXT[k]}" for _, head, keys in present for k in keys)
        + " |",
        "|---|" + "---|" * sum(len(keys) for *_, keys in present),
    ]
    earlier = [k for k, row in results.items() if _earlier_model(k, row, results)]
    for key, row in results.items():
        mark = " (†)" if key in earlier else ""
        cells = [format_score(row.get(name, {}).get(k)) for name, _, keys in present for k in keys]
        label = row["label"].replace("the default model", f"the {model}")
        lines.append(f"| {label}{mark} | " + " | ".join(cells) + " |")
    if earlier:
        lines += [
            "",
            "(†) Measured for an earlier default model (its stream features and "
            "training runs), not re-run for this one; `make ablations` re-runs every row.",
        ]
    for dataset, head, _ in present:
        if dataset == "synthetic":
            continue
        if not (
            dataset in results.get("bidirectional", {}) and dataset in results.get("baseline", {})
        ):
            continue
        columns = [
            (key, text)
            for key, text in (
                ("bidirectional", model),
                ("crf", f"{model} + CRF"),
                ("baseline", "baseline"),
                ("baseline_crf", "baseline + CRF"),
            )
            if dataset in results.get(key, {})
        ]
        lines += [
            "",
            f"| {head} sequence | " + " | ".join(f"{text} J / F" for _, text in columns) + " |",
            "|---|" + "---|" * len(columns),
        ]
        for name in results["bidirectional"][dataset]["per_sequence"]:
            cells = []
            for key, _ in columns:
                v = results[key][dataset]["per_sequence"][name]
                cells.append(f"{format_score(v['J'])} / {format_score(v['F'])}")
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"

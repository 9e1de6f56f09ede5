r"""Ablations of a shipped model: which part does the work, on synthetic and real video.

    python -m lvo_tf.ablations --work_dir=out/synthetic     # or: make ablations
    python -m lvo_tf.ablations --work_dir=out/davis --preset=davis \
        --manifest=lvo_tf/weights/davis.json --output_dir=docs/davis_model  # make davis-ablations

Reads what the model's chain (`make synthetic-weights`, `make davis-weights`)
and the ablations target write under --work_dir (feature caches, the
appearance run, the memory runs) and scores each variant (see
lvo_tf/evaluation/ablation.py) with the DAVIS protocol at the annotations'
full size on --datasets, each skipped with a warning when its folders are
missing:

- `heldout`: the held-out train sequences (features in
  WORK_DIR/features/fold0, frames and masks from --heldout_root);
- `dev`: the real sequences of --dev_root (features in WORK_DIR/features/dev);
- `synthetic`: synthetic held-out videos (WORK_DIR/synth, features in
  WORK_DIR/features/val), overall and on frames where the foreground is static.

Writes `ablations.md`, `ablations.json` and `ablations_dev.png` (per-sequence J
of the model vs the non-learned baseline) into --output_dir, and the
headline numbers into the model's manifest (--manifest). `--motion_mix_sweep`
instead scores one memory run at several motion mixes (for choosing
`package_default --motion_mix` on held-out data).

`--variants=baseline_crf,crf` scores only those rows and merges them into the
existing `ablations.json` (the other rows keep their numbers), for rescoring a
variant without retraining the rest.
"""

import json
import os
import time

from absl import app, flags, logging

from lvo_tf import cli, default_model, io_utils
from lvo_tf.data import flow as flow_lib
from lvo_tf.evaluation import ablation, davis_eval
from lvo_tf.inference import baseline, crf, run

_WORK_DIR = flags.DEFINE_string("work_dir", "out/synthetic", "Where the model's runs are.")
_DATASETS = flags.DEFINE_list(
    "datasets", ["heldout", "dev", "synthetic"], "Sets to score: heldout, dev, synthetic."
)
_HELDOUT_ROOT = flags.DEFINE_string(
    "heldout_root",
    os.environ.get("LVO_DAVIS_TRAIN", "../shared/data/davis2016-train"),
    "Full-size DAVIS-2016 train (frames and masks of the held-out fold).",
)
_DEV_ROOT = flags.DEFINE_string(
    "dev_root",
    os.environ.get("LVO_DAVIS_DEV", "../shared/data/davis2016-dev"),
    "Real sequences (DAVIS-2016 layout); skipped when absent.",
)
_OUTPUT_DIR = flags.DEFINE_string("output_dir", "docs", "Where the tables and chart go.")
_MANIFEST = flags.DEFINE_string(
    "manifest", default_model.manifest_path(), "Manifest to record the headline numbers in."
)
_PRESET = flags.DEFINE_string("preset", "lite", "Preset of the runs.")
_PROCESS_HEIGHT = flags.DEFINE_integer("process_height", 240, "Height the features were made at.")
_CRF = flags.DEFINE_bool("crf", True, "Also score the variants with the dense CRF.")
_MIX_SWEEP = flags.DEFINE_list(
    "motion_mix_sweep",
    None,
    "Instead of the table: score the memory run (with and without the CRF) at each of "
    "these motion mixes on --datasets; writes motion_mix_sweep.{json,md} into --output_dir.",
)
_MEMORY_RUN = flags.DEFINE_string(
    "memory_run", "memory", "With --motion_mix_sweep: the memory run (folder under --work_dir)."
)
_VARIANTS = flags.DEFINE_list(
    "variants", None, "Only these rows (keys of VARIANTS), merged into the existing ablations.json."
)

# (key, label, kind, run folder under work_dir). A memory run's own
# config.json says which memory it trained and on which streams (the label
# gets the streams appended).
VARIANTS = (
    ("baseline", "non-learned baseline (DIS + homography + Otsu)", "baseline", None),
    ("baseline_crf", "non-learned baseline + dense CRF", "baseline_crf", None),
    ("motion", "motion stream alone (MP-Net > 0.5)", "motion", None),
    ("appearance", "appearance stream alone (per-frame classifier)", "appearance", None),
    ("no_memory", "no memory (per-frame 7x7 conv)", "memory", "ablation/none"),
    ("forward", "forward-only memory", "memory", "ablation/forward"),
    ("bidirectional", "bidirectional memory (the default model)", "memory", "memory"),
    ("no_mix", "bidirectional memory, motion stream not mixed in", "memory", "memory"),
    ("both_streams", "bidirectional memory, both streams", "memory", "ablation/both_streams"),
    ("motion_only", "bidirectional memory, motion only", "memory", "ablation/motion_only"),
    (
        "no_stop_and_go",
        "bidirectional, trained without stop-and-go",
        "memory",
        "ablation/no_stop_and_go",
    ),
    ("no_gain", "bidirectional, trained without motion gain", "memory", "ablation/no_gain"),
    ("crf", "bidirectional + dense CRF", "crf", "memory"),
)
STREAMS_TEXT = {
    "both": "both streams",
    "motion": "motion stream",
    "appearance": "appearance stream",
}


# The rows of the shipped model itself: the motion stream is mixed into the
# memory's output as the manifest says (`package_default --motion_mix`); every
# other memory row is the memory alone.
MIXED = ("bidirectional", "crf")


def _manifest_mix() -> float:
    path = _MANIFEST.value
    if not path or not os.path.isfile(path):
        return 0.0
    with open(path) as f:
        return float(json.load(f).get("config", {}).get("motion_mix", 0.0))


def _predictor(kind, work, run_dir, mix=0.0):
    """(coarse, full, streams) of a variant, or None when its run is missing."""
    if kind in ("baseline", "baseline_crf"):
        params = crf.CRFParams() if kind == "baseline_crf" else None

        def full(seq):
            masks = []
            for t in range(len(seq.masks)):
                image = seq.frames(t)
                p = baseline.probability(seq.flow(t))
                masks.append(run.to_mask(p, image, image, params))
            return masks

        return None, full, None
    if kind == "motion":
        return (lambda seq: seq.features[..., -1]), None, None
    if kind == "appearance":
        path = os.path.join(work, "appearance", "appearance_classifier.weights.h5")
        if not os.path.isfile(path):
            return None
        with open(os.path.join(work, "appearance", "config.json")) as f:
            on_trunk = bool(json.load(f).get("trunk_cache"))
        classify = ablation.appearance_classifier(path, _PRESET.value, on_trunk)
        return (lambda seq: classify(seq.features[..., :-1])), None, None
    path = os.path.join(work, run_dir, "memory.weights.h5")
    if not os.path.isfile(path):
        return None
    with open(os.path.join(work, run_dir, "config.json")) as f:
        settings = json.load(f)
    streams = settings.get("streams", "both")
    run_memory = ablation.memory_model(
        path, _PRESET.value, settings.get("memory_type", "bidirectional"), streams, mix
    )
    return (lambda seq: run_memory(seq.features)), None, streams


DATASETS = ("heldout", "dev", "synthetic")


def _datasets(work):
    """{name: (data root, feature cache, split, flow cache of the full-size
    frames for the baseline)} of the --datasets whose folders exist."""
    known = {
        "heldout": (_HELDOUT_ROOT.value, "fold0", "train", "heldout_flow_full"),
        "dev": (_DEV_ROOT.value, "dev", "val", "dev_flow_full"),
        "synthetic": (os.path.join(work, "synth"), "val", "val", "synth/FlowCache"),
    }
    sets = {}
    for name in _DATASETS.value:
        root, features, split, flow_dir = known[name]
        features = os.path.join(work, "features", features)
        if not (os.path.isdir(root) and os.path.isfile(os.path.join(features, "index.json"))):
            logging.warning("%s: no data (%s) or no features (%s): skipped", name, root, features)
            continue
        flows = flow_lib.FlowCache(os.path.join(work, flow_dir), "dis_medium")
        sets[name] = (root, features, split, flows)
    return sets


def _sweep(work: str, out: str, mixes: list[float]) -> None:
    """The memory run (--memory_run) at each motion mix, thresholded and
    (unless --nocrf) with the CRF, on each dataset: for choosing
    `package_default --motion_mix` on held-out data."""
    rows = {}
    for dataset, (root, features, split, flows) in _datasets(work).items():
        sequences = list(
            ablation.load_sequences(root, features, split, _PROCESS_HEIGHT.value, flows)
        )
        for mix in mixes:
            run_dir = _MEMORY_RUN.value
            coarse, _, _ = _predictor("memory", work, run_dir, mix) or (None, None, None)
            if coarse is None:
                raise app.UsageError(f"no memory run at {os.path.join(work, run_dir)}")
            variants = ((None, ""), (crf.CRFParams(), " + CRF")) if _CRF.value else ((None, ""),)
            for params, text in variants:
                scores = ablation.score(sequences, coarse, None, params)
                row = rows.setdefault(f"{mix:g}{text}", {"mix": mix, "crf": bool(text)})
                row[dataset] = {"j": scores.j, "f": scores.f, "j_static": scores.j_static}
                logging.info("%s, mix %g%s: J %.3f F %.3f", dataset, mix, text, scores.j, scores.f)
    io_utils.write_json(os.path.join(out, "motion_mix_sweep.json"), rows)
    sets = [d for d in DATASETS if any(d in r for r in rows.values())]
    lines = ["| motion mix | " + " | ".join(f"{d} J / F" for d in sets) + " |"]
    lines.append("|---|" + "---|" * len(sets))
    for label, row in rows.items():
        cells = [
            f"{ablation.format_score(row[d]['j'])} / {ablation.format_score(row[d]['f'])}"
            for d in sets
        ]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    io_utils.write_text(os.path.join(out, "motion_mix_sweep.md"), "\n".join(lines) + "\n")
    print("\n".join(lines))


def main(argv):
    del argv
    work = _WORK_DIR.value
    out = _OUTPUT_DIR.value
    if _MIX_SWEEP.value:
        try:
            mixes = [float(v) for v in _MIX_SWEEP.value]
        except ValueError:
            raise app.UsageError(f"--motion_mix_sweep: numbers, got {_MIX_SWEEP.value}") from None
        if not all(0.0 <= m <= 1.0 for m in mixes):
            raise app.UsageError(f"--motion_mix_sweep: each in [0, 1], got {mixes}")
        _sweep(work, out, mixes)
        return
    keys = [key for key, *_ in VARIANTS]
    unknown_sets = sorted(set(_DATASETS.value) - set(DATASETS))
    if unknown_sets:
        raise app.UsageError(f"--datasets: unknown {unknown_sets}; known: {list(DATASETS)}")
    only = _VARIANTS.value
    if only:
        unknown = sorted(set(only) - set(keys))
        if unknown:
            raise app.UsageError(f"--variants: unknown {unknown}; known: {keys}")
        previous = os.path.join(out, "ablations.json")
        if not os.path.isfile(previous):
            raise app.UsageError(f"--variants merges into {previous}, which does not exist")
        with open(previous) as f:
            old = json.load(f)
        # Rows in the order of VARIANTS; the rescored ones are replaced.
        results = {k: old[k] for k in keys if k in old and k not in only}
    else:
        old, results = {}, {}
    # Rows of the model's variants name the model they were measured for, so a
    # table with rows kept from an earlier model says which ones.
    model_id = None
    if _MANIFEST.value and os.path.isfile(_MANIFEST.value):
        with open(_MANIFEST.value) as f:
            model_id = json.load(f).get("sha256", "")[:12] or None
    shipped_mix = _manifest_mix()
    for dataset, (root, features, split, flows) in _datasets(work).items():
        sequences = list(
            ablation.load_sequences(root, features, split, _PROCESS_HEIGHT.value, flows)
        )
        logging.info("%s: %d sequences", dataset, len(sequences))
        for key, label, kind, run_dir in VARIANTS:
            if only and key not in only:
                continue
            if kind in ("crf", "baseline_crf") and not _CRF.value:
                continue
            mix = shipped_mix if key in MIXED else 0.0
            predictor = _predictor("memory" if kind == "crf" else kind, work, run_dir, mix)
            if predictor is None:
                logging.warning(
                    "%s: no run at %s, skipped%s",
                    label,
                    os.path.join(work, run_dir or ""),
                    "; its earlier row is kept" if key in old else "",
                )
                if key in old:
                    results[key] = old[key]
                continue
            t0 = time.time()
            coarse, full, streams = predictor
            if streams:
                label = f"{label} [{STREAMS_TEXT[streams]}]"
            if mix:
                label = f"{label}, motion stream mixed in at {mix:g}"
            scores = ablation.score(
                sequences, coarse, full, crf.CRFParams() if kind == "crf" else None
            )
            row = results.setdefault(key, {"label": label})
            row[dataset] = vars(scores)
            if kind not in ablation.MODEL_FREE:
                row["model"] = model_id
            logging.info(
                "%s / %s: J %.3f F %.3f (static J %s) in %.0f s",
                dataset,
                label,
                scores.j,
                scores.f,
                ablation.format_score(scores.j_static),
                time.time() - t0,
            )
    results = {k: results[k] for k in keys if k in results}
    io_utils.write_json(os.path.join(out, "ablations.json"), results)
    davis = os.path.basename(_MANIFEST.value or "") == "davis.json"
    table = ablation.markdown(
        results,
        _PROCESS_HEIGHT.value,
        f"flags/{'davis' if davis else 'synthetic'}_memory.flags",
        "davis model" if davis else "default model",
    )
    io_utils.write_text(os.path.join(out, "ablations.md"), table)
    if "dev" in results.get("bidirectional", {}) and "dev" in results.get("baseline", {}):
        bars = {
            name: {
                "default model": results["bidirectional"]["dev"]["per_sequence"][name]["J"],
                "baseline": results["baseline"]["dev"]["per_sequence"][name]["J"],
            }
            for name in results["bidirectional"]["dev"]["per_sequence"]
        }
        io_utils.write_image(os.path.join(out, "ablations_dev.png"), davis_eval.bar_chart(bars))
    if _MANIFEST.value and os.path.isfile(_MANIFEST.value) and "bidirectional" in results:
        with open(_MANIFEST.value) as f:
            manifest = json.load(f)
        manifest["metrics"] = ablation.headline_metrics(results)
        io_utils.write_json(_MANIFEST.value, manifest)
    print(table)


if __name__ == "__main__":
    cli.run(main)

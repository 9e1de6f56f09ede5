"""The default model lvo_tf ships: the `lite` LVO trained on the synthetic world.

`make default-weights` trains it from nothing with the project's own binaries
(see the README's model card) and writes two files into `lvo_tf/weights/`:

- `lite_synthetic.weights.h5`: the whole model's weights (`build_lvo("lite")`);
- `lite_synthetic.json`: its manifest: the preset, the size it was trained at
  (`process_height`: frames are resized to this height before the network and
  masks are scaled back), the flow method it learned the noise of, every
  training command and seed, the files' SHA-256, and its measured accuracy.

`segment` and the exports use it when no `--weights` is given.
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import TYPE_CHECKING

import numpy as np

from lvo_tf.data import flow as flow_lib
from lvo_tf.data import synthetic

if TYPE_CHECKING:  # importing this module does not load TensorFlow (the ONNX client)
    import keras

WEIGHTS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "weights")
NAME = "lite_synthetic"


def weights_path(folder: str | None = None) -> str:
    """The weights file in `folder` (default: the package's `WEIGHTS_DIR`)."""
    return os.path.join(folder or WEIGHTS_DIR, NAME + ".weights.h5")


def manifest_path(folder: str | None = None) -> str:
    return os.path.join(folder or WEIGHTS_DIR, NAME + ".json")


def available(folder: str | None = None) -> bool:
    return os.path.isfile(weights_path(folder)) and os.path.isfile(manifest_path(folder))


def manifest(folder: str | None = None) -> dict:
    """The shipped manifest; FileNotFoundError names what is missing."""
    if not available(folder):
        raise FileNotFoundError(
            f"the default weights are missing ({weights_path(folder)!r} and its manifest); "
            "build them with `make default-weights` or pass --weights"
        )
    with open(manifest_path(folder)) as f:
        return json.load(f)


def sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load(folder: str | None = None) -> tuple[keras.Model, dict]:
    """(model, manifest): the default LVO model with its weights loaded,
    after checking the file against the manifest's SHA-256."""
    from lvo_tf.models import build_lvo, weights

    info = manifest(folder)
    if sha256(weights_path(folder)) != info["sha256"]:
        raise ValueError(
            f"{weights_path(folder)!r} does not match the SHA-256 in {manifest_path(folder)!r}; "
            "the file is damaged or was replaced (rebuild with `make default-weights`)"
        )
    model = build_lvo(config(info, manifest_path(folder)))
    weights.load_weights(model, weights_path(folder))
    return model, info


def config(info: dict, where: str = "the manifest"):
    """The `LVOConfig` a manifest records (its network, not just the preset's
    name, which may have changed since)."""
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


def client_flow_method(given: str | None) -> str:
    """What a serving client computes flow with: `given`, else the shipped
    default model's flow (the model a plain export serves)."""
    return given or flow_method(manifest() if available() else None)


def resolve(weights_file: str | None, preset: str, allow_random: bool = False):
    """The model the binaries run: `weights_file` (a whole-model
    `.weights.h5` of `preset`, or of the network recorded in a manifest
    beside it, `<name>.json` as `package_default` writes for
    `<name>.weights.h5`), else untrained if `allow_random`, else the shipped
    default. Returns (model, manifest or None)."""
    from lvo_tf.models import build_lvo, weights

    if weights_file:
        beside = weights_file.removesuffix(".weights.h5") + ".json"
        info = None
        if weights_file.endswith(".weights.h5") and os.path.isfile(beside):
            with open(beside) as f:
                try:
                    info = json.load(f)
                except json.JSONDecodeError as e:
                    raise ValueError(f"{beside!r}, the manifest beside --weights: {e}") from None
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


def regression_clip():
    """(frames [1, T, H, W, 3] uint8, flow [1, T, H, W, 2]) of the fixed clip."""
    video = synthetic.render_video(np.random.default_rng(REGRESSION_SEED), REGRESSION_WORLD)
    flow = np.concatenate([video.flow, video.flow[-1:]])  # the last frame repeats
    return video.frames[None], flow[None].astype(np.float32)


def regression_outputs(model) -> list:
    """The model's probabilities on the fixed clip, every 4th pixel, rounded."""
    frames, flow = regression_clip()
    p = np.asarray(model({"frames": frames, "flow": flow}))[0, :, ::4, ::4, 0]
    return np.round(p.astype(np.float64), 6).tolist()

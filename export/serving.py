"""Serving artifacts: a SavedModel in TF Serving's layout, and ONNX via tf2onnx.

SavedModel signatures (all of B, T, H, W dynamic):

- `serving_default`: `frames` uint8 [B, T, H, W, 3] (RGB) and `flow` float32
  [B, T, H, W, 2] (pixels, t -> t+1) -> `probabilities` float32 [B, T, H, W, 1];
- `memory`: `features` float32 [B, T, H/8', W/8', C] (the streams' output,
  for clients that run the streams elsewhere) -> `probabilities` at 1/8;
- `memory_step` (models with a recurrent memory): `features` as above and
  `state` float32 [B, H/8', W/8', F] (zeros at a stream's start) ->
  `probabilities` at 1/8 and the new `state`: the streaming step
  (`lvo_tf.models.build_memory_step`) that `segment --online` runs, for
  clients that feed a live video chunk by chunk and keep the state.

Inputs of the wrong dtype, rank or channel count are refused by the
signature's TensorSpec before anything runs.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile

import keras
import numpy as np
import tensorflow as tf

from lvo_tf.common import io_utils
from lvo_tf.models import build_memory_step, carries_state

SIGNATURE = "serving_default"
MEMORY_SIGNATURE = "memory"
MEMORY_STEP_SIGNATURE = "memory_step"


def _specs(model: keras.Model):
    clip = (None, None, None, None)
    c = model.get_layer("memory").input.shape[-1]
    return (
        tf.TensorSpec(clip + (3,), tf.uint8, name="frames"),
        tf.TensorSpec(clip + (2,), tf.float32, name="flow"),
        tf.TensorSpec(clip + (c,), tf.float32, name="features"),
    )


def next_version(base_dir: str) -> int:
    """1 + the largest integer-named folder in `base_dir` (1 if none)."""
    if not os.path.isdir(base_dir):
        return 1
    versions = [int(n) for n in os.listdir(base_dir) if re.fullmatch(r"\d+", n)]
    return max(versions, default=0) + 1


def export_saved_model(model: keras.Model, base_dir: str, version: int | None = None) -> str:
    """Writes `base_dir/<version>/` (saved_model.pb + variables). The export is
    written into a temporary folder inside `base_dir` and renamed into place,
    so a server polling `base_dir` never sees half an export. An existing
    version is never overwritten."""
    version = next_version(base_dir) if version is None else int(version)
    if version < 1:
        raise ValueError(f"version must be a positive integer; got {version}")
    target = os.path.join(base_dir, str(version))
    if os.path.exists(target):
        raise FileExistsError(f"{target!r} exists; versions are never overwritten")
    os.makedirs(base_dir, exist_ok=True)
    frames_spec, flow_spec, features_spec = _specs(model)
    memory = model.get_layer("memory")

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(
        SIGNATURE,
        lambda frames, flow: {"probabilities": model({"frames": frames, "flow": flow})},
        input_signature=[frames_spec, flow_spec],
    )
    archive.add_endpoint(
        MEMORY_SIGNATURE,
        lambda features: {"probabilities": memory(features)},
        input_signature=[features_spec],
    )
    if carries_state(memory):
        step = build_memory_step(memory)
        state_spec = tf.TensorSpec(
            (None, None, None, step.input["state"].shape[-1]), tf.float32, name="state"
        )
        archive.add_endpoint(
            MEMORY_STEP_SIGNATURE,
            lambda features, state: step({"features": features, "state": state}),
            input_signature=[features_spec, state_spec],
        )
    tmp = tempfile.mkdtemp(prefix=".tmp-export-", dir=base_dir)
    try:
        archive.write_out(tmp, verbose=False)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            shutil.rmtree(tmp)
    return target


def check_saved_model(model: keras.Model, export_dir: str, atol: float = 1e-4) -> float:
    """Max |Keras - SavedModel| on two generated clips; raises if above atol."""
    loaded, fn = load_signature(export_dir)
    worst = 0.0
    for clip in (test_clip(), test_clip(64, 48, 2, 2, seed=1)):
        want = np.asarray(model({"frames": clip[0], "flow": clip[1]}))
        got = fn(frames=clip[0], flow=clip[1])["probabilities"].numpy()
        worst = max(worst, float(np.abs(got - want).max()))
    del loaded
    if worst > atol:
        raise RuntimeError(f"SavedModel at {export_dir!r} differs from Keras by {worst:.2e}")
    return worst


def load_signature(export_dir: str, name: str = SIGNATURE):
    """(loaded object, signature function). Keep the loaded object alive while
    calling the function: its variables belong to it."""
    loaded = tf.saved_model.load(export_dir)
    if name not in loaded.signatures:
        raise KeyError(f"{export_dir!r} has no signature {name!r}: {list(loaded.signatures)}")
    return loaded, loaded.signatures[name]


def test_clip(height: int = 37, width: int = 50, steps: int = 3, batch: int = 1, seed: int = 0):
    """A generated clip (frames, flow) for checking exports."""
    rng = np.random.default_rng(seed)
    frames = rng.integers(0, 256, (batch, steps, height, width, 3)).astype(np.uint8)
    flow = (3 * rng.standard_normal((batch, steps, height, width, 2))).astype(np.float32)
    return frames, flow


# === ONNX ===


def convert_to_onnx(saved_model_dir: str, output: str, opset: int = 17) -> None:
    """tf2onnx's converter on the `serving_default` signature (dynamic B, T,
    H, W), written to `output` atomically. Raises RuntimeError with the
    converter's last lines when it fails."""

    with io_utils.atomic_path(output, suffix=".onnx") as tmp:
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "tf2onnx.convert",
                "--saved-model",
                saved_model_dir,
                "--signature_def",
                SIGNATURE,
                "--output",
                tmp,
                "--opset",
                str(opset),
            ],
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"tf2onnx failed:\n{proc.stderr[-3000:]}")


def check_onnx(saved_model_dir: str, onnx_path: str, atol: float = 1e-4) -> float:
    """Max |SavedModel - ONNX Runtime| on two generated clips; raises if above atol."""
    loaded, fn = load_signature(saved_model_dir)
    session = onnx_session(onnx_path)
    worst = 0.0
    for frames, flow in (test_clip(), test_clip(64, 48, 2, 2, seed=1)):
        want = fn(frames=frames, flow=flow)["probabilities"].numpy()
        worst = max(worst, float(np.abs(run_onnx(session, frames, flow) - want).max()))
    del loaded
    if worst > atol:
        raise RuntimeError(f"ONNX differs from the SavedModel by {worst:.2e} (> {atol})")
    return worst


def onnx_session(path: str):
    # lazily: only the ONNX paths need onnxruntime
    import onnxruntime as ort

    return ort.InferenceSession(path, providers=["CPUExecutionProvider"])


def run_onnx(session, frames: np.ndarray, flow: np.ndarray) -> np.ndarray:
    names = {i.name.split(":")[0]: i.name for i in session.get_inputs()}
    return session.run(None, {names["frames"]: frames, names["flow"]: flow})[0]

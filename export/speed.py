"""Speed of the exported model in one run: frames per second of one clip
through Keras eager, the SavedModel, XLA-compiled TensorFlow and ONNX Runtime,
with the artifacts' sizes (`python -m export.benchmark` writes it)."""

import os
import tempfile

import tensorflow as tf
from absl import logging

from export import serving
from lvo_tf import models as lvo_models
from lvo_tf.benchmarks import timing


def folder_bytes(path: str) -> int:
    if os.path.isfile(path):
        return os.path.getsize(path)
    return sum(
        os.path.getsize(os.path.join(root, f)) for root, _, files in os.walk(path) for f in files
    )


def bench_export(
    preset: str = "lite", height: int = 480, width: int = 854, steps: int = 8, repeats: int = 3
) -> dict:
    """Frames per second of one clip through Keras eager, the exported
    SavedModel, XLA-compiled TensorFlow and ONNX Runtime, in one run, with the
    artifacts' sizes (random weights; speed does not depend on them)."""
    model = lvo_models.build_lvo(preset)
    frames, flow = serving.test_clip(height, width, steps)
    result = {"preset": preset, "clip": [1, steps, height, width], "ways": {}}
    with tempfile.TemporaryDirectory() as tmp:
        target = serving.export_saved_model(model, os.path.join(tmp, "lvo"))
        onnx_path = os.path.join(tmp, "lvo.onnx")
        serving.convert_to_onnx(target, onnx_path)
        result["saved_model_mb"] = folder_bytes(target) / 1e6
        result["onnx_mb"] = folder_bytes(onnx_path) / 1e6
        loaded, fn = serving.load_signature(target)
        session = serving.onnx_session(onnx_path)
        xla = tf.function(
            lambda f, w: model({"frames": f, "flow": w}), jit_compile=True, autograph=False
        )
        ways = {
            "keras_eager": lambda: model({"frames": frames, "flow": flow}),
            "saved_model": lambda: fn(frames=tf.constant(frames), flow=tf.constant(flow)),
            "xla": lambda: xla(tf.constant(frames), tf.constant(flow)),
            "onnx_runtime": lambda: serving.run_onnx(session, frames, flow),
        }
        for name, run in ways.items():
            logging.info("export benchmark: %s (%s)", name, preset)
            try:
                seconds = timing.time_call(run, warmup=1, repeats=repeats)
                result["ways"][name] = {"frames_per_second": steps / seconds}
            except Exception as e:  # e.g. an op XLA cannot compile: report, do not hide
                result["ways"][name] = {"error": f"{type(e).__name__}: {str(e)[:200]}"}
        del loaded
    return result


def export_markdown(results: list[dict]) -> str:
    lines = [
        "| preset | clip [B, T, H, W] | way | frames/s | vs Keras eager |",
        "|---|---|---|---|---|",
    ]
    for r in results:
        base = r["ways"]["keras_eager"].get("frames_per_second")
        for name, v in r["ways"].items():
            if "error" in v:
                lines.append(f"| {r['preset']} | {r['clip']} | {name} | failed: {v['error']} | |")
                continue
            ratio = f"{v['frames_per_second'] / base:.2f}x" if base else ""
            lines.append(
                f"| {r['preset']} | {r['clip']} | {name} | {v['frames_per_second']:.2f} | {ratio} |"
            )
    sizes = ", ".join(
        f"{r['preset']}: SavedModel {r['saved_model_mb']:.1f} MB, ONNX {r['onnx_mb']:.1f} MB"
        for r in results
    )
    return "\n".join(lines) + f"\n\nArtifact sizes: {sizes}."

"""Run one Keras model four ways: eager, tf.function (dynamic), SavedModel, ONNX Runtime."""

from __future__ import annotations

import os

import numpy as np
import tensorflow as tf


def _dynamic_spec(model) -> list[tf.TensorSpec]:
    return [
        tf.TensorSpec([None] * (len(t.shape) - 1) + [t.shape[-1]], t.dtype, name=t.name)
        for t in model.inputs
    ]


def run_all_ways(model, inputs: list[list[np.ndarray]], tmp_dir) -> dict[str, list]:
    """Outputs of `model` for each input list, computed eagerly, in a graph
    with a fully dynamic signature (traced once for all inputs), from the
    reloaded SavedModel and from ONNX Runtime on Keras' tf2onnx export."""
    import onnxruntime as ort

    def call(*x):
        return model(x[0] if len(x) == 1 else list(x), training=False)

    eager = [np.asarray(call(*x)) for x in inputs]

    graph_fn = tf.function(
        call,
        input_signature=_dynamic_spec(model),
        autograph=False,
    )
    graph = [np.asarray(graph_fn(*x)) for x in inputs]
    traces = graph_fn.experimental_get_tracing_count()

    sm_dir = os.path.join(tmp_dir, "saved_model")
    model.export(sm_dir, format="tf_saved_model", verbose=False)
    loaded = tf.saved_model.load(sm_dir)  # keep alive while calling it
    saved = [np.asarray(loaded.serve(*x)) for x in inputs]

    onnx_path = os.path.join(tmp_dir, "model.onnx")
    model.export(onnx_path, format="onnx", verbose=False)
    session = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    onnx = [session.run(None, dict(zip(names, x, strict=True)))[0] for x in inputs]
    return {
        "eager": eager,
        "graph": graph,
        "saved_model": saved,
        "onnx": onnx,
        "graph_traces": traces,
    }

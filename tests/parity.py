"""Run one Keras model four ways: eager, tf.function (dynamic), SavedModel, ONNX Runtime."""

from __future__ import annotations

import os

import numpy as np
import tensorflow as tf


def _dynamic_spec(tensor, name) -> tf.TensorSpec:
    return tf.TensorSpec(
        [None] * (len(tensor.shape) - 1) + [tensor.shape[-1]], tensor.dtype, name=name
    )


def run_all_ways(model, feeds: list[dict[str, np.ndarray]], tmp_dir) -> dict[str, list]:
    """Outputs of `model` for each feed ({input name: array}), computed
    eagerly, in a graph with a fully dynamic signature (traced once for all
    feeds), from the reloaded SavedModel and from ONNX Runtime on Keras'
    tf2onnx export."""
    import onnxruntime as ort

    names = [t.name for t in model.inputs]
    is_dict = isinstance(model.input, dict)

    def structured(feed):
        if is_dict:
            return feed
        return feed[names[0]] if len(names) == 1 else [feed[n] for n in names]

    eager = [np.asarray(model(structured(f), training=False)) for f in feeds]

    specs = {n: _dynamic_spec(t, n) for n, t in zip(names, model.inputs, strict=True)}
    graph_fn = tf.function(
        lambda feed: model(structured(feed), training=False),
        input_signature=[specs],
        autograph=False,
    )
    graph = [np.asarray(graph_fn(f)) for f in feeds]
    traces = graph_fn.experimental_get_tracing_count()

    sm_dir = os.path.join(tmp_dir, "saved_model")
    model.export(sm_dir, format="tf_saved_model", verbose=False)
    loaded = tf.saved_model.load(sm_dir)  # keep alive while calling it
    saved = [np.asarray(loaded.serve(structured(f))) for f in feeds]

    onnx_path = os.path.join(tmp_dir, "model.onnx")
    model.export(onnx_path, format="onnx", verbose=False)
    session = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
    onnx_names = [i.name for i in session.get_inputs()]
    assert sorted(onnx_names) == sorted(names), (onnx_names, names)
    onnx = [session.run(None, f)[0] for f in feeds]
    return {
        "eager": eager,
        "graph": graph,
        "saved_model": saved,
        "onnx": onnx,
        "graph_traces": traces,
    }


def assert_all_agree(results: dict, atol: float) -> None:
    for way in ("graph", "saved_model", "onnx"):
        for got, want in zip(results[way], results["eager"], strict=True):
            assert got.shape == want.shape, way
            np.testing.assert_allclose(got, want, atol=atol, err_msg=way)

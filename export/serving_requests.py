"""The requests a TF Serving client sends for one clip: gRPC `PredictRequest`
(`predict_request`, with tensorflow-serving-api) and the REST `:predict` body
(`rest_body`). Flag-free, so that tests and other programs can import it."""

from __future__ import annotations

import json

import numpy as np

from export.serving import SIGNATURE


def predict_request(frames: np.ndarray, flow: np.ndarray, model_name: str = "lvo"):
    """A gRPC PredictRequest for one clip: frames [B, T, H, W, 3] uint8, flow
    [B, T, H, W, 2] float32."""
    # lazily: TensorFlow only where this path needs it
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2

    request = predict_pb2.PredictRequest()
    request.model_spec.name = model_name
    request.model_spec.signature_name = SIGNATURE
    request.inputs["frames"].CopyFrom(tf.make_tensor_proto(frames, dtype=tf.uint8))
    request.inputs["flow"].CopyFrom(tf.make_tensor_proto(flow, dtype=tf.float32))
    return request


def rest_body(frames: np.ndarray, flow: np.ndarray) -> str:
    """The JSON body of a REST `:predict` call (columnar "inputs" format)."""
    return json.dumps(
        {
            "signature_name": SIGNATURE,
            "inputs": {"frames": frames.tolist(), "flow": np.round(flow, 4).tolist()},
        }
    )

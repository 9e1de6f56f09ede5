r"""Clients for LVO behind TF Serving: gRPC (tensorflow-serving-api) and REST.

    python -m export.serving_client --frames_dir=FRAMES --server=localhost:8500 \
        --output_dir=out/served [--model_name=lvo] [--rest=http://localhost:8501]

Reads a folder of frames, computes optical flow with the project's flow code,
sends one Predict request with the whole clip and writes 0/255 masks.
`predict_request` and `rest_body` build the requests; the tests run them
through the exported SavedModel the way the server does.
"""

from __future__ import annotations

import json

import numpy as np
from absl import app, flags, logging

from export.serving import SIGNATURE
from lvo_tf import default_model
from lvo_tf.data import flow as flow_lib
from lvo_tf.data import readers

_FRAMES_DIR = flags.DEFINE_string("frames_dir", None, "A folder of frames.")
_SERVER = flags.DEFINE_string("server", "localhost:8500", "TF Serving gRPC address.")
_REST = flags.DEFINE_string("rest", None, "Use REST at this base URL instead of gRPC.")
_MODEL_NAME = flags.DEFINE_string("model_name", "lvo", "Model name in models.config.")
_OUTPUT_DIR = flags.DEFINE_string("output_dir", None, "Where masks go.")
_TIMEOUT = flags.DEFINE_float("timeout", 600.0, "Seconds to wait for the server.")
_FLOW_METHOD = flags.DEFINE_enum(
    "flow_method",
    None,
    flow_lib.METHODS,
    "Flow the served model learned (default: the default model's).",
)


def predict_request(frames: np.ndarray, flow: np.ndarray, model_name: str = "lvo"):
    """A gRPC PredictRequest for one clip: frames [B, T, H, W, 3] uint8, flow
    [B, T, H, W, 2] float32."""
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


def _predict_grpc(frames, flow):
    import grpc
    import tensorflow as tf
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    channel = grpc.insecure_channel(_SERVER.value)
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    response = stub.Predict(predict_request(frames, flow, _MODEL_NAME.value), _TIMEOUT.value)
    return tf.make_ndarray(response.outputs["probabilities"])


def _predict_rest(frames, flow):
    import urllib.request

    url = f"{_REST.value.rstrip('/')}/v1/models/{_MODEL_NAME.value}:predict"
    request = urllib.request.Request(
        url, data=rest_body(frames, flow).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=_TIMEOUT.value) as reply:
        return np.asarray(json.loads(reply.read())["outputs"], np.float32)


def main(argv):
    del argv

    from lvo_tf import io_utils

    try:
        seq = readers.frames_folder(_FRAMES_DIR.value)
        frames = readers.load_frames(seq)
    except (FileNotFoundError, ValueError) as e:
        raise app.UsageError(str(e)) from None
    flow = flow_lib.clip_flow(frames, default_model.client_flow_method(_FLOW_METHOD.value))
    predict = _predict_rest if _REST.value else _predict_grpc
    probabilities = predict(frames[None], flow[None])[0, ..., 0]
    io_utils.write_masks(_OUTPUT_DIR.value, seq.stems, probabilities)
    logging.info("Wrote %d masks to %s", len(seq), _OUTPUT_DIR.value)


if __name__ == "__main__":
    flags.mark_flags_as_required(["frames_dir", "output_dir"])
    app.run(main)

r"""Clients for LVO behind TF Serving: gRPC (tensorflow-serving-api) and REST.

    python -m export.serving_client --frames_dir=FRAMES --server=localhost:8500 \
        --output_dir=out/served [--model_name=lvo] [--rest=http://localhost:8501]

Reads a folder of frames, computes optical flow with the project's flow code,
sends one Predict request with the whole clip and writes 0/255 masks.
`export/serving_requests.py` builds the requests; the tests run them
through the exported SavedModel the way the server does.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import numpy as np
from absl import app, flags, logging

from export.serving_requests import predict_request, rest_body
from lvo_tf import shipped
from lvo_tf.common import cli, io_utils
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


def _predict_grpc(frames, flow):
    # lazily: only the gRPC path needs grpc
    import grpc
    import tensorflow as tf

    try:
        # lazily: the serving protos are an optional install, named when missing
        from tensorflow_serving.apis import prediction_service_pb2_grpc
    except ImportError:
        raise app.UsageError(
            "the gRPC client needs TF Serving's request protos: pip install --no-deps "
            "tensorflow-serving-api==2.21.0 (make setup does), or use --rest"
        ) from None
    channel = grpc.insecure_channel(_SERVER.value)
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    try:
        response = stub.Predict(predict_request(frames, flow, _MODEL_NAME.value), _TIMEOUT.value)
    except grpc.RpcError as e:
        raise app.UsageError(
            f"TF Serving at {_SERVER.value!r} did not answer model {_MODEL_NAME.value!r} "
            f"({e.code().name}: {' '.join(str(e.details()).split())[:200]}); is it running?"
        ) from None
    return tf.make_ndarray(response.outputs["probabilities"])


def _predict_rest(frames, flow):
    url = f"{_REST.value.rstrip('/')}/v1/models/{_MODEL_NAME.value}:predict"
    request = urllib.request.Request(
        url, data=rest_body(frames, flow).encode(), headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=_TIMEOUT.value) as reply:
            return np.asarray(json.loads(reply.read())["outputs"], np.float32)
    except urllib.error.HTTPError as e:
        raise app.UsageError(
            f"TF Serving at {url!r} refused the request (HTTP {e.code}: {e.reason})"
        ) from None
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        raise app.UsageError(
            f"no TF Serving answer at {url!r} ({reason}); is it running?"
        ) from None


def main(argv):
    del argv
    try:
        seq = readers.frames_folder(_FRAMES_DIR.value)
        frames = readers.load_frames(seq)
    except (FileNotFoundError, ValueError) as e:
        raise app.UsageError(str(e)) from None
    flow = flow_lib.clip_flow(frames, shipped.client_flow_method(_FLOW_METHOD.value))
    io_utils.check_output_dir(_OUTPUT_DIR.value, inputs=[_FRAMES_DIR.value])
    predict = _predict_rest if _REST.value else _predict_grpc
    probabilities = predict(frames[None], flow[None])[0, ..., 0]
    io_utils.write_masks(_OUTPUT_DIR.value, seq.stems, probabilities)
    logging.info("Wrote %d masks to %s", len(seq), _OUTPUT_DIR.value)


if __name__ == "__main__":
    flags.mark_flags_as_required(["frames_dir", "output_dir"])
    cli.run(main)

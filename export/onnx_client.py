r"""Segments a folder of frames with an exported LVO ONNX file: no TensorFlow.

    python -m export.onnx_client --model=out/lvo.onnx --frames_dir=FRAMES --output_dir=out/onnx

Uses ONNX Runtime, OpenCV and the project's flow and reader code (none of
which imports TensorFlow), runs the whole clip in one call and writes 0/255
masks `OUTPUT_DIR/<frame stem>.png`. For long videos, call `segment` on
windows of frames yourself (the memory is bidirectional over the clip given).
"""

from __future__ import annotations

import os

from absl import app, flags, logging

from export.onnx_runtime import segment
from lvo_tf import shipped
from lvo_tf.common import cli, io_utils
from lvo_tf.data import flow as flow_lib
from lvo_tf.data import readers

_MODEL = flags.DEFINE_string("model", None, "The .onnx file from export.onnx.")
_FRAMES_DIR = flags.DEFINE_string("frames_dir", None, "A folder of frames.")
_OUTPUT_DIR = flags.DEFINE_string("output_dir", None, "Where masks go.")
_FLOW_METHOD = flags.DEFINE_enum(
    "flow_method",
    None,
    flow_lib.METHODS,
    "Flow the exported model learned (default: the default model's).",
)


def main(argv):
    del argv
    # lazily: only the ONNX paths need onnxruntime
    import onnxruntime as ort

    if not os.path.isfile(_MODEL.value):
        raise app.UsageError(f"--model: no file {_MODEL.value!r}")
    try:
        seq = readers.frames_folder(_FRAMES_DIR.value)
        frames = readers.load_frames(seq)
    except (FileNotFoundError, ValueError) as e:
        raise app.UsageError(str(e)) from None
    io_utils.check_output_dir(_OUTPUT_DIR.value, inputs=[_FRAMES_DIR.value])
    try:
        session = ort.InferenceSession(_MODEL.value, providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime's load errors share no base class but Exception
        first = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
        raise app.UsageError(
            f"--model {_MODEL.value!r} is not a loadable ONNX model ({first})"
        ) from None
    probabilities = segment(
        session,
        frames,
        flow_lib.clip_flow(frames, shipped.client_flow_method(_FLOW_METHOD.value)),
    )
    io_utils.write_masks(_OUTPUT_DIR.value, seq.stems, probabilities)
    logging.info("Wrote %d masks to %s", len(seq), _OUTPUT_DIR.value)


if __name__ == "__main__":
    flags.mark_flags_as_required(["model", "frames_dir", "output_dir"])
    cli.run(main)

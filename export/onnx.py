r"""Converts an exported SavedModel to ONNX with tf2onnx, and checks it.

    python -m export.onnx --saved_model_dir=out/servables/lvo/1 --output=out/lvo.onnx \
        [--opset=17] [--overwrite]

Dynamic B, T, H, W. Before the file appears at --output, ONNX Runtime is run
against the SavedModel on generated clips; a difference above --atol refuses
the file.
"""

import os

from absl import app, flags, logging

from export import serving
from lvo_tf.common import cli, io_utils

_SAVED_MODEL_DIR = flags.DEFINE_string("saved_model_dir", None, "A version folder.")
_OUTPUT = flags.DEFINE_string("output", None, "The .onnx file to write.")
_OPSET = flags.DEFINE_integer("opset", 17, "ONNX opset.", lower_bound=13)
_ATOL = flags.DEFINE_float("atol", 1e-4, "Largest accepted difference to TensorFlow.")
_OVERWRITE = flags.DEFINE_bool(
    "overwrite",
    False,
    "Replace an existing --output (refused without it, as export.saved_model "
    "refuses an existing version).",
)
flags.mark_flags_as_required(["saved_model_dir", "output"])


def main(argv):
    del argv
    if os.path.exists(_OUTPUT.value) and not _OVERWRITE.value:
        raise app.UsageError(f"--output {_OUTPUT.value!r} exists; pass --overwrite to replace it")
    if not _OUTPUT.value.endswith(".onnx"):
        raise app.UsageError(f"--output must end in .onnx; got {_OUTPUT.value!r}")
    io_utils.check_can_create(os.path.dirname(os.path.abspath(_OUTPUT.value)), "--output")
    try:
        serving.load_signature(_SAVED_MODEL_DIR.value)
    except (OSError, KeyError) as e:
        raise app.UsageError(f"--saved_model_dir: {e}") from None
    with io_utils.atomic_path(_OUTPUT.value, suffix=".onnx") as tmp:
        serving.convert_to_onnx(_SAVED_MODEL_DIR.value, tmp, _OPSET.value)
        worst = serving.check_onnx(_SAVED_MODEL_DIR.value, tmp, _ATOL.value)
    logging.info("Wrote %s (max difference to TensorFlow %.1e)", _OUTPUT.value, worst)


if __name__ == "__main__":
    cli.run(main)

r"""Exports LVO as a SavedModel in TF Serving's versioned layout.

    python -m export.saved_model --export_dir=out/servables/lvo    # the default model
    python -m export.saved_model --export_dir=out/servables/lvo --weights=lvo.weights.h5 \
        --preset=paper [--version=N]

Writes `export_dir/<N>/` (N: the next free integer by default), renamed into
place only when complete, then reloads it and checks it against the Keras
model on generated clips (max difference 1e-4) before reporting success.
Signatures: `serving_default` (frames uint8, flow float32 -> probabilities)
and `memory` (features -> probabilities at 1/8); see export/serving.py.
"""

import os
import shutil

from absl import app, flags, logging

from export import serving
from lvo_tf import shipped
from lvo_tf.common import cli
from lvo_tf.models import PRESETS

_EXPORT_DIR = flags.DEFINE_string("export_dir", None, "Base folder of the servable.")
_WEIGHTS = flags.DEFINE_string(
    "weights",
    None,
    shipped.WEIGHTS_HELP,
)
_PRESET = flags.DEFINE_enum("preset", "lite", sorted(PRESETS), "Model preset of --weights.")
_VERSION = flags.DEFINE_integer("version", None, "Version number (default: next free).")
_RANDOM = flags.DEFINE_bool("allow_random_weights", False, "Export untrained (tests).")
flags.mark_flags_as_required(["export_dir"])


def main(argv):
    del argv
    weights_file = _WEIGHTS.value
    if (
        weights_file
        and weights_file not in shipped.SHIPPED
        and os.path.isfile(weights_file)
        and not shipped.manifest_beside(weights_file)
        and not _PRESET.present
    ):
        raise app.UsageError(
            f"--weights {weights_file!r} has no manifest beside it to say its network; "
            "pass --preset, or package it with `python -m lvo_tf.package_default`"
        )
    try:
        model, _ = shipped.resolve(_WEIGHTS.value, _PRESET.value, _RANDOM.value)
        target = serving.export_saved_model(model, _EXPORT_DIR.value, _VERSION.value)
    except (FileNotFoundError, FileExistsError, ValueError) as e:
        raise app.UsageError(str(e)) from None
    try:
        worst = serving.check_saved_model(model, target)
    except RuntimeError:
        shutil.rmtree(target)
        raise
    logging.info("Exported %s (max difference to Keras %.1e on generated clips)", target, worst)
    print(target)


if __name__ == "__main__":
    cli.run(main)

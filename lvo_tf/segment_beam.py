r"""Segments a whole corpus on Apache Beam: `segment`'s masks, one element per video.

    python -m lvo_tf.segment_beam --input_pattern='videos/*.mp4' --output_dir=out/corpus
    python -m lvo_tf.segment_beam --davis_root=DAVIS --split=val --output_dir=out/seg \
        --runner=DirectRunner --direct_num_workers=2 --direct_running_mode=multi_processing

Every video (a file or frames folder matched by --input_pattern, or a
sequence of --davis_root) is segmented by a worker that loaded the model
once (`lvo_tf/inference/beam.py`), into OUTPUT_DIR/<video>/<frame stem>.png,
with `segment`'s settings flags (--weights, --process_height, --flow_method,
--crf, ...) and the same masks. Flags this binary does not define go to Beam
as pipeline options (--runner, --direct_num_workers, Dataflow's --project /
--region / --temp_location, ...). A video that fails is listed in
OUTPUT_DIR/segment_beam_summary.json with its error; the others finish,
and the binary then exits with status 2. Re-running resumes (each video's
run record, as `segment`).
"""

import dataclasses
import os

from absl import app, flags, logging

from lvo_tf.common import cli, io_utils
from lvo_tf.inference import beam as beam_lib
from lvo_tf.inference import crf, jobs, run

_INPUT_PATTERN = flags.DEFINE_string(
    "input_pattern", None, "Glob of video files and/or frames folders (quote it)."
)
_DAVIS_ROOT = flags.DEFINE_string("davis_root", None, "A DAVIS-2016-layout root.")
_SPLIT = flags.DEFINE_string("split", "val", "With --davis_root: image set, or 'all'.")
_SEQUENCES = flags.DEFINE_list("sequences", None, "With --davis_root: only these.")
_OUTPUT_DIR = flags.DEFINE_string(
    "output_dir", None, "Where masks go (a path every worker can write: local, NFS, FUSE)."
)
_METHOD = flags.DEFINE_enum("method", "lvo", run.METHODS, "LVO, or the non-learned baseline.")
_WEIGHTS = flags.DEFINE_string("weights", None, "As segment's --weights.")
_PRESET = flags.DEFINE_string("preset", "lite", "Model preset of bare --weights.")
_RANDOM = flags.DEFINE_bool("allow_random_weights", False, "Run untrained (tests, timing).")
_PROCESS_HEIGHT = flags.DEFINE_integer(
    "process_height", None, "As segment's (default: the model's).", lower_bound=16
)
_FLOW_METHOD = flags.DEFINE_string("flow_method", None, "As segment's (default: the model's).")
_FLOW_DIR = flags.DEFINE_string("flow_dir", None, "Flow cache (default OUTPUT_DIR/.flow).")
_KEEP_FLOW = flags.DEFINE_bool("keep_flow", True, "Keep each video's flow in the cache.")
_CRF = flags.DEFINE_bool("crf", True, "Dense CRF, with the settings segment uses for the model.")
_WINDOW = flags.DEFINE_integer("window", 28, "Frames per memory window.", lower_bound=1)
_OVERLAP = flags.DEFINE_integer("overlap", 8, "Frames shared by windows.", lower_bound=0)
_OVERLAY = flags.DEFINE_bool("overlay", False, "Write overlay GIFs and contact sheets.")
_SAVE_PROBABILITIES = flags.DEFINE_bool("save_probabilities", False, "Also write 0-255 maps.")
_OVERWRITE = flags.DEFINE_bool("overwrite", False, "Replace masks of another run.")
flags.mark_flags_as_required(["output_dir"])
flags.register_multi_flags_validator(
    ["input_pattern", "davis_root"],
    lambda f: (f["input_pattern"] is None) != (f["davis_root"] is None),
    message="give exactly one of --input_pattern and --davis_root",
)

SUMMARY = "segment_beam_summary.json"


def _spec() -> beam_lib.SegmentSpec:
    if _WINDOW.value <= _OVERLAP.value:
        raise app.UsageError("--overlap must be smaller than --window")
    options = run.SegmentOptions(
        method=_METHOD.value,
        window=_WINDOW.value,
        overlap=_OVERLAP.value,
        crf=crf.CRFParams() if _CRF.value else None,
        save_probabilities=_SAVE_PROBABILITIES.value,
        overlay=_OVERLAY.value,
    )
    return beam_lib.SegmentSpec(
        output_dir=os.path.abspath(_OUTPUT_DIR.value),
        options=options,
        method=_METHOD.value,
        weights=_WEIGHTS.value,
        preset=_PRESET.value,
        allow_random=_RANDOM.value,
        height=_PROCESS_HEIGHT.value,
        flow_method=_FLOW_METHOD.value,
        preset_given=_PRESET.present,
        flow_given=_FLOW_METHOD.present,
        flow_dir=_FLOW_DIR.value,
        keep_flow=_KEEP_FLOW.value,
        overwrite=_OVERWRITE.value,
    )


def main(argv):
    out = _OUTPUT_DIR.value
    videos = beam_lib.corpus(
        _INPUT_PATTERN.value, _DAVIS_ROOT.value, _SPLIT.value, _SEQUENCES.value
    )
    inputs = io_utils.input_folders(_DAVIS_ROOT.value) + [
        v.path for v in videos if v.path and os.path.isdir(v.path)
    ]
    io_utils.check_output_dir(out, inputs=inputs, not_equal_to=[_DAVIS_ROOT.value])
    spec = _spec()
    model = spec.load()  # fails here, once, on a bad model
    # The CRF settings of the model's manifest (the fast model's crop threshold).
    spec = dataclasses.replace(spec, options=jobs.with_model_crf(spec.options, model))
    settings = jobs.settings(spec.options, model)
    logging.info("%d videos -> %s (Beam options: %s)", len(videos), out, argv[1:] or "defaults")
    summary_path = os.path.join(out, SUMMARY)
    record = beam_lib.run_corpus(
        videos, beam_lib.SegmentVideo(spec), summary_path, argv[1:], settings
    )
    beam_lib.fail_if_any_failed(record, summary_path)


if __name__ == "__main__":
    cli.run(main, flags_parser=lambda argv: flags.FLAGS(argv, known_only=True))

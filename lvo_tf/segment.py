r"""Segments the moving objects of videos: the main job.

    python -m lvo_tf.segment --input=video.mp4 --output_dir=out/seg    # the default model
    python -m lvo_tf.segment --input=video.mp4 --output_dir=out/fast --weights=fast
    python -m lvo_tf.segment --davis_root=DAVIS --split=val --output_dir=out/seg \
        --weights=lvo.weights.h5 --preset=paper --flow_method=dis_medium
    python -m lvo_tf.segment --davis_root=DAVIS --method=baseline --output_dir=out/base

`--input` (a video file or a folder of frames) writes `OUTPUT_DIR/<frame
stem>.png`; `--davis_root` writes `OUTPUT_DIR/<seq>/<frame stem>.png`, the
layout `evaluate` reads. Masks are single-channel PNGs, 0/255, the size of
the frames, each written atomically; a sequence whose masks all exist is
skipped, so an interrupted run can simply be re-run. Also written:
`OUTPUT_DIR/overlays/<seq>.gif` and `.png` (masks over frames; contact
sheet), with `--save_probabilities` `OUTPUT_DIR/probabilities/...`, and
`OUTPUT_DIR/segment_summary.json` (frames, seconds per frame by stage).

Long videos run in overlapping windows (`--window`, `--overlap`) with memory
bounded by the window; `--online` runs forward with carried memory for live
or unbounded input (see lvo_tf/inference/segmenter.py for the trade-off).
Each mask is refined by a dense CRF on the frame, as in LVO (`--nocrf`:
the probability thresholded at 0.5, 2-3x faster), with the settings the
model's manifest gives (the fast model: only on the object's box) unless a
`--crf_*` flag is set. Without `--weights` the shipped default model runs
(lvo_tf/shipped), on frames shrunk to the height its manifest gives
(`--process_height`; never enlarged); masks keep the video's size.
`--weights=fast` is the synthetic model's network at 240 rows with the CRF
on the box around the object only, without its smoothness kernel and at
half the frame's size, 5x the default's rate at 854x480 (README, "The fast
model").
"""

import json
import os

from absl import app, flags, logging

from lvo_tf import shipped
from lvo_tf.benchmarks import timing
from lvo_tf.common import cli, io_utils
from lvo_tf.data import flow as flow_lib
from lvo_tf.data import readers
from lvo_tf.inference import crf, jobs, run
from lvo_tf.models import PRESETS

_INPUT = flags.DEFINE_string(
    "input",
    None,
    "A video file or a folder of frames; with --online also a camera index "
    "(0) or a stream URL (rtsp://...).",
)
_DAVIS_ROOT = flags.DEFINE_string("davis_root", None, "A DAVIS-2016-layout root.")
_SPLIT = flags.DEFINE_string("split", "val", "With --davis_root: image set, or 'all'.")
_SEQUENCES = flags.DEFINE_list("sequences", None, "With --davis_root: only these.")
_OUTPUT_DIR = flags.DEFINE_string("output_dir", None, "Where masks go.")
_METHOD = flags.DEFINE_enum("method", "lvo", run.METHODS, "LVO, or the non-learned baseline.")
_PRESET = flags.DEFINE_enum("preset", "lite", sorted(PRESETS), "Model preset of --weights.")
_WEIGHTS = flags.DEFINE_string(
    "weights",
    None,
    shipped.WEIGHTS_HELP,
)
_RANDOM = flags.DEFINE_bool("allow_random_weights", False, "Run untrained (tests, timing).")
_PROCESS_HEIGHT = flags.DEFINE_integer(
    "process_height",
    None,
    "Shrink frames taller than this to this height for the network and flow (shorter "
    "ones keep their size); masks keep the video's size (default: the default model's "
    "processing height, else the video's own).",
    lower_bound=16,
)
_WINDOW = flags.DEFINE_integer("window", 28, "Frames per memory window.", lower_bound=1)
_OVERLAP = flags.DEFINE_integer(
    "overlap", 8, "Frames shared by consecutive windows.", lower_bound=0
)
_ONLINE = flags.DEFINE_bool("online", False, "Forward-only streaming with carried memory.")
_ONLINE_CHUNK = flags.DEFINE_integer("online_chunk", 1, "Frames per online step.", lower_bound=1)
_CRF = flags.DEFINE_bool(
    "crf", True, "Refine masks with a dense CRF (at the processing size); --nocrf: threshold 0.5."
)
_CRF_GAUSSIAN_SXY = flags.DEFINE_float("crf_gaussian_sxy", 3.0, "CRF smoothness kernel width.")
_CRF_GAUSSIAN_COMPAT = flags.DEFINE_float("crf_gaussian_compat", 3.0, "Its weight.")
_CRF_BILATERAL_SXY = flags.DEFINE_float("crf_bilateral_sxy", 50.0, "CRF appearance kernel width.")
_CRF_BILATERAL_SRGB = flags.DEFINE_float("crf_bilateral_srgb", 10.0, "Its colour width.")
_CRF_BILATERAL_COMPAT = flags.DEFINE_float("crf_bilateral_compat", 5.0, "Its weight.")
_CRF_ITERATIONS = flags.DEFINE_integer("crf_iterations", 5, "Mean-field steps.", lower_bound=1)
_CRF_CROP_THRESHOLD = flags.DEFINE_float(
    "crf_crop_threshold",
    0.0,
    "Run the CRF only on the box around pixels above this probability (plus the "
    "appearance kernel's width); 0: on the whole frame.",
)
_CRF_SCALE = flags.DEFINE_float(
    "crf_scale",
    1.0,
    "Run the CRF on the network's frame resized by this factor (its kernel widths "
    "with it; the marginal is upsampled); 1: at the network's size.",
)
_FLOW_METHOD = flags.DEFINE_enum(
    "flow_method",
    None,
    flow_lib.METHODS,
    "Optical flow (default: the one the model learned, from its manifest; else "
    f"{flow_lib.DEFAULT_METHOD}, which the baseline always uses unless given).",
)
_FLOW_DIR = flags.DEFINE_string(
    "flow_dir",
    None,
    "Flow cache (default OUTPUT_DIR/.flow): <flow_dir>/h<height>/<method>/<video>-<its "
    "frames' SHA-256>/, as `compute_flow --process_height` writes it.",
)
_KEEP_FLOW = flags.DEFINE_bool(
    "keep_flow", True, "Keep each video's flow in the cache; --nokeep_flow drops it when done."
)
_OVERWRITE = flags.DEFINE_bool(
    "overwrite",
    False,
    "Replace masks in --output_dir that another run (other video, model, height, flow "
    "or CRF) wrote; without it such a folder is refused.",
)
_SAVE_PROBABILITIES = flags.DEFINE_bool("save_probabilities", False, "Also write 0-255 maps.")
_OVERLAY = flags.DEFINE_bool("overlay", True, "Write overlay GIFs and contact sheets.")
_PREFETCH = flags.DEFINE_integer(
    "prefetch",
    32,
    "Frames whose inputs (reading, resizing, optical flow) are prepared ahead on a "
    "thread while the network runs; 0: prepare them on the network's thread.",
    lower_bound=0,
)
flags.mark_flags_as_required(["output_dir"])
flags.register_multi_flags_validator(
    ["input", "davis_root"],
    lambda f: (f["input"] is None) != (f["davis_root"] is None),
    message="give exactly one of --input and --davis_root",
)
flags.register_multi_flags_validator(
    ["window", "overlap"],
    lambda f: f["overlap"] < f["window"],
    message="--overlap must be smaller than --window",
)


def _model():
    try:
        model = jobs.load_model(
            _METHOD.value,
            _WEIGHTS.value,
            _PRESET.value,
            _RANDOM.value,
            _PROCESS_HEIGHT.value,
            _FLOW_METHOD.value,
            preset_given=_PRESET.present,
            flow_given=_FLOW_METHOD.present,
        )
    except (FileNotFoundError, ValueError) as e:
        raise app.UsageError(str(e)) from None
    if model.record.get("summary"):
        logging.info("Model %s (%s)", model.record["model"], model.record["summary"])
    return model


def _model_and_options(options):
    """The model, and `options` with the CRF settings its manifest asks for."""
    model = _model()
    try:
        return model, jobs.with_model_crf(options, model, _crf_given())
    except ValueError as e:
        raise app.UsageError(str(e)) from None


def _live_source():
    """--input for --online as OpenCV opens it: a camera index, a file or a URL."""
    source = _INPUT.value
    if source.isdigit():
        return int(source), "camera"
    if not os.path.isfile(source) and "://" not in source:
        raise app.UsageError(f"--input: no video file, folder, camera or URL {source!r}")
    return source, os.path.splitext(os.path.basename(source))[0]


_CRF_FLAGS = {
    "gaussian_sxy": _CRF_GAUSSIAN_SXY,
    "gaussian_compat": _CRF_GAUSSIAN_COMPAT,
    "bilateral_sxy": _CRF_BILATERAL_SXY,
    "bilateral_srgb": _CRF_BILATERAL_SRGB,
    "bilateral_compat": _CRF_BILATERAL_COMPAT,
    "iterations": _CRF_ITERATIONS,
    "crop_threshold": _CRF_CROP_THRESHOLD,
    "scale": _CRF_SCALE,
}


def _crf_params():
    if not _CRF.value:
        return None
    return crf.CRFParams(**{k: f.value for k, f in _CRF_FLAGS.items()})


def _crf_given() -> dict:
    """The CRF settings set on the command line: they win over the model's."""
    return {k: f.value for k, f in _CRF_FLAGS.items() if f.present}


def _options():
    return run.SegmentOptions(
        method=_METHOD.value,
        window=_WINDOW.value,
        overlap=_OVERLAP.value,
        online=_ONLINE.value,
        online_chunk=_ONLINE_CHUNK.value,
        crf=_crf_params(),
        save_probabilities=_SAVE_PROBABILITIES.value,
        overlay=_OVERLAY.value,
    )


def main(argv):
    del argv
    options = _options()
    out = _OUTPUT_DIR.value
    if _ONLINE.value and _INPUT.value and not os.path.isdir(_INPUT.value):
        source, name = _live_source()  # frames are read as they come
        model, options = _model_and_options(options)
        try:
            frames = readers.iterate_video(source)
            stats = jobs.segment_live(model, name, frames, options, out)
        except ValueError as e:
            raise app.UsageError(str(e)) from None
        _write_summary(options, model, stats)
        return
    # Every input is checked before the model loads.
    todo = jobs.list_jobs(out, _DAVIS_ROOT.value, _SPLIT.value, _SEQUENCES.value, _INPUT.value)
    model, options = _model_and_options(options)
    settings = jobs.settings(options, model)
    jobs.prepare(todo, settings, out, _OVERWRITE.value)
    flows = jobs.flow_cache(
        _FLOW_DIR.value or os.path.join(out, ".flow"), model.height, model.flow_method
    )
    stats = jobs.run_jobs(model, todo, options, flows, out, _PREFETCH.value, _KEEP_FLOW.value)
    _write_summary(options, model, stats, settings)
    logging.info(
        "Flow cache: %s (%.1f MB)%s",
        flows.root,
        jobs.folder_mib(flows.root),
        "" if not _KEEP_FLOW.value else "; --nokeep_flow drops each video's flow when done",
    )


def _write_summary(options, model: jobs.RunModel, stats: jobs.RunStats, settings=None):
    """OUTPUT_DIR/segment_summary.json: what ran, how fast, per stage."""
    per_frame = {k: v / max(stats.processed, 1) for k, v in vars(stats.times).items()}
    summary = {
        "method": options.method,
        "model": model.record.get("model"),
        "preset": model.record.get("preset"),
        "frames": stats.frames,
        "processed": stats.processed,
        "seconds": stats.seconds,
        "seconds_per_frame": stats.seconds / max(stats.processed, 1),
        "stage_seconds_per_frame": per_frame,
        "crf": options.crf is not None,
        "online": options.online,
        "process_height": model.height,
        "flow_method": model.flow_method,
        "peak_memory_mib": timing.peak_rss_mib(),
        "settings": settings,
    }
    io_utils.write_json(os.path.join(_OUTPUT_DIR.value, "segment_summary.json"), summary)
    logging.info("Done: %s", json.dumps(summary))


if __name__ == "__main__":
    cli.run(main)

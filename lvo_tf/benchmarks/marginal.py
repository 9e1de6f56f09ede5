"""Section `marginal`: each shipped model's marginal rate on real 854x480
video, the way `segment` runs it (its processing height, flow method and
CRF; flow computed fresh, inputs prefetched), after start-up, each model in
a fresh process, next to the machine's matmul ceiling. Needs the DAVIS-2016
train frames (`$LVO_DAVIS_TRAIN`); without them the section is skipped."""

from __future__ import annotations

import os
import tempfile

from absl import logging

from lvo_tf import shipped
from lvo_tf.benchmarks import segment, timing
from lvo_tf.data import readers
from lvo_tf.inference import crf, run
from lvo_tf.inference.segmenter import LVORunner, StageTimes

SEQUENCES = ("bear", "boat", "car-turn", "rhino")
MODELS = (shipped.DEFAULT, "fast")


def davis_train_root() -> str:
    return os.environ.get("LVO_DAVIS_TRAIN", "../shared/data/davis2016-train")


def marginal_probe(name: str, root: str, sequences=SEQUENCES, frames: int = 50) -> dict:
    """Shipped model `name` on the first `frames` frames of each of
    `sequences` (DAVIS layout under `root`): one 3-frame warm-up run per
    sequence (tracing, thread start), then the timed run; frames per second
    over all timed frames and seconds per frame per stage (`StageTimes`; read
    and flow ran on the prefetch thread beside the network)."""
    model, info = shipped.load(name=name)
    settings = shipped.crf_settings(info)
    runner = LVORunner(model, stream_batch=8)
    options = run.SegmentOptions(overlay=False, crf=crf.CRFParams(**settings))
    method = info["flow_method"]

    def shrink(frame):
        return readers.shrink_to_height(frame, info["process_height"])

    total, seconds, per_sequence = StageTimes(), 0.0, {}
    counted = 0
    for sequence in sequences:
        folder = os.path.join(root, "JPEGImages", "480p", sequence)
        files = sorted(os.listdir(folder))[:frames]
        paths = [os.path.join(folder, f) for f in files]
        stems = [os.path.splitext(f)[0] for f in files]
        with tempfile.TemporaryDirectory() as tmp:
            warmup, timed = os.path.join(tmp, "warmup"), os.path.join(tmp, "timed")
            segment.timed_segment(
                runner, stems[:3], paths, warmup, method, options, shrink, 32, sequence
            )
            took, times = segment.timed_segment(
                runner, stems, paths, timed, method, options, shrink, 32, sequence
            )
        logging.info("%s on %s: %.2f frames/s", name, sequence, len(stems) / took)
        per_sequence[sequence] = len(stems) / took
        seconds += took
        counted += len(stems)
        for stage, value in vars(times).items():
            total.add(stage, value)
    return {
        "model": name,
        "process_height": info["process_height"],
        "flow_method": method,
        "crf": settings,
        "frames": counted,
        "frames_per_second": counted / seconds,
        "per_sequence_frames_per_second": per_sequence,
        "stage_seconds_per_frame": {k: v / counted for k, v in vars(total).items()},
    }


def bench_marginal(repeats: int = 1) -> dict:
    """`marginal_probe` for the default and the fast model, each in a fresh
    process, and the matmul ceiling, in one run; {"skipped": reason} without
    the DAVIS-2016 train frames. One timed pass per sequence (`repeats`
    unused: 200 frames per model already average over sequences)."""
    del repeats
    root = davis_train_root()
    missing = [s for s in SEQUENCES if not os.path.isdir(os.path.join(root, "JPEGImages/480p", s))]
    if missing:
        logging.warning("marginal: skipped, no DAVIS-2016 train frames of %s in %s", missing, root)
        return {"skipped": f"no DAVIS-2016 train frames of {missing} in {root}"}
    runs = [
        timing.in_fresh_process(
            __name__, "marginal_probe", name, root, what=f"marginal rate of {name}"
        )
        for name in MODELS
    ]
    return {"runs": runs, "matmul_gflops": timing.matmul_gflops()}


def marginal_markdown(result: dict) -> str:
    if "skipped" in result:
        return f"Skipped: {result['skipped']}."
    runs = result["runs"]
    stages = ("streams", "memory", "crf", "flow", "wait")
    lines = [
        "| model | processed at | CRF | **frames/s** | vs the default | "
        + " | ".join(f"{s}, s / frame" for s in stages)
        + " |",
        "|---|---|---|---|---|" + "---|" * len(stages),
    ]
    for r in runs:
        cells = " | ".join(f"{r['stage_seconds_per_frame'][s]:.3f}" for s in stages)
        settings = ", ".join(f"{k} {v:g}" for k, v in sorted(r["crf"].items())) or "defaults"
        lines.append(
            f"| {r['model']} | {r['process_height']} rows | {settings} | "
            f"**{r['frames_per_second']:.2f}** | "
            f"{r['frames_per_second'] / runs[0]['frames_per_second']:.2f}x | {cells} |"
        )
    return "\n".join(
        lines
        + [
            "",
            f"{runs[0]['frames']} frames per model: the first 50 of {', '.join(SEQUENCES)} "
            "(DAVIS-2016 train, 854x480), after a 3-frame warm-up per sequence; flow on "
            "the prefetch thread, beside the network. "
            f"fp32 matmul ceiling in the same run: {result['matmul_gflops']:.0f} GFLOP/s.",
        ]
    )

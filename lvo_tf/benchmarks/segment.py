"""Section `segment`: `segment` end to end on a synthetic 854x480 video (inputs
prepared inline and on the prefetch thread), next to each stage alone, their
sum, the dense CRF and the peak memory, each variant in a fresh process."""

from __future__ import annotations

import dataclasses
import os
import tempfile
import time

import numpy as np
from absl import logging

from lvo_tf import models as lvo_models
from lvo_tf import shipped
from lvo_tf.benchmarks import timing
from lvo_tf.common import io_utils
from lvo_tf.data import flow as flow_lib
from lvo_tf.data import readers, synthetic
from lvo_tf.inference import crf, run
from lvo_tf.inference.segmenter import LVORunner, StageTimes, window_starts


def timed_segment(
    runner, stems, paths, run_dir, flow_method, options, shrink, prefetch, sequence="v"
) -> tuple[float, StageTimes]:
    """Seconds and `StageTimes` of `run.segment_sequence` (what `segment`
    runs) on the frames at `paths` (the first len(stems)), with flow computed
    into a fresh cache under `run_dir` and the masks written there."""
    flows = flow_lib.FlowCache(os.path.join(run_dir, "flow"), flow_method)
    times = StageTimes()
    start = time.perf_counter()
    run.segment_sequence(
        runner,
        stems,
        lambda i: readers.read_frame(paths[i]),
        lambda i, frame: flows.field(sequence, stems, i, frame),
        os.path.join(run_dir, "masks"),
        options,
        times,
        shrink=shrink,
        prefetch=prefetch,
    )
    return time.perf_counter() - start, times


def segment_probe(
    preset: str,
    process_height: int | None,
    frames: int,
    repeats: int,
    height: int = 480,
    width: int = 854,
    prefetch: tuple[int, ...] = (0, 32),
    stream_batch: int = 8,
) -> dict:
    """`segment` on a synthetic 854x480 video of `frames` JPEG frames, end to
    end (read, resize, DIS flow, streams, memory, upsampling, threshold, mask
    PNGs: `run.segment_sequence`, the code `segment` runs), with its inputs
    prepared inline (`prefetch` 0) and on a thread; and in the same process
    each stage alone on the same data, their per-frame sum (memory counted
    once per window frame, as the overlapping windows run it), the dense CRF
    (not part of the default), and the process's peak resident memory
    while segmenting (model loaded, functions traced; Linux VmHWM). Also
    end to end with the CRF the model refines with (its manifest's
    settings), inputs prefetched: what `segment` runs by default, after
    start-up (the marginal rate).
    `preset` "default" is the shipped default model, a shipped model's name
    (`fast`) that model; a preset name, that network with random weights.
    Run it in a fresh process (`bench_segment`)."""
    crf_params = crf.CRFParams()
    is_shipped = preset == "default" or preset in shipped.SHIPPED
    if is_shipped:
        model, info = shipped.load(name=shipped.DEFAULT if preset == "default" else preset)
        flow_method = info["flow_method"]
        crf_params = crf.CRFParams(**shipped.crf_settings(info))
    else:
        model, flow_method = lvo_models.build_lvo(preset), flow_lib.DEFAULT_METHOD
    runner = LVORunner(model, stream_batch=stream_batch)
    options = run.SegmentOptions(overlay=False)
    world = synthetic.WorldConfig(height=height, width=width, frames=frames)
    video = synthetic.render_video(np.random.default_rng(0), world)
    result = {
        "preset": preset,
        "weights": "shipped" if is_shipped else "random",
        "crf": dataclasses.asdict(crf_params),
        "frame": [height, width],
        "process_height": process_height,
        "frames": frames,
        "window": options.window,
        "overlap": options.overlap,
        "flow_method": flow_method,
        "stream_batch": stream_batch,
    }

    def shrink(f):
        return readers.shrink_to_height(f, process_height)

    with tempfile.TemporaryDirectory() as tmp:
        stems = [f"{i:05d}" for i in range(frames)]
        paths = []
        for stem, frame in zip(stems, video.frames, strict=True):
            paths.append(os.path.join(tmp, stem + ".jpg"))
            io_utils.write_image(paths[-1], frame[..., ::-1])

        def end_to_end(run_dir, n, ahead, options=options):
            return timed_segment(
                runner, stems[:n], paths, run_dir, flow_method, options, shrink, ahead
            )

        del video
        end_to_end(os.path.join(tmp, "warmup"), min(3, frames), 0)  # traces the functions
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # resets VmHWM: the peak below is segment's own

        def median_rate(tag, ahead, options=options):
            """The median of `repeats` end-to-end runs, per frame."""
            runs = []
            for r in range(repeats):
                logging.info("segment %s (%s): run %d/%d", preset, tag, r + 1, repeats)
                runs.append(end_to_end(os.path.join(tmp, f"{tag}_{r}"), frames, ahead, options))
            seconds, times = sorted(runs, key=lambda x: x[0])[len(runs) // 2]
            return {
                "seconds_per_frame": seconds / frames,
                "frames_per_second": frames / seconds,
                "stage_seconds_per_frame": {k: v / frames for k, v in vars(times).items()},
            }

        result["end_to_end"] = {str(a): median_rate(f"prefetch {a}", a) for a in prefetch}
        result["peak_memory_mib"] = timing.peak_rss_mib()  # of the process, while segmenting
        with_crf = dataclasses.replace(options, crf=crf_params)
        result["end_to_end_crf"] = median_rate("with its CRF", 32, with_crf)

        # Each stage alone, on the same frames.
        def timed(fn):
            return timing.time_call(fn, warmup=1, repeats=repeats)

        stages = {}
        originals = [readers.read_frame(p) for p in paths]
        small = np.stack([shrink(f) for f in originals])
        stages["read"] = timed(lambda: [shrink(readers.read_frame(p)) for p in paths]) / frames
        estimator = flow_lib.FlowEstimator(flow_method)
        pairs = min(frames - 1, 8)
        stages["flow"] = timed(lambda: [estimator(small[i], small[i + 1]) for i in range(pairs)])
        stages["flow"] /= pairs
        flow = flow_lib.clip_flow(small, flow_method).astype(np.float32)
        n = min(options.window, frames)
        stages["streams"] = timed(lambda: runner.features(small[:n], flow[:n])) / n
        feats = runner.features(small[:n], flow[:n])
        memory_frames = sum(
            min(s + options.window, frames) - s
            for s in window_starts(frames, options.window, options.overlap)
        )
        stages["memory"] = timed(lambda: runner.coarse(feats)) / n * memory_frames / frames
        coarse = runner.coarse(feats)
        stages["upsample"] = timed(lambda: runner.upsample(coarse[:1], small[:1]))
        p = runner.upsample(coarse[:1], small[:1])[0]

        def write():
            mask = run.resize_probability(p, originals[0].shape[:2]) > 0.5
            io_utils.write_image(os.path.join(tmp, "m.png"), mask.astype(np.uint8) * 255)

        stages["write"] = timed(write)
        # The CRF as `segment` runs it by default: at the processing size,
        # its marginal upsampled (and, for reference, at the video's size).
        full_p = run.resize_probability(p, originals[0].shape[:2])
        result["crf_seconds_per_frame"] = timed(
            lambda: run.to_mask(p, small[0], originals[0], crf_params)
        )
        result["crf_full_size_seconds_per_frame"] = timed(
            lambda: crf.refine(originals[0], full_p, crf_params)
        )
        result["stage_seconds_per_frame"] = stages
        result["sum_of_stages"] = sum(stages.values())
        for v in result["end_to_end"].values():
            v["vs_sum_of_stages"] = v["seconds_per_frame"] / result["sum_of_stages"]
    return result


def bench_segment(variants=None, repeats: int = 3) -> list[dict]:
    """`segment_probe` for each (preset, process height, frames), each in a
    fresh process so that its peak memory is its own; by default the shipped
    default and fast models at their manifests' processing heights, the
    default at 854x480, and `paper`."""
    if variants is None:
        height = shipped.manifest()["process_height"]
        fast = shipped.manifest(name="fast")["process_height"]
        variants = (
            ("default", height, 60),
            ("fast", fast, 60),
            ("default", None, 40),
            ("paper", None, 8),
        )
    results = []
    for preset, process_height, frames in variants:
        results.append(
            timing.in_fresh_process(
                __name__,
                "segment_probe",
                preset,
                process_height,
                frames,
                repeats,
                what=f"segment probe {preset} at {process_height}",
            )
        )
    return results


def _crf_name(settings: dict) -> str:
    name = f"{settings['iterations']}-step CRF"
    if settings.get("crop_threshold"):
        name += f" on the box above {settings['crop_threshold']:g}"
    if settings["gaussian_compat"] == 0:
        name += " without the smoothness kernel"
    if settings["scale"] != 1.0:
        name += f" at scale {settings['scale']:g}"
    return name


def segment_markdown(results: list[dict]) -> str:
    lines = [
        "| model | processed at | frames | **with its CRF, prefetched: frames/s** | "
        "end to end (`--nocrf`), inputs inline: frames/s | "
        "inputs prefetched: frames/s | speed-up | sum of stages, s / frame | "
        "end to end (prefetched) vs sum | peak memory (MiB) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        inline, ahead = r["end_to_end"]["0"], r["end_to_end"]["32"]
        size = f"{r['process_height']} rows" if r["process_height"] else "854x480"
        lines.append(
            f"| {r['preset']} ({r['weights']}) | {size} | {r['frames']} | "
            f"**{r['end_to_end_crf']['frames_per_second']:.2f}** ({_crf_name(r['crf'])}) | "
            f"{inline['frames_per_second']:.2f} | {ahead['frames_per_second']:.2f} | "
            f"{inline['seconds_per_frame'] / ahead['seconds_per_frame']:.2f}x | "
            f"{r['sum_of_stages']:.3f} | {ahead['vs_sum_of_stages']:.2f}x | "
            f"{r['peak_memory_mib']:.0f} |"
        )
    names = list(results[0]["stage_seconds_per_frame"])
    lines += [
        "",
        "Each stage alone, s / frame (same run):",
        "",
        "| model | processed at | "
        + " | ".join(names)
        + " | its CRF at the processing size (the default) | at the video's size |",
        "|---|---|" + "---|" * len(names) + "---|---|",
    ]
    for r in results:
        size = f"{r['process_height']} rows" if r["process_height"] else "854x480"
        cells = " | ".join(f"{r['stage_seconds_per_frame'][k]:.4f}" for k in names)
        lines.append(
            f"| {r['preset']} | {size} | {cells} | {r['crf_seconds_per_frame']:.3f} "
            f"| {r['crf_full_size_seconds_per_frame']:.3f} |"
        )
    return "\n".join(lines)

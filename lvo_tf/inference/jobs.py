"""What `segment` is asked to do, checked before any work: videos, outputs, resumption.

A job is one video: its frames (files, or decoded frames of a video file),
the folder its masks go to, and the fingerprint of its input (SHA-256 of the
frame files' bytes, or of the decoded frames). Every job's mask folder holds
a run record, `.segment_run.json`: the input fingerprint and the settings
that change masks (model and its weights' SHA-256, method, processing
height, flow method, CRF, windows). A folder whose masks came from another
run (another video, model, height, flow, CRF) is refused, not resumed: masks
that belong to another run would be reported as this run's. `--overwrite`
replaces them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import time
from collections.abc import Iterable

import numpy as np
from absl import logging

from lvo_tf import shipped
from lvo_tf.common import io_utils
from lvo_tf.data import flow as flow_lib
from lvo_tf.data import readers
from lvo_tf.inference import crf as crf_lib
from lvo_tf.inference import run
from lvo_tf.inference.segmenter import LVORunner, StageTimes

RUN_RECORD = ".segment_run.json"


@dataclasses.dataclass
class Job:
    name: str
    stems: list[str]
    sources: list  # frame paths, or decoded RGB frames of a video file
    mask_dir: str
    sub: str | None  # its sub-folder of probabilities/ and overlays/, if any
    fingerprint: str = ""

    def existing_masks(self) -> list[str]:
        return [s for s in self.stems if os.path.isfile(os.path.join(self.mask_dir, s + ".png"))]


def list_jobs(
    output_dir: str,
    davis_root: str | None = None,
    split: str | None = "val",
    sequences: list[str] | None = None,
    input_path: str | None = None,
) -> list[Job]:
    """The videos of a DAVIS-layout root, a frames folder or a video file,
    with their input fingerprints, after the checks every job gets before any
    work: the output folder is outside the input and writable, and every
    frame is an image of its video's size (`check_frames`)."""
    if davis_root:
        jobs = [
            Job(s.name, s.stems, s.frame_paths, os.path.join(output_dir, s.name), s.name)
            for s in readers.davis_sequences(davis_root, split, sequences)
        ]
    elif os.path.isdir(input_path):
        seq = readers.frames_folder(input_path)
        jobs = [Job(seq.name, seq.stems, seq.frame_paths, output_dir, None)]
    else:
        frames = readers.read_video(input_path)
        if not len(frames):
            raise ValueError(f"--input {input_path!r}: the video has no frames")
        name = os.path.splitext(os.path.basename(input_path))[0]
        jobs = [Job(name, [f"{i:05d}" for i in range(len(frames))], list(frames), output_dir, None)]
    io_utils.check_output_dir(
        output_dir,
        inputs=io_utils.input_folders(davis_root, input_path),
        not_equal_to=[davis_root],
    )
    check_frames(jobs)
    for job in jobs:
        job.fingerprint = fingerprint(job.sources)
    return jobs


def fingerprint(sources: list) -> str:
    """SHA-256 of a video's frames: the files' bytes in order (or the decoded
    frames' pixels and shapes)."""
    digest = hashlib.sha256()
    for source in sources:
        if isinstance(source, str):
            digest.update(os.path.basename(source).encode() + b"\0")
            with open(source, "rb") as f:
                for block in iter(lambda f=f: f.read(1 << 20), b""):
                    digest.update(block)
        else:
            array = np.ascontiguousarray(source)
            digest.update(str(array.shape).encode())
            digest.update(array.tobytes())
        digest.update(b"\1")
    return digest.hexdigest()


def check_frames(jobs: list[Job], min_size: int = 16) -> None:
    """`readers.check_video` on every job, before any work starts."""
    for job in jobs:
        readers.check_video(job.name, job.sources, min_size)


def _read_record(path: str) -> dict | None:
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {}


def _differences(old: dict, new: dict) -> list[str]:
    out = []
    if old.get("input") != new["input"]:
        out.append("the input frames differ")
    old_settings, new_settings = old.get("settings", {}), new["settings"]
    for key in sorted(set(old_settings) | set(new_settings)):
        if old_settings.get(key) != new_settings.get(key):
            out.append(f"{key}: {old_settings.get(key)!r} then, {new_settings.get(key)!r} now")
    return out


def _remove_outputs(job: Job, stems: list[str], output_dir: str) -> None:
    """Deletes a job's masks of `stems`, their probability maps and its overlays."""
    probabilities = os.path.join(output_dir, "probabilities", *([job.sub] if job.sub else []))
    for stem in stems:
        for folder in (job.mask_dir, probabilities):
            path = os.path.join(folder, stem + ".png")
            if os.path.isfile(path):
                os.remove(path)
    for ext in (".gif", ".png"):
        path = os.path.join(output_dir, "overlays", (job.sub or job.name) + ext)
        if os.path.isfile(path):
            os.remove(path)


def prepare(jobs: list[Job], settings: dict, output_dir: str, overwrite: bool = False) -> None:
    """Checks every job's mask folder against this run before any work: a
    folder with masks of another run is refused (ValueError naming it and
    what differs) unless `overwrite`, which deletes those masks (and the
    job's probabilities and overlays) first. Then writes each job's record."""
    refused = []
    for job in jobs:
        record = {"input": job.fingerprint, "settings": settings}
        path = os.path.join(job.mask_dir, RUN_RECORD)
        old = _read_record(path)
        masks = job.existing_masks()
        if not masks or old == record:
            continue
        why = (
            _differences(old, record)
            if old
            else [f"no run record ({RUN_RECORD}) says what made them"]
        )
        if not why:
            continue
        if not overwrite:
            refused.append(
                f"{job.mask_dir!r} holds {len(masks)} masks of another run ({'; '.join(why)})"
            )
            continue
        _remove_outputs(job, masks, output_dir)
    if refused:
        raise ValueError(
            "; ".join(refused)
            + ". Pass --overwrite to replace them, or choose another --output_dir"
        )
    for job in jobs:
        record = {"input": job.fingerprint, "settings": settings}
        path = os.path.join(job.mask_dir, RUN_RECORD)
        if _read_record(path) != record:
            io_utils.write_json(path, record)


# === Flow cache ===


def flow_cache(flow_dir: str, height: int | None, method: str):
    """`segment`'s flow cache: `<flow_dir>/h<height>/<method>/<flow_key>/` (or
    `full/` for videos at their own size), as `compute_flow --process_height`
    writes it."""

    return flow_lib.FlowCache(os.path.join(flow_dir, f"h{height}" if height else "full"), method)


def flow_key(job: Job) -> str:
    """A video's folder in the flow cache: its name and its frames' SHA-256,
    so two videos of one name never share flow."""
    return f"{job.name}-{job.fingerprint[:16]}"


def drop_flow(cache, key: str) -> None:
    folder = os.path.join(cache.root, cache.method, key)
    if os.path.isdir(folder):
        shutil.rmtree(folder)


def folder_mib(folder: str) -> float:
    total = 0
    for root, _, files in os.walk(folder):
        for name in files:
            try:
                total += os.path.getsize(os.path.join(root, name))
            except OSError:
                pass
    return total / 2**20


# === The model a run uses, and one video's run ===


@dataclasses.dataclass
class RunModel:
    """What `segment` runs: the network (None for the baseline), the height
    frames are shrunk to (None: their own), the flow method, what the
    summary and run records keep of the model, and the CRF settings its
    manifest asks for (`crf`: `CRFParams` fields, e.g. the fast model's
    crop threshold; `with_model_crf` applies them)."""

    runner: object
    height: int | None
    flow_method: str
    record: dict
    crf: dict = dataclasses.field(default_factory=dict)


def load_model(
    method: str = "lvo",
    weights: str | None = None,
    preset: str = "lite",
    allow_random: bool = False,
    height: int | None = None,
    flow_method: str | None = None,
    preset_given: bool = False,
    flow_given: bool = False,
) -> RunModel:
    """The model of a run: a shipped model's name, a packaged or bare weights
    file, or untrained weights; with its manifest's processing height and
    flow method unless given. Bare weights (no manifest beside them) need
    the preset and flow method given (`preset_given`, `flow_given`):
    ValueError otherwise, naming the flags."""

    if method == "baseline":
        return RunModel(None, height, flow_method or flow_lib.DEFAULT_METHOD, {"model": None})
    bare = (
        weights
        and weights not in shipped.SHIPPED
        and os.path.isfile(weights)
        and not shipped.manifest_beside(weights)
    )
    unstated = [
        f for f, given in (("--preset", preset_given), ("--flow_method", flow_given)) if not given
    ]
    if bare and unstated:
        raise ValueError(
            f"--weights {weights!r} has no manifest beside it to say the network, flow method "
            f"and processing height it was trained with; pass {' and '.join(unstated)} (and "
            "--process_height) to run it with settings you choose, or package it with "
            "`python -m lvo_tf.package_default`"
        )
    model, info = shipped.resolve(weights, preset, allow_random)
    if info and height is None:
        height = info["process_height"]
    if weights and weights not in shipped.SHIPPED:
        weights_sha = shipped.sha256(weights)
    else:
        weights_sha = info["sha256"] if info else "untrained"
    record = {
        "model": (info or {}).get("name") or weights or "untrained",
        "preset": (info or {}).get("preset", preset),
        "weights_sha256": weights_sha,
        "config": (info or {}).get("config"),
        "summary": (info or {}).get("summary"),
    }
    return RunModel(
        LVORunner(model),
        height,
        flow_method or shipped.flow_method(info),
        record,
        shipped.crf_settings(info),
    )


def with_model_crf(options, model: RunModel, given: dict | None = None):
    """`options` (run.SegmentOptions) with the CRF settings of `model`'s
    manifest in place of the defaults; the CRF settings in `given` (those
    set on the command line) win over both. No CRF stays no CRF."""
    if options.crf is None or not (model.crf or given):
        return options
    values = {**dataclasses.asdict(options.crf), **model.crf, **(given or {})}
    return dataclasses.replace(options, crf=crf_lib.CRFParams(**values))


def settings(options, model: RunModel) -> dict:
    """What changes masks: the run record a resumed run must match."""
    return {
        "method": options.method,
        **{k: model.record.get(k) for k in ("model", "weights_sha256", "config")},
        "process_height": model.height,
        "flow_method": model.flow_method,
        "crf": dataclasses.asdict(options.crf) if options.crf else None,
        "window": options.window,
        "overlap": options.overlap,
        "online": options.online,
        "online_chunk": options.online_chunk if options.online else None,
    }


def segment_job(
    model: RunModel,
    job: Job,
    options,
    flows,
    output_dir: str,
    times,
    prefetch: int = 32,
    keep_flow: bool = True,
    progress=None,
) -> int:
    """Segments one video into its mask folder (after `prepare`), skipping
    frames whose masks exist; probabilities and overlays under `output_dir`
    as `segment` writes them. Returns the number of frames computed."""

    existing = len(job.existing_masks())
    if existing == len(job.stems):
        return 0
    overlays = (
        os.path.join(output_dir, "overlays", job.sub or job.name) if options.overlay else None
    )
    probabilities = None
    if options.save_probabilities:
        probabilities = os.path.join(output_dir, "probabilities", *([job.sub] if job.sub else []))
    key = flow_key(job)
    sources, height = job.sources, model.height
    run.segment_sequence(
        model.runner,
        job.stems,
        lambda i: readers.read_frame(sources[i]) if isinstance(sources[i], str) else sources[i],
        lambda i, frame: flows.field(key, job.stems, i, frame),
        job.mask_dir,
        options,
        times,
        shrink=lambda f: readers.shrink_to_height(f, height),
        prefetch=prefetch,
        probability_dir=probabilities,
        overlay_stem=overlays,
        progress=progress,
    )
    if not keep_flow:
        drop_flow(flows, key)
    return len(job.stems) - existing


# === A whole run: every job, or one live source ===


@dataclasses.dataclass
class RunStats:
    """What a run did: frames in all, frames computed, wall seconds, and the
    seconds per stage (`StageTimes`)."""

    frames: int
    processed: int
    seconds: float
    times: StageTimes


def run_jobs(
    model: RunModel,
    jobs: list[Job],
    options,
    flows,
    output_dir: str,
    prefetch: int = 32,
    keep_flow: bool = True,
) -> RunStats:
    """Every job in turn (after `prepare`), each resumed from the masks it
    has, with progress logged every 10 frames (rate and ETA)."""
    logging.info("Optical flow: %s", model.flow_method)
    times = StageTimes()
    total = sum(len(job.stems) for job in jobs)
    done, processed, start = 0, 0, time.time()
    for job in jobs:
        existing = len(job.existing_masks())
        if existing == len(job.stems):
            logging.info(
                "%s: all %d masks exist, skipped (their run record matches)",
                job.name,
                len(job.stems),
            )
        elif existing:
            logging.info(
                "%s: %d of %d masks exist; computing the rest", job.name, existing, len(job.stems)
            )
        done += existing

        def progress(t, name=job.name, stems=job.stems):
            nonlocal done, processed
            n = len(stems)
            done += 1
            processed += 1
            if (t + 1) % 10 == 0 or t + 1 == n:
                rate = processed / (time.time() - start)
                eta = (total - done) / rate
                logging.info("%s: %d/%d  (%.2f frames/s, ETA %.0f s)", name, t + 1, n, rate, eta)

        segment_job(model, job, options, flows, output_dir, times, prefetch, keep_flow, progress)
    return RunStats(total, processed, time.time() - start, times)


def segment_live(
    model: RunModel, name: str, frames: Iterable[np.ndarray], options, output_dir: str
) -> RunStats:
    """`--online` on frames as they come (a file, a camera, a stream): masks
    `output_dir/%05d.png`, the overlay of the last frames under
    `output_dir/overlays/<name>`, progress every 25 frames. ValueError for a
    source that gives no frames."""
    logging.info("Optical flow: %s", model.flow_method)
    times, start = StageTimes(), time.time()

    def progress(t):
        if (t + 1) % 25 == 0:
            rate = (t + 1) / (time.time() - start)
            logging.info("%s: %d frames (%.2f frames/s)", name, t + 1, rate)

    n = run.segment_stream(
        model.runner,
        frames,
        flow_lib.FlowEstimator(model.flow_method),
        output_dir,
        options,
        times,
        overlay_stem=os.path.join(output_dir, "overlays", name) if options.overlay else None,
        progress=progress,
        shrink=lambda f: readers.shrink_to_height(f, model.height),
    )
    return RunStats(n, n, time.time() - start, times)

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

import numpy as np

from lvo_tf import io_utils
from lvo_tf.data import readers

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
    from lvo_tf.data import flow as flow_lib

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

"""Segmenting a corpus on Apache Beam: one element per video, the model loaded once per worker.

`SegmentVideo` is a DoFn: `setup` loads the model (`jobs.load_model`) once
per worker; `process` segments one video exactly as `segment` does
(`jobs.list_jobs`, `jobs.prepare`, `jobs.segment_job`: the same checks, run
records, flow cache and atomic mask writes), so the masks are `segment`'s.
A bundle the runner retries finds its own run record and masks and resumes
(idempotent); two workers on one video write the same bytes, each file by
atomic rename. A video that fails goes to the `failed` output (video,
error) instead of failing the pipeline. `ExtractVideoFeatures` does the same
for `extract_features` (one cache shard per sequence; the index is written
once, at the end, from the shards). `run_corpus` runs either over a corpus
on the runner the Beam options name and writes the run's summary.
"""

from __future__ import annotations

import dataclasses
import glob
import os
import time

import apache_beam as beam
from absl import logging
from apache_beam.options.pipeline_options import PipelineOptions

from lvo_tf import shipped
from lvo_tf.common import cli, io_utils
from lvo_tf.data import extraction, readers
from lvo_tf.data import features as features_lib
from lvo_tf.inference import jobs
from lvo_tf.inference.segmenter import StageTimes

FAILED = "failed"


@dataclasses.dataclass(frozen=True)
class Video:
    """One element: a DAVIS sequence (`davis_root`, `split`) or a video file /
    frames folder (`path`)."""

    name: str
    path: str | None = None
    davis_root: str | None = None
    split: str | None = None


def corpus(
    input_pattern: str | None = None,
    davis_root: str | None = None,
    split: str | None = "val",
    sequences: list[str] | None = None,
) -> list[Video]:
    """The videos to segment: the files and folders `input_pattern` matches
    (glob; each named by its file or folder name, which must be unique), or
    the sequences of a DAVIS-layout root. ValueError when there are none or
    two share a name."""
    if davis_root:
        return [
            Video(s.name, davis_root=davis_root, split=split)
            for s in readers.davis_sequences(davis_root, split, sequences)
        ]
    paths = sorted(glob.glob(input_pattern))
    if not paths:
        raise ValueError(f"--input_pattern {input_pattern!r} matches no video file or folder")
    videos, seen = [], {}
    for path in paths:
        name = os.path.splitext(os.path.basename(os.path.normpath(path)))[0]
        if name in seen:
            raise ValueError(
                f"--input_pattern: {seen[name]!r} and {path!r} are both named {name!r}; "
                "their masks would share OUTPUT_DIR/<name>"
            )
        seen[name] = path
        videos.append(Video(name, path=path))
    return videos


def job_of(video: Video, output_dir: str) -> jobs.Job:
    """The video's job: its masks in OUTPUT_DIR/<name>/, probabilities and
    overlays in OUTPUT_DIR/{probabilities,overlays}/<name> (as `segment
    --davis_root` lays them out)."""
    if video.davis_root:
        (job,) = jobs.list_jobs(output_dir, video.davis_root, video.split, [video.name])
        return job
    (job,) = jobs.list_jobs(os.path.join(output_dir, video.name), input_path=video.path)
    job.sub = video.name
    return job


@dataclasses.dataclass(frozen=True)
class SegmentSpec:
    """Everything a worker needs (pickled to it): `jobs.load_model`'s
    arguments, `run.SegmentOptions`, and where outputs and flow go."""

    output_dir: str
    options: object
    method: str = "lvo"
    weights: str | None = None
    preset: str = "lite"
    allow_random: bool = False
    height: int | None = None
    flow_method: str | None = None
    preset_given: bool = False
    flow_given: bool = False
    flow_dir: str | None = None
    keep_flow: bool = True
    overwrite: bool = False
    prefetch: int = 32

    def load(self) -> jobs.RunModel:
        return jobs.load_model(
            self.method,
            self.weights,
            self.preset,
            self.allow_random,
            self.height,
            self.flow_method,
            self.preset_given,
            self.flow_given,
        )


class SegmentVideo(beam.DoFn):
    """Video -> {"video", "frames", "computed", "seconds"}; a failure ->
    TaggedOutput(FAILED, {"video", "error"})."""

    def __init__(self, spec: SegmentSpec):
        self.spec = spec

    def setup(self):
        self._times = StageTimes
        self.model = self.spec.load()
        self.settings = jobs.settings(self.spec.options, self.model)
        flow_dir = self.spec.flow_dir or os.path.join(self.spec.output_dir, ".flow")
        self.flows = jobs.flow_cache(flow_dir, self.model.height, self.model.flow_method)

    def process(self, video: Video):
        start = time.time()
        try:
            job = job_of(video, self.spec.output_dir)
            jobs.prepare([job], self.settings, self.spec.output_dir, self.spec.overwrite)
            computed = jobs.segment_job(
                self.model,
                job,
                self.spec.options,
                self.flows,
                self.spec.output_dir,
                self._times(),
                self.spec.prefetch,
                self.spec.keep_flow,
            )
        except Exception as e:  # a dead letter, not a failed pipeline
            yield beam.pvalue.TaggedOutput(FAILED, {"video": video.name, "error": cli.describe(e)})
            return
        yield {
            "video": video.name,
            "frames": len(job.stems),
            "computed": computed,
            "seconds": time.time() - start,
        }


def run_corpus(
    items: list,
    do_fn: beam.DoFn,
    summary_path: str,
    beam_args: list[str],
    settings: dict | None = None,
    what: str = "videos",
) -> dict:
    """Runs `do_fn` over `items` on the Beam runner `beam_args` name (one
    element per video, spread by a reshuffle, failures to the `FAILED`
    output), writes the summary JSON (`summary`) atomically, logs the rate
    and returns the summary (`fail_if_any_failed` then ends a failed run)."""
    start = time.time()

    def write(done, failed):
        io_utils.write_json(summary_path, summary(done, failed, settings))

    with beam.Pipeline(options=PipelineOptions(beam_args)) as pipeline:
        results = (
            pipeline
            | "Items" >> beam.Create(items)
            | "Spread" >> beam.Reshuffle()
            | "Work" >> beam.ParDo(do_fn).with_outputs(FAILED, main="done")
        )
        failed = results[FAILED] | "Failed" >> beam.combiners.ToList()
        (
            results.done
            | "Done" >> beam.combiners.ToList()
            | "Summary" >> beam.Map(write, failed=beam.pvalue.AsSingleton(failed))
        )
    record = io_utils.read_json(summary_path)
    elapsed = time.time() - start
    logging.info(
        "Done: %d %s, %d frames (%d computed) in %.1f s (%.2f frames/s); %d failed -> %s",
        len(record["done"]),
        what,
        record["frames"],
        record["computed"],
        elapsed,
        record["computed"] / elapsed,
        len(record["failed"]),
        summary_path,
    )
    return record


def fail_if_any_failed(record: dict, summary_path: str, what: str = "videos") -> None:
    """Exits with one line (`cli.fail`) naming the first failure, if any."""
    if record["failed"]:
        first = record["failed"][0]
        cli.fail(
            f"{len(record['failed'])} of {record['videos']} {what} failed (first: "
            f"{first['video']}: {first['error']}); all listed in {summary_path}"
        )


def summary(done: list[dict], failed: list[dict], settings: dict | None = None) -> dict:
    """The run's summary: videos done and failed, frames, and the settings."""
    done = sorted(done, key=lambda r: r["video"])
    failed = sorted(failed, key=lambda r: r["video"])
    return {
        "videos": len(done) + len(failed),
        "done": done,
        "failed": failed,
        "frames": sum(r["frames"] for r in done),
        "computed": sum(r["computed"] for r in done),
        "settings": settings,
    }


# === Feature extraction ===


@dataclasses.dataclass(frozen=True)
class FeaturesSpec:
    """What an `ExtractVideoFeatures` worker needs: the dataset, the streams'
    weights (`extraction.StreamsSpec`), flow and the cache to write."""

    data_root: str
    split: str | None
    output_dir: str
    streams: object  # extraction.StreamsSpec
    flow_dir: str
    flow_method: str | None = None
    height: int | None = None
    chunk: int = 8


class ExtractVideoFeatures(beam.DoFn):
    """Sequence name -> {"video", "frames", "seconds"} after writing its
    shard (`FeatureCache.write_shard`, atomic files; a shard already there
    is kept: retries and re-runs resume); a failure -> TaggedOutput(FAILED)."""

    def __init__(self, spec: FeaturesSpec):
        self.spec = spec

    def setup(self):
        model, info = self.spec.streams.load()
        self.run = extraction.runner(model, self.spec.streams.trunk_only)
        self.cache = features_lib.FeatureCache(self.spec.output_dir)
        method = self.spec.flow_method or shipped.flow_method(info)
        self.flows = features_lib.flow_cache(self.spec.flow_dir, self.spec.height, method)

    def process(self, name: str):
        start = time.time()
        try:
            (seq,) = readers.davis_sequences(self.spec.data_root, self.spec.split, [name])
            shard = os.path.join(self.spec.output_dir, name + ".labels.npy")
            computed = 0
            if not os.path.isfile(shard):  # the labels file is written last
                feats, labels = extraction.sequence_features(
                    seq,
                    self.run,
                    self.flows,
                    self.spec.height,
                    self.spec.chunk,
                    self.spec.streams.trunk_only,
                )
                self.cache.write_shard(name, feats, labels)
                computed = len(seq)
        except Exception as e:  # a dead letter, not a failed pipeline
            yield beam.pvalue.TaggedOutput(FAILED, {"video": name, "error": cli.describe(e)})
            return
        yield {
            "video": name,
            "frames": len(seq),
            "computed": computed,
            "seconds": time.time() - start,
        }

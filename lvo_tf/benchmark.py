r"""Benchmarks of lvo_tf on this machine, as ratios measured in one run.

    python -m lvo_tf.benchmark --output_dir=docs/bench     # or: make bench

Writes `<output_dir>/<section>.json` and `<section>.md` per section and logs
the table. Sections: `convgru` (one bidirectional ConvGRU step at the paper's
854x480 size: eager, tf.function, XLA, next to a plain conv2d of the same
FLOPs and the matmul ceiling); `stages` (seconds per frame, FLOPs and
GFLOP/s of appearance, motion, memory and head at 854x480 for the `lite`
and `paper` presets); `pipeline` (clips per second from a feature cache
through tf.data with stop-and-go, next to one memory training step's
consumption); `export` (frames/s of one clip through Keras eager, the
SavedModel, XLA and ONNX Runtime, and the artifacts' sizes); `training` (one
memory training step on a 14x60x107 clip, lite and paper, with and without
XLA: seconds, steps/s and the peak memory the step adds, each in a fresh
process); `segment` (`segment` end to end on an 854x480 video, inputs
prepared inline and on a prefetch thread, next to each stage alone, the sum
of the stages, the CRF and the peak memory: the default model at 240 rows
and at full size, `paper` at full size, each in a fresh process).
"""

import os

from absl import app, flags, logging

from lvo_tf import cli, io_utils, perf

_OUTPUT_DIR = flags.DEFINE_string("output_dir", "docs/bench", "Where JSON and Markdown go.")
_SECTIONS = flags.DEFINE_list(
    "sections",
    ["convgru", "stages", "segment", "pipeline", "export", "training"],
    "Which benchmarks to run.",
)
_REPEATS = flags.DEFINE_integer("repeats", 5, "Timed runs per measurement (median).", lower_bound=1)


def _stages(repeats):
    return {
        "presets": [perf.bench_stages(p, repeats=repeats) for p in ("lite", "paper")],
        "matmul_gflops": perf.matmul_gflops(),
    }


def _stages_markdown(result):
    return (
        perf.stages_markdown(result["presets"])
        + f"\n\nfp32 matmul ceiling in the same run: {result['matmul_gflops']:.0f} GFLOP/s."
    )


def _segment(repeats):
    return {"runs": perf.bench_segment(repeats=repeats)}


def _segment_markdown(result):
    return perf.segment_markdown(result["runs"])


def _pipeline(repeats):
    return {"presets": [perf.bench_pipeline(p, repeats=repeats) for p in ("lite", "paper")]}


def _pipeline_markdown(result):
    return perf.pipeline_markdown(result["presets"])


def _export(repeats):
    return {"presets": [perf.bench_export("lite", repeats=repeats)]}


def _export_markdown(result):
    return perf.export_markdown(result["presets"])


def _training(repeats):
    return {"runs": perf.bench_training(repeats=repeats)}


def _training_markdown(result):
    return perf.training_markdown(result["runs"])


_SECTION_FNS = {
    "convgru": (perf.bench_conv_gru, perf.conv_gru_markdown),
    "stages": (_stages, _stages_markdown),
    "pipeline": (_pipeline, _pipeline_markdown),
    "export": (_export, _export_markdown),
    "training": (_training, _training_markdown),
    "segment": (_segment, _segment_markdown),
}


def main(argv):
    del argv
    unknown = set(_SECTIONS.value) - set(_SECTION_FNS)
    if unknown:
        raise app.UsageError(
            f"--sections: unknown {sorted(unknown)}; choose from {sorted(_SECTION_FNS)}"
        )
    machine = perf.machine_description()
    logging.info("Machine: %s", machine)
    for section in _SECTIONS.value:
        run, render = _SECTION_FNS[section]
        result = perf.to_jsonable({**run(repeats=_REPEATS.value), "machine": machine})
        table = render(result)
        command = f"python -m lvo_tf.benchmark --sections={section} --repeats={_REPEATS.value}"
        io_utils.write_json(os.path.join(_OUTPUT_DIR.value, f"{section}.json"), result)
        io_utils.write_text(
            os.path.join(_OUTPUT_DIR.value, f"{section}.md"),
            f"Command: `{command}`\n\nMachine: {machine}\n\n{table}\n",
        )
        logging.info("%s:\n%s", section, table)


if __name__ == "__main__":
    cli.run(main)

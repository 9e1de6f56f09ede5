r"""Benchmarks of lvo_tf on this machine, as ratios measured in one run.

    python -m lvo_tf.benchmark --output_dir=docs/bench     # make bench also runs
    python -m export.benchmark --output_dir=docs/bench     # the export section

Writes `<output_dir>/<section>.json` and `<section>.md` per section and logs
the table. Sections (one module each in `lvo_tf/benchmarks/`): `convgru` (one
bidirectional ConvGRU step at the paper's 854x480 size: eager, tf.function,
XLA, next to a plain conv2d of the same FLOPs and the matmul ceiling);
`stages` (seconds per frame, FLOPs and GFLOP/s of appearance, motion, memory
and head at 854x480 for the `lite` and `paper` presets, and for the default
and the fast model at their processing sizes, each against its own
convolutions and the matmul ceiling); `pipeline` (clips
per second from a feature cache through tf.data with stop-and-go, next to one
memory training step's consumption); `training` (one memory training step on
a 14x60x107 clip, lite and paper, with and without XLA: seconds, steps/s and
the peak memory the step adds, each in a fresh process); `segment`
(`segment` end to end on an 854x480 video, inputs prepared inline and on a
prefetch thread, next to each stage alone, the sum of the stages, the CRF and
the peak memory: the default model at its processing height and at full
size, `paper` at full size, each in a fresh process); `marginal` (the
default and the fast model side by side on real 854x480 video, the way
`segment` runs each, after start-up; skipped without the DAVIS-2016 train
frames, `$LVO_DAVIS_TRAIN`). The `export` section
(Keras eager, SavedModel, XLA, ONNX Runtime) is `python -m export.benchmark`.
"""

from absl import app, flags, logging

from lvo_tf import shipped
from lvo_tf.benchmarks import (
    convgru,
    marginal,
    pipeline,
    report,
    segment,
    stages,
    timing,
    training,
)
from lvo_tf.common import cli

_OUTPUT_DIR = flags.DEFINE_string("output_dir", "docs/bench", "Where JSON and Markdown go.")
_SECTIONS = flags.DEFINE_list(
    "sections",
    ["convgru", "stages", "segment", "marginal", "pipeline", "training"],
    "Which benchmarks to run (the export one is `python -m export.benchmark`).",
)
_REPEATS = flags.DEFINE_integer("repeats", 5, "Timed runs per measurement (median).", lower_bound=1)


def _stages(repeats):
    runs = [stages.bench_stages(p, repeats=repeats) for p in ("lite", "paper")]
    for name in ("synthetic", "fast"):  # the default and the fast model, side by side
        info = shipped.manifest(name=name)
        height, width = stages.shipped_frame(info)
        config = shipped.config(info, f"shipped model {name!r}")
        runs.append(stages.bench_stages(config, height, width, repeats=repeats, label=name))
    return {"presets": runs, "matmul_gflops": timing.matmul_gflops()}


def _stages_markdown(result):
    return (
        stages.stages_markdown(result["presets"])
        + f"\n\nfp32 matmul ceiling in the same run: {result['matmul_gflops']:.0f} GFLOP/s."
    )


# section -> (run(repeats) -> result, render(result) -> Markdown)
_SECTION_FNS = {
    "convgru": (convgru.bench_conv_gru, convgru.conv_gru_markdown),
    "stages": (_stages, _stages_markdown),
    "pipeline": (
        lambda repeats: {
            "presets": [pipeline.bench_pipeline(p, repeats=repeats) for p in ("lite", "paper")]
        },
        lambda result: pipeline.pipeline_markdown(result["presets"]),
    ),
    "training": (
        lambda repeats: {"runs": training.bench_training(repeats=repeats)},
        lambda result: training.training_markdown(result["runs"]),
    ),
    "segment": (
        lambda repeats: {"runs": segment.bench_segment(repeats=repeats)},
        lambda result: segment.segment_markdown(result["runs"]),
    ),
    "marginal": (marginal.bench_marginal, marginal.marginal_markdown),
}


def main(argv):
    del argv
    if "export" in _SECTIONS.value:
        raise app.UsageError(
            "--sections: the export benchmark is its own binary: python -m export.benchmark"
        )
    unknown = set(_SECTIONS.value) - set(_SECTION_FNS)
    if unknown:
        raise app.UsageError(
            f"--sections: unknown {sorted(unknown)}; choose from {sorted(_SECTION_FNS)}"
        )
    logging.info("Machine: %s", timing.machine_description())
    for section in _SECTIONS.value:
        run, render = _SECTION_FNS[section]
        result = run(repeats=_REPEATS.value)  # report.write_section makes it JSON-able
        command = f"python -m lvo_tf.benchmark --sections={section} --repeats={_REPEATS.value}"
        report.write_section(_OUTPUT_DIR.value, section, result, render(result), command)


if __name__ == "__main__":
    cli.run(main)

"""The `export` benchmark: frames per second of one clip through Keras eager,
the exported SavedModel, XLA-compiled TensorFlow and ONNX Runtime, in one
run, with the artifacts' sizes.

    python -m export.benchmark --output_dir=docs/bench     # part of `make bench`

Writes OUTPUT_DIR/export.{json,md} as `lvo_tf.benchmark` writes its sections.
It lives here, not in `lvo_tf.benchmarks`, so that the library never imports
`export`. The measuring code: `export/speed.py`."""

from absl import flags

from export import speed
from lvo_tf.benchmarks import report
from lvo_tf.common import cli

_OUTPUT_DIR = flags.DEFINE_string("output_dir", "docs/bench", "Where export.{json,md} go.")
_REPEATS = flags.DEFINE_integer("repeats", 3, "Timed runs per measurement (median).", lower_bound=1)
_HEIGHT = flags.DEFINE_integer("height", 480, "Frame height of the clip.", lower_bound=16)
_WIDTH = flags.DEFINE_integer("width", 854, "Frame width of the clip.", lower_bound=16)
_STEPS = flags.DEFINE_integer("steps", 8, "Frames in the clip.", lower_bound=1)


def main(argv):
    del argv
    size = (_HEIGHT.value, _WIDTH.value, _STEPS.value)
    result = {"presets": [speed.bench_export("lite", *size, repeats=_REPEATS.value)]}
    report.write_section(
        _OUTPUT_DIR.value,
        "export",
        result,
        speed.export_markdown(result["presets"]),
        f"python -m export.benchmark --repeats={_REPEATS.value} --height={size[0]} "
        f"--width={size[1]} --steps={size[2]}",
    )


if __name__ == "__main__":
    cli.run(main)

r"""Computes optical flow for videos into the on-disk flow cache.

    python -m lvo_tf.compute_flow --davis_root=DAVIS --split=val --output_dir=out/flow
    python -m lvo_tf.compute_flow --input=video.mp4 --output_dir=out/flow   # or a frames folder

Writes `<output_dir>/<method>/<sequence>/<frame stem>.flo` (Middlebury, flow
t -> t+1; the last frame's field is not written: readers repeat the previous
one), of the frames at their own size: the layout `train_mpnet`,
`extract_features` and `train` read (`--flow_dir`). With `--process_height=H`
it writes `segment`'s cache instead, of frames shrunk to H rows:
`<output_dir>/h<H>/<method>/<sequence>-<its frames' SHA-256>/`, which
`segment --flow_dir=<output_dir> --process_height=H` (or a model processing
H rows) then reuses. Fields already present and valid are reused, so an
interrupted run continues. Video files get frame stems 00000, 00001, ...
"""

import os
import time

from absl import flags, logging

from lvo_tf.common import cli
from lvo_tf.data import flow as flow_lib
from lvo_tf.data import readers
from lvo_tf.inference import jobs

_INPUT = flags.DEFINE_string("input", None, "A video file or a folder of frames.")
_DAVIS_ROOT = flags.DEFINE_string("davis_root", None, "A DAVIS-2016-layout root.")
_SPLIT = flags.DEFINE_string("split", "val", "With --davis_root: image set, or 'all'.")
_SEQUENCES = flags.DEFINE_list("sequences", None, "With --davis_root: only these.")
_OUTPUT_DIR = flags.DEFINE_string("output_dir", None, "Flow cache root.")
_METHOD = flags.DEFINE_enum("method", flow_lib.DEFAULT_METHOD, flow_lib.METHODS, "Flow method.")
_PROCESS_HEIGHT = flags.DEFINE_integer(
    "process_height",
    None,
    "Write segment's flow cache, of frames shrunk to this height (as segment shrinks "
    "them), instead of the training layout at the frames' own size.",
    lower_bound=16,
)
flags.mark_flags_as_required(["output_dir"])
flags.register_multi_flags_validator(
    ["input", "davis_root"],
    lambda f: (f["input"] is None) != (f["davis_root"] is None),
    message="give exactly one of --input and --davis_root",
)


def main(argv):
    del argv
    out, height = _OUTPUT_DIR.value, _PROCESS_HEIGHT.value
    todo = jobs.list_jobs(out, _DAVIS_ROOT.value, _SPLIT.value, _SEQUENCES.value, _INPUT.value)
    if height:
        cache = jobs.flow_cache(out, height, _METHOD.value)
    else:
        cache = flow_lib.FlowCache(out, _METHOD.value)
    total = sum(len(job.stems) for job in todo)
    done, start = 0, time.time()
    for job in todo:

        def load(i, job=job):
            source = job.sources[i]
            frame = readers.read_frame(source) if isinstance(source, str) else source
            return readers.shrink_to_height(frame, height)

        cache.sequence_flow(jobs.flow_key(job) if height else job.name, job.stems, load)
        done += len(job.stems)
        rate = done / (time.time() - start)
        logging.info(
            "%s: %d frames  (%d/%d, %.1f frames/s, ETA %.0f s)",
            job.name,
            len(job.stems),
            done,
            total,
            rate,
            (total - done) / rate,
        )
    elapsed = time.time() - start
    logging.info(
        "Done: %d videos, %d frames in %.1f s (%.3f s per frame) -> %s",
        len(todo),
        total,
        elapsed,
        elapsed / max(total, 1),
        os.path.join(cache.root, _METHOD.value),
    )


if __name__ == "__main__":
    cli.run(main)

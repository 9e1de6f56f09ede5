r"""Computes optical flow for videos into the on-disk flow cache.

    python -m lvo_tf.compute_flow --davis_root=DAVIS --split=val --output_dir=out/flow
    python -m lvo_tf.compute_flow --input=video.mp4 --output_dir=out/flow   # or a frames folder

Writes `<output_dir>/<method>/<sequence>/<frame stem>.flo` (Middlebury, flow
t -> t+1; the last frame's field is not written: readers repeat the previous
one). Fields already present are reused, so an interrupted run continues.
Video files get frame stems 00000, 00001, ...
"""

import os
import time

from absl import app, flags, logging

from lvo_tf.data import flow as flow_lib
from lvo_tf.data import readers

_INPUT = flags.DEFINE_string("input", None, "A video file or a folder of frames.")
_DAVIS_ROOT = flags.DEFINE_string("davis_root", None, "A DAVIS-2016-layout root.")
_SPLIT = flags.DEFINE_string("split", "val", "With --davis_root: image set, or 'all'.")
_SEQUENCES = flags.DEFINE_list("sequences", None, "With --davis_root: only these.")
_OUTPUT_DIR = flags.DEFINE_string("output_dir", None, "Flow cache root.")
_METHOD = flags.DEFINE_enum("method", flow_lib.DEFAULT_METHOD, flow_lib.METHODS, "Flow method.")
flags.mark_flags_as_required(["output_dir"])
flags.register_multi_flags_validator(
    ["input", "davis_root"],
    lambda f: (f["input"] is None) != (f["davis_root"] is None),
    message="give exactly one of --input and --davis_root",
)


def _jobs():
    """(name, stems, frame loader) per video."""
    if _DAVIS_ROOT.value:
        for seq in readers.davis_sequences(_DAVIS_ROOT.value, _SPLIT.value, _SEQUENCES.value):
            yield seq.name, seq.stems, (lambda i, s=seq: readers.read_frame(s.frame_paths[i]))
    elif os.path.isdir(_INPUT.value):
        seq = readers.frames_folder(_INPUT.value)
        yield seq.name, seq.stems, (lambda i: readers.read_frame(seq.frame_paths[i]))
    else:
        frames = readers.read_video(_INPUT.value)
        name = os.path.splitext(os.path.basename(_INPUT.value))[0]
        yield name, [f"{i:05d}" for i in range(len(frames))], (lambda i: frames[i])


def main(argv):
    del argv
    cache = flow_lib.FlowCache(_OUTPUT_DIR.value, _METHOD.value)
    try:
        jobs = list(_jobs())
    except (FileNotFoundError, ValueError) as e:
        raise app.UsageError(str(e)) from None
    total = sum(len(stems) for _, stems, _ in jobs)
    done, start = 0, time.time()
    for name, stems, load in jobs:
        cache.sequence_flow(name, stems, load)
        done += len(stems)
        rate = done / (time.time() - start)
        logging.info(
            "%s: %d frames  (%d/%d, %.1f frames/s, ETA %.0f s)",
            name,
            len(stems),
            done,
            total,
            rate,
            (total - done) / rate,
        )
    elapsed = time.time() - start
    logging.info(
        "Done: %d videos, %d frames in %.1f s (%.3f s per frame) -> %s",
        len(jobs),
        total,
        elapsed,
        elapsed / max(total, 1),
        os.path.join(_OUTPUT_DIR.value, _METHOD.value),
    )


if __name__ == "__main__":
    app.run(main)

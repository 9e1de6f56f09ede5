r"""Generates synthetic training and test videos with exact ground truth.

    python -m lvo_tf.synthesize --output_dir=out/synth --num_videos=200 --seed=0

Writes the DAVIS layout (`JPEGImages/480p/<seq>/%05d.jpg`,
`Annotations/480p/<seq>/%05d.png` 0/255, `ImageSets/480p/{train,val}.txt`),
plus `Flow/<seq>/%05d.flo` (ground-truth flow t -> t+1), `Motion/480p/<seq>/
%05d.png` (independently moving pixels) and `Meta/<seq>.json` (what moves and
stops when). See `lvo_tf/data/synthetic.py` for the world. Deterministic for
a seed; videos already complete are skipped, so an interrupted run continues.
"""

import dataclasses
import multiprocessing
import os
import time

from absl import app, flags, logging

from lvo_tf.common import cli, flag_values, io_utils
from lvo_tf.data import synthetic

_OUTPUT_DIR = flags.DEFINE_string("output_dir", None, "Dataset root to write.")
_NUM_VIDEOS = flags.DEFINE_integer("num_videos", 100, "Videos to generate.", lower_bound=1)
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the whole dataset.")
_FRAMES = flags.DEFINE_integer("frames", 20, "Frames per video.", lower_bound=1)
_HEIGHT = flags.DEFINE_integer("height", 240, "Frame height.", lower_bound=16)
_WIDTH = flags.DEFINE_integer("width", 427, "Frame width.", lower_bound=16)
_MAX_OBJECTS = flags.DEFINE_integer("max_objects", 2, "Foreground objects, at most.", lower_bound=1)
_DEFAULT_WORLD = synthetic.WorldConfig()
_OBJECT_AREA = flags.DEFINE_list(
    "object_area",
    [str(v) for v in _DEFAULT_WORLD.object_area],
    "'lo,hi': each object's area as a fraction of the frame, drawn uniformly.",
)
_OBJECT_SPEED = flags.DEFINE_list(
    "object_speed",
    [str(v) for v in _DEFAULT_WORLD.object_speed],
    "'lo,hi': each object's speed in pixels per frame, drawn uniformly.",
)
_CAMERA_SPEED = flags.DEFINE_float(
    "camera_speed",
    _DEFAULT_WORLD.camera_speed,
    "The camera's largest translation in pixels per frame.",
    lower_bound=0.0,
)
_ARTICULATED = flags.DEFINE_float(
    "articulated_prob",
    _DEFAULT_WORLD.articulated_prob,
    "Probability that an object (or distractor) has 2-4 limbs that swing while it moves.",
    lower_bound=0.0,
    upper_bound=1.0,
)
_VAL_FRACTION = flags.DEFINE_float(
    "val_fraction", 0.1, "Fraction of videos in the val split.", lower_bound=0.0, upper_bound=1.0
)
_WORKERS = flags.DEFINE_integer("workers", os.cpu_count() or 1, "Processes.", lower_bound=1)
flags.mark_flags_as_required(["output_dir"])


def _make(args):
    root, index, seed, config = args
    name = synthetic.sequence_name(index)
    if not synthetic.is_complete(root, name):
        video = synthetic.render_video(synthetic.video_rng(seed, index), config)
        synthetic.write_video(root, name, video)
    return name, config.frames


def _range(name: str, values: list[str], upper: float | None = None) -> tuple[float, float]:
    """A validated `--name=lo,hi` flag: 0 < lo <= hi (<= upper)."""
    try:
        pair = flag_values.parse_pair("--" + name, values)
        flag_values.check_range("--" + name, pair, upper)
    except ValueError as e:
        raise app.UsageError(str(e)) from None
    return pair


def main(argv):
    del argv
    config = synthetic.WorldConfig(
        height=_HEIGHT.value,
        width=_WIDTH.value,
        frames=_FRAMES.value,
        max_objects=_MAX_OBJECTS.value,
        object_area=_range("object_area", _OBJECT_AREA.value, upper=1.0),
        object_speed=_range("object_speed", _OBJECT_SPEED.value),
        camera_speed=_CAMERA_SPEED.value,
        articulated_prob=_ARTICULATED.value,
    )
    root, n = _OUTPUT_DIR.value, _NUM_VIDEOS.value
    jobs = [(root, i, _SEED.value, config) for i in range(n)]
    names, frames = [], {}
    start = time.time()
    with multiprocessing.Pool(_WORKERS.value) as pool:
        for k, (name, count) in enumerate(pool.imap(_make, jobs), 1):
            names.append(name)
            frames[name] = count
            if k % 10 == 0 or k == n:
                rate = k / (time.time() - start)
                logging.info(
                    "%d/%d videos  (%.1f videos/min, ETA %.0f s)", k, n, 60 * rate, (n - k) / rate
                )
    n_val = int(round(n * _VAL_FRACTION.value))
    synthetic.write_image_sets(root, names, frames, names[n - n_val :])
    settings = {**dataclasses.asdict(config), "num_videos": n, "seed": _SEED.value}
    io_utils.write_json(os.path.join(root, "synthesize.json"), {**settings, "val_videos": n_val})
    elapsed = time.time() - start
    logging.info(
        "Done: %d videos (%d val) of %d frames at %dx%d in %.1f s (%.0f videos/min) -> %s",
        n,
        n_val,
        config.frames,
        config.width,
        config.height,
        elapsed,
        60 * n / elapsed,
        root,
    )


if __name__ == "__main__":
    cli.run(main)

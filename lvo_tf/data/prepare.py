"""A DAVIS-layout training set at the model's processing height, with folds.

`prepare(root, output_dir, height)` writes a copy of a DAVIS-2016-layout
dataset (`JPEGImages/480p`, `Annotations/480p`, `ImageSets/480p`) whose frames
and masks are shrunk to `height` rows exactly as `segment` shrinks a video
(`readers.shrink_to_height`; masks by area, then > 0.5), so every training
binary reads what the model sees at inference. It also writes:

- `Motion/480p/<seq>/*.png`: the annotations again, as MP-Net's
  "independently moving" labels (every annotated DAVIS-2016 object moves);
- `ImageSets/480p/all.txt`: every sequence of the split;
  `fold<k>.txt`: the k-th of `num_folds` held-out folds (the sorted
  sequence names, every `num_folds`-th from the k-th), and
  `except_fold<k>.txt`: the others, to train on while fold k is held out;
- `prepare.json`: what was done (source, split, height, folds).

Frames are written as PNG (no second lossy encoding). Each file is written
atomically and an existing one is kept, so an interrupted run resumes.
"""

from __future__ import annotations

import os

import cv2
import numpy as np

from lvo_tf.common import io_utils
from lvo_tf.data import readers

LAYOUT = readers.RESOLUTION


def folds(names: list[str], num_folds: int) -> list[list[str]]:
    """`num_folds` disjoint folds of the sorted `names`: fold k takes every
    `num_folds`-th name from the k-th on."""
    if not 1 <= num_folds <= len(names):
        raise ValueError(f"num_folds must be in [1, {len(names)}] for {len(names)} sequences")
    ordered = sorted(names)
    return [ordered[k::num_folds] for k in range(num_folds)]


def _image_set_lines(sequences) -> list[str]:
    lines = []
    for seq in sequences:
        for stem in seq.stems:
            lines.append(
                f"/JPEGImages/{LAYOUT}/{seq.name}/{stem}.png "
                f"/Annotations/{LAYOUT}/{seq.name}/{stem}.png"
            )
    return lines


def _shrink_mask(mask: np.ndarray, height: int | None) -> np.ndarray:
    return readers.shrink_to_height(mask.astype(np.float32), height) > 0.5


def prepare(
    root: str,
    output_dir: str,
    height: int | None,
    split: str = "train",
    num_folds: int = 5,
    progress=None,
) -> dict:
    """Writes the prepared copy of `root`'s `split` into `output_dir`;
    returns the record written to `prepare.json`. `progress(done, total)`
    is called after each sequence."""
    if os.path.abspath(output_dir) == os.path.abspath(root):
        raise ValueError(f"output_dir {output_dir!r} is the dataset itself; choose another folder")
    sequences = readers.davis_sequences(root, split)
    unannotated = [s.name for s in sequences if len(s.annotation_paths) < len(s)]
    if unannotated:
        raise ValueError(
            f"sequences with frames that have no annotation (training needs every frame's "
            f"mask): {unannotated[:5]}"
        )
    total, done = sum(len(s) for s in sequences), 0
    for seq in sequences:
        for stem, frame_path in zip(seq.stems, seq.frame_paths, strict=True):
            out_frame = os.path.join(output_dir, "JPEGImages", LAYOUT, seq.name, stem + ".png")
            out_masks = [
                os.path.join(output_dir, kind, LAYOUT, seq.name, stem + ".png")
                for kind in ("Annotations", "Motion")
            ]
            if not all(os.path.isfile(p) for p in (out_frame, *out_masks)):
                frame = readers.read_frame(frame_path)
                mask, _ = readers.read_annotation(seq.annotation_paths[stem])
                if mask.shape != frame.shape[:2]:
                    raise ValueError(
                        f"annotation {seq.annotation_paths[stem]!r} is {mask.shape}, its frame "
                        f"{frame_path!r} is {frame.shape[:2]}"
                    )
                small = readers.shrink_to_height(frame, height)
                io_utils.write_image(out_frame, cv2.cvtColor(small, cv2.COLOR_RGB2BGR))
                label = _shrink_mask(mask, height).astype(np.uint8) * 255
                for path in out_masks:
                    io_utils.write_image(path, label)
        done += len(seq)
        if progress:
            progress(done, total, seq.name)
    prepared = {s.name: s for s in readers.davis_sequences(output_dir, None)}
    names = [s.name for s in sequences]
    sets = {"all": names}
    for k, fold in enumerate(folds(names, num_folds)):
        sets[f"fold{k}"] = fold
        sets[f"except_fold{k}"] = [n for n in names if n not in fold]
    for set_name, members in sets.items():
        path = os.path.join(output_dir, "ImageSets", LAYOUT, f"{set_name}.txt")
        lines = _image_set_lines([prepared[n] for n in members])
        io_utils.write_text(path, "\n".join(lines) + "\n")
    record = {
        "source": os.path.abspath(root),
        "split": split,
        "height": height,
        "num_folds": num_folds,
        "sequences": len(names),
        "frames": total,
        "folds": {k: v for k, v in sets.items() if k.startswith("fold")},
    }
    io_utils.write_json(os.path.join(output_dir, "prepare.json"), record)
    return record

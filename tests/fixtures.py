"""Small DAVIS-2016-layout datasets written by the tests, and the real dev set's location."""

from __future__ import annotations

import os
import pathlib

import cv2
import numpy as np


def dev_set_root() -> str | None:
    """The real development sequences, if this machine has them."""
    root = os.environ.get(
        "LVO_DAVIS_DEV",
        str(pathlib.Path(__file__).resolve().parents[2] / "shared" / "data" / "davis2016-dev"),
    )
    return root if os.path.isdir(os.path.join(root, "Annotations")) else None


def blob_mask(rng, h, w) -> np.ndarray:
    yy, xx = np.mgrid[:h, :w]
    cy, cx = rng.uniform(h / 4, 3 * h / 4), rng.uniform(w / 4, 3 * w / 4)
    ry, rx = rng.uniform(3, h / 3), rng.uniform(3, w / 3)
    return ((((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2) <= 1).astype(np.uint8) * 255


def write_davis(root, rng, sequences=("alpha", "beta"), frames=5, size=(24, 32), split="val"):
    """Writes JPEGImages, Annotations and ImageSets for `sequences`; returns
    {sequence: [annotation masks]}."""
    h, w = size
    masks = {}
    lines = []
    for seq in sequences:
        for sub in ("JPEGImages", "Annotations"):
            os.makedirs(os.path.join(root, sub, "480p", seq), exist_ok=True)
        masks[seq] = []
        for i in range(frames):
            stem = f"{i:05d}"
            mask = blob_mask(rng, h, w)
            frame = rng.integers(0, 256, (h, w, 3)).astype(np.uint8)
            cv2.imwrite(os.path.join(root, "JPEGImages", "480p", seq, stem + ".jpg"), frame)
            cv2.imwrite(os.path.join(root, "Annotations", "480p", seq, stem + ".png"), mask)
            masks[seq].append(mask)
            lines.append(f"/JPEGImages/480p/{seq}/{stem}.jpg /Annotations/480p/{seq}/{stem}.png")
    os.makedirs(os.path.join(root, "ImageSets", "480p"), exist_ok=True)
    with open(os.path.join(root, "ImageSets", "480p", f"{split}.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")
    return masks


def write_fbms(root, rng, name="cars1", frames=6, labelled=(0, 3), split="Testset"):
    """One FBMS-59 sequence with sparse ground truth and its Def.dat; returns {stem: mask}."""
    seq = pathlib.Path(root) / split / name
    os.makedirs(seq / "GroundTruth")
    for i in range(frames):
        cv2.imwrite(
            str(seq / f"{name}_{i + 1:02d}.jpg"), rng.integers(0, 255, (16, 20, 3)).astype(np.uint8)
        )
    lines = [
        "Ground truth definition file; do not change!",
        "",
        "Total number of regions:",
        "2",
        "",
        "0",
        "",
        "255",
        "",
        "Confusion penality matrix",
        "0 1",
        "1 0",
        "",
        "Total number of frames in this shot:",
        str(frames),
        "Total number of labeled frames for this shot:",
        str(len(labelled)),
    ]
    masks = {}
    for i in labelled:
        mask = np.zeros((16, 20), np.uint8)
        mask[4:10, 2 + i : 8 + i] = 255
        cv2.imwrite(str(seq / "GroundTruth" / f"{name}_{i + 1:02d}_gt.pgm"), mask)
        masks[f"{name}_{i + 1:02d}"] = mask > 0
        lines += [
            "Frame number:",
            str(i),
            "File name:",
            f"{name}_{i + 1:02d}_gt.pgm",
            "Input file name:",
            f"{name}_{i + 1:02d}.jpg",
        ]
    (seq / "GroundTruth" / f"{name}Def.dat").write_text("\n".join(lines) + "\n")
    return masks


def write_toy_features(root, rng, sequences=6, frames=12, size=(12, 16), channels=33):
    """A learnable feature cache: channel 0 shows every object (appearance),
    the last channel is 1 on the moving object while it moves (motion) and 0
    while it is stopped; the label is the moving object, stopped or not.
    Channels between are noise."""
    from lvo_tf.data.features import FeatureCache

    cache = FeatureCache(str(root))
    h, w = size
    for s in range(sequences):
        feats = rng.normal(0, 0.1, (frames, h, w, channels)).astype(np.float32)
        labels = np.zeros((frames, h, w, 1), np.float32)
        r, c = rng.integers(1, h - 4), rng.integers(1, w - 8)
        dr, dc = rng.integers(1, h - 4), rng.integers(1, w - 4)
        feats[:, dr : dr + 3, dc : dc + 3, 0] += 1.0  # a look-alike that never moves
        stop = int(rng.integers(frames // 3, frames))
        for t in range(frames):
            cc = c + min(t, stop) // 2
            feats[t, r : r + 3, cc : cc + 3, 0] += 1.0
            labels[t, r : r + 3, cc : cc + 3, 0] = 1.0
            if t < stop:
                feats[t, r : r + 3, cc : cc + 3, -1] = 1.0
        cache.write(f"toy{s}", feats, labels)
    return str(root)

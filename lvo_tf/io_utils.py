"""Atomic file writing: outputs appear whole or not at all."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile


@contextlib.contextmanager
def atomic_path(path: str, suffix: str = ""):
    """Yields a temporary path in `path`'s folder; renames it onto `path` when
    the block succeeds and removes it when the block raises."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=suffix)
    os.close(fd)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give a normal file's mode
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_text(path: str, text: str) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        f.write(text)


def write_json(path: str, value) -> None:
    write_text(path, json.dumps(value, indent=2, sort_keys=True, allow_nan=False) + "\n")


def write_image(path: str, image, params=()) -> None:
    """Writes an image with OpenCV (BGR or single-channel), atomically; the
    format follows the file's extension."""
    import cv2

    with atomic_path(path, suffix=os.path.splitext(path)[1]) as tmp:
        if not cv2.imwrite(tmp, image, list(params)):
            raise OSError(f"could not write image {path!r}")


def write_masks(folder: str, stems, probabilities, threshold: float = 0.5) -> None:
    """`folder/<stem>.png` = 255 where probability > threshold, else 0."""
    import numpy as np

    for stem, p in zip(stems, probabilities, strict=True):
        write_image(
            os.path.join(folder, stem + ".png"), (np.asarray(p) > threshold).astype(np.uint8) * 255
        )

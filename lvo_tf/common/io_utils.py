"""Atomic file writing: outputs appear whole or not at all."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile

import cv2
import numpy as np


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


def read_json(path: str):
    with open(path) as f:
        return json.load(f)


def write_image(path: str, image, params=()) -> None:
    """Writes an image with OpenCV (BGR or single-channel), atomically; the
    format follows the file's extension."""

    with atomic_path(path, suffix=os.path.splitext(path)[1]) as tmp:
        if not cv2.imwrite(tmp, image, list(params)):
            raise OSError(f"could not write image {path!r}")


def write_masks(folder: str, stems, probabilities, threshold: float = 0.5) -> None:
    """`folder/<stem>.png` = 255 where probability > threshold, else 0."""

    for stem, p in zip(stems, probabilities, strict=True):
        write_image(
            os.path.join(folder, stem + ".png"), (np.asarray(p) > threshold).astype(np.uint8) * 255
        )


def input_folders(davis_root: str | None = None, input_path: str | None = None) -> list[str]:
    """The folders an output must stay out of: a DAVIS root's frames and
    annotations (its other sub-folders, such as a flow cache, are fine), or a
    frames folder (a video file's folder is fine)."""
    if davis_root:
        return [os.path.join(davis_root, sub) for sub in ("JPEGImages", "Annotations")]
    return [input_path] if input_path and os.path.isdir(input_path) else []


def check_output_dir(folder: str, flag: str = "--output_dir", inputs=(), not_equal_to=()) -> None:
    """Refuses an output folder that is, or is inside, one of `inputs` (whose
    files would be overwritten or read back as input) or is one of
    `not_equal_to`, then makes it and checks that it can be written, before
    any work starts. Raises ValueError naming `flag`."""
    real = os.path.realpath(folder)
    for root in not_equal_to:
        if root and real == os.path.realpath(root):
            raise ValueError(f"{flag} {folder!r} is the input {root!r}; choose another folder")
    for source in inputs:
        if not source:
            continue
        base = os.path.realpath(source)
        if real == base or real.startswith(base.rstrip(os.sep) + os.sep):
            raise ValueError(
                f"{flag} {folder!r} is inside the input {source!r}: its outputs would mix "
                "with (or be read back as) the input; choose a folder outside it"
            )
    try:
        os.makedirs(folder, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".tmp-probe-")
        os.close(fd)
        os.remove(probe)
    except OSError as e:
        raise ValueError(
            f"{flag} {folder!r}: cannot write there ({e.strerror or e}"
            + (f": {e.filename!r}" if e.filename else "")
            + ")"
        ) from None


def check_can_create(folder: str, flag: str) -> None:
    """Without creating anything: refuses (ValueError naming `flag`) a folder
    that cannot be made because a file stands in its path or its nearest
    existing ancestor is not writable. Writing can still fail later (a full
    disk); writes are atomic, so nothing is left half-written then."""
    path = os.path.abspath(folder)
    probe = path
    while not os.path.exists(probe):
        parent = os.path.dirname(probe)
        if parent == probe:
            break
        probe = parent
    if not os.path.isdir(probe):
        raise ValueError(f"{flag} {folder!r}: {probe!r} is a file, not a folder")
    if not os.access(probe, os.W_OK):
        raise ValueError(f"{flag} {folder!r}: cannot write in {probe!r} (permission denied)")

"""Reading videos and masks: DAVIS-2016 layout, folders of frames, video files.

Frames come back as RGB uint8 [H, W, 3]; annotations as bool [H, W]. Bad
input raises an error naming the file or sequence:

- a missing root, split file or sequence: `FileNotFoundError` / `ValueError`;
- a sequence with no frames, frames of different sizes in one sequence, an
  annotation whose size differs from its frame: `ValueError`;
- an unreadable image, or a JPEG cut short (no end-of-image marker):
  `ValueError`.

Multi-object annotations (DAVIS-2017 palette PNGs, several label values) are
binarised, any object = foreground, and the log says so once per sequence.
A single-frame video is valid (its flow is zero; see `lvo_tf.data.flow`).
"""

from __future__ import annotations

import dataclasses
import os

import cv2
import numpy as np
from absl import logging
from PIL import Image, UnidentifiedImageError

RESOLUTION = "480p"
FRAME_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp")


@dataclasses.dataclass
class Sequence:
    """A video as files: ordered frame paths and the annotated frames' masks."""

    name: str
    frame_paths: list[str]
    annotation_paths: dict[str, str] = dataclasses.field(default_factory=dict)

    @property
    def stems(self) -> list[str]:
        return [os.path.splitext(os.path.basename(p))[0] for p in self.frame_paths]

    def __len__(self) -> int:
        return len(self.frame_paths)


def _image_files(folder: str, extensions=FRAME_EXTENSIONS) -> list[str]:
    return sorted(
        os.path.join(folder, n) for n in os.listdir(folder) if n.lower().endswith(extensions)
    )


JPEG_START, JPEG_END, PNG_START = b"\xff\xd8", b"\xff\xd9", b"\x89PNG\r\n\x1a\n"


def check_frame_file(path: str) -> None:
    """Cheap checks of a frame file from its first and last bytes: it exists,
    is not empty and, when its bytes are a JPEG's (whatever its name says),
    ends with the end-of-image marker. Raises ValueError naming the file."""
    try:
        with open(path, "rb") as f:
            head = f.read(8)
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(size - 2, 0))
            tail = f.read()
    except OSError as e:
        raise ValueError(f"cannot read frame {path!r}: {e.strerror or e}") from None
    if size == 0:
        raise ValueError(f"frame {path!r} is an empty file")
    if head.startswith(JPEG_START) and tail != JPEG_END:
        raise ValueError(f"frame {path!r} is a truncated JPEG (no end-of-image marker)")


def frame_size(path: str) -> tuple[int, int]:
    """(H, W) of an image file from its header (without decoding it)."""

    check_frame_file(path)
    try:
        with Image.open(path) as image:
            return image.size[::-1]
    except Image.DecompressionBombError:
        raise ValueError(f"frame {path!r} declares an implausibly large size") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise ValueError(f"frame {path!r} is not an image ({' '.join(str(e).split())})") from None


def check_video(name: str, sources: list, min_size: int = 16) -> None:
    """Every frame (a file, checked from its header, cheaply; or a decoded
    array) is an image of the same size as the video's first frame and at
    least `min_size` pixels each way. Raises ValueError naming the frame; a
    frame that passes but fails to decode is still named when it is read."""
    size = None
    for t, source in enumerate(sources):
        where = source if isinstance(source, str) else f"{name} frame {t}"
        shape = frame_size(source) if isinstance(source, str) else np.shape(source)[:2]
        if size is None:
            size = shape
            if min(size) < min_size:
                raise ValueError(
                    f"frame {where!r} is {size[1]}x{size[0]}; frames need at least "
                    f"{min_size} pixels each way"
                )
        elif shape != size:
            raise ValueError(
                f"frame {where!r} is {shape[1]}x{shape[0]} but the first frame of {name!r} "
                f"is {size[1]}x{size[0]}: a video's frames must have one size"
            )


def read_frame(path: str) -> np.ndarray:
    """RGB uint8 [H, W, 3], decoded by content (a PNG named .jpg reads as the
    PNG it is)."""
    check_frame_file(path)
    image = cv2.imread(path, cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError(f"cannot read frame {path!r} (corrupt or not an image)")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def resize_to_height(frame: np.ndarray, height: int | None) -> np.ndarray:
    """`frame` scaled (area interpolation) to `height` rows, keeping its aspect
    ratio; unchanged when `height` is None or already its height."""
    if height is None or frame.shape[0] == height:
        return frame
    if height < 1:
        raise ValueError(f"height must be positive; got {height}")
    width = max(1, round(frame.shape[1] * height / frame.shape[0]))
    return cv2.resize(frame, (width, height), interpolation=cv2.INTER_AREA)


def shrunk_size(rows: int, cols: int, height: int | None) -> tuple[int, int]:
    """(rows, cols) of a rows x cols frame after `shrink_to_height(frame, height)`."""
    if height is not None and height < 1:
        raise ValueError(f"height must be positive; got {height}")
    if height is None or rows <= height:
        return rows, cols
    return height, max(1, round(cols * height / rows))


def shrink_to_height(frame: np.ndarray, height: int | None) -> np.ndarray:
    """`frame` scaled down to `height` rows (as `resize_to_height`) when it is
    taller; a frame of `height` rows or fewer is returned as it is (never
    enlarged: the network gains nothing from interpolated pixels)."""
    rows, cols = shrunk_size(*frame.shape[:2], height)
    if rows == frame.shape[0]:
        return frame
    return cv2.resize(frame, (cols, rows), interpolation=cv2.INTER_AREA)


def read_annotation(path: str) -> tuple[np.ndarray, int]:
    """(bool mask [H, W], number of distinct object labels found)."""
    image = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    if image is None:
        raise ValueError(f"cannot read annotation {path!r} (missing, corrupt or not an image)")
    if image.ndim == 3:  # colour / palette PNG: one colour per object
        flat = image.reshape(-1, image.shape[-1])
        labels = len({tuple(c) for c in np.unique(flat, axis=0)} - {(0,) * image.shape[-1]})
        return image.max(axis=-1) > 0, labels
    return image > 0, len(np.unique(image[image > 0]))


# === DAVIS ===


@dataclasses.dataclass
class _Listed:
    frames: list[str] = dataclasses.field(default_factory=list)
    annotations: list[str] = dataclasses.field(default_factory=list)


def _parse_image_set(root: str, image_set: str) -> dict[str, _Listed]:
    """{sequence: its listed frame and annotation paths} of an image-set file
    (`/JPEGImages/480p/<seq>/<frame> [/Annotations/480p/<seq>/<mask>]` per
    line), in file order; a malformed line is refused with its number."""
    listed: dict[str, _Listed] = {}
    try:
        with open(image_set, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except UnicodeDecodeError:
        raise ValueError(f"image set {image_set!r} is not a text file") from None
    for number, line in enumerate(lines, 1):
        parts = line.split()
        if not parts:
            continue
        path = parts[0].strip("/").split("/")
        if len(parts) > 2 or len(path) < 2 or not path[-1] or not path[-2]:
            raise ValueError(
                f"image set {image_set!r} line {number}: expected '/JPEGImages/480p/<seq>/"
                f"<frame> [/Annotations/480p/<seq>/<mask>]'; got {line.strip()[:80]!r}"
            )
        entry = listed.setdefault(path[-2], _Listed())
        entry.frames.append(os.path.join(root, parts[0].lstrip("/")))
        if len(parts) == 2:
            entry.annotations.append(os.path.join(root, parts[1].lstrip("/")))
    return listed


def davis_sequences(
    root: str, split: str | None = "val", sequences: list[str] | None = None
) -> list[Sequence]:
    """Sequences of a DAVIS-2016-layout root, in split-file order.

    `split` names `ImageSets/480p/<split>.txt`; `None` or `"all"` takes every
    folder of `JPEGImages/480p`. Annotations are those listed by the split
    file, or every PNG of `Annotations/480p/<seq>` without one.
    """
    images = os.path.join(root, "JPEGImages", RESOLUTION)
    annotations = os.path.join(root, "Annotations", RESOLUTION)
    if not os.path.isdir(images):
        raise FileNotFoundError(f"DAVIS root {root!r}: no folder {images!r}")
    listed: dict[str, list[str]] | None = None
    if split not in (None, "all"):
        image_set = os.path.join(root, "ImageSets", RESOLUTION, f"{split}.txt")
        if not os.path.isfile(image_set):
            raise FileNotFoundError(f"split {split!r}: no image set {image_set!r}")
        listed = _parse_image_set(root, image_set)
    names = (
        list(listed)
        if listed is not None
        else sorted(n for n in os.listdir(images) if os.path.isdir(os.path.join(images, n)))
    )
    if sequences:
        unknown = sorted(set(sequences) - set(names))
        if unknown:
            raise ValueError(f"sequences not in {root!r} (split {split!r}): {unknown}")
        names = [n for n in names if n in set(sequences)]
    out = []
    for name in names:
        folder = os.path.join(images, name)
        if not os.path.isdir(folder):
            raise FileNotFoundError(f"sequence {name!r}: no folder {folder!r}")
        frames = _image_files(folder)
        if not frames:
            raise ValueError(f"sequence {name!r} has no frames in {folder!r}")
        if listed is not None:
            absent = [p for p in listed[name].frames if not os.path.isfile(p)]
            if absent:
                raise FileNotFoundError(
                    f"split {split!r} lists {len(absent)} frame(s) of {name!r} that do not "
                    f"exist, first {absent[0]!r}"
                )
        if listed is not None and listed[name].annotations:
            masks = listed[name].annotations
        else:
            ann = os.path.join(annotations, name)
            masks = _image_files(ann, (".png",)) if os.path.isdir(ann) else []
        out.append(
            Sequence(name, frames, {os.path.splitext(os.path.basename(p))[0]: p for p in masks})
        )
    if not out:
        raise ValueError(f"no sequences found in {root!r} (split {split!r})")
    return out


# === FBMS-59 ===

FBMS_SPLITS = ("Trainingset", "Testset")


def parse_fbms_definition(path: str) -> list[tuple[int, str, str]]:
    """(frame number, ground-truth file name, input image name) for every
    labelled frame listed in an FBMS `GroundTruth/<seq>Def.dat` file."""
    with open(path) as f:
        lines = [line.strip() for line in f]
    out = []
    i = 0
    try:
        while i < len(lines):
            if lines[i].startswith("Frame number:"):
                number = int(lines[i + 1])
                if not lines[i + 2].startswith("File name:"):
                    raise ValueError(f"line {i + 3}: expected 'File name:'")
                if not lines[i + 4].startswith("Input file name:"):
                    raise ValueError(f"line {i + 5}: expected 'Input file name:'")
                out.append((number, lines[i + 3], lines[i + 5]))
                i += 6
            else:
                i += 1
    except (IndexError, ValueError) as e:
        raise ValueError(f"malformed FBMS definition file {path!r}: {e}") from None
    if not out:
        raise ValueError(f"FBMS definition file {path!r} lists no labelled frames")
    return out


def fbms_sequences(root: str, split: str | None = None) -> list[Sequence]:
    """FBMS-59: `root/{Trainingset,Testset}/<seq>/*.jpg` with sparse ground
    truth in `<seq>/GroundTruth/` (PGM or PPM; any nonzero label = foreground),
    mapped to frames through the `*Def.dat` file's input file names.
    `split`: `"Trainingset"`, `"Testset"` or None for both."""
    splits = FBMS_SPLITS if split is None else (split,)
    if split is not None and split not in FBMS_SPLITS:
        raise ValueError(f"FBMS split must be one of {FBMS_SPLITS}; got {split!r}")
    out = []
    for part in splits:
        folder = os.path.join(root, part)
        if not os.path.isdir(folder):
            raise FileNotFoundError(f"FBMS root {root!r}: no folder {folder!r}")
        for name in sorted(os.listdir(folder)):
            seq_dir = os.path.join(folder, name)
            if not os.path.isdir(seq_dir):
                continue
            frames = _image_files(seq_dir, (".jpg", ".jpeg", ".png", ".ppm"))
            if not frames:
                raise ValueError(f"FBMS sequence {name!r} has no frames in {seq_dir!r}")
            gt_dir = os.path.join(seq_dir, "GroundTruth")
            definitions = (
                [n for n in os.listdir(gt_dir) if n.endswith(".dat")]
                if os.path.isdir(gt_dir)
                else []
            )
            if len(definitions) != 1:
                raise ValueError(
                    f"FBMS sequence {name!r}: expected one *Def.dat in {gt_dir!r}, "
                    f"found {len(definitions)}"
                )
            by_name = {os.path.basename(p): p for p in frames}
            annotations = {}
            for _, gt_name, input_name in parse_fbms_definition(
                os.path.join(gt_dir, definitions[0])
            ):
                input_name = os.path.basename(input_name)
                if input_name not in by_name:
                    raise ValueError(
                        f"FBMS sequence {name!r}: ground truth {gt_name!r} refers to "
                        f"frame {input_name!r}, which is not in {seq_dir!r}"
                    )
                annotations[os.path.splitext(input_name)[0]] = os.path.join(gt_dir, gt_name)
            out.append(Sequence(name, frames, annotations))
    return out


def folder_sequences(root: str) -> list[Sequence]:
    """A plain folder of sequences: `root/<seq>/*.jpg` (no masks)."""
    if not os.path.isdir(root):
        raise FileNotFoundError(f"no folder {root!r}")
    names = sorted(n for n in os.listdir(root) if os.path.isdir(os.path.join(root, n)))
    out = [frames_folder(os.path.join(root, n)) for n in names]
    if not out:
        raise ValueError(f"no sequence folders in {root!r}")
    return out


def frames_folder(folder: str) -> Sequence:
    """A folder of frame images, in file-name order."""
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"no folder {folder!r}")
    frames = _image_files(folder)
    if not frames:
        raise ValueError(f"folder {folder!r} has no frames ({', '.join(FRAME_EXTENSIONS)})")
    return Sequence(os.path.basename(os.path.normpath(folder)), frames)


# === Loading pixels ===


def load_frames(sequence: Sequence) -> np.ndarray:
    """All frames of a sequence, [T, H, W, 3] uint8; they must share one size."""
    frames = [read_frame(p) for p in sequence.frame_paths]
    first = frames[0].shape
    for path, frame in zip(sequence.frame_paths, frames, strict=True):
        if frame.shape != first:
            raise ValueError(
                f"sequence {sequence.name!r}: frame {path!r} is {frame.shape[1]}x"
                f"{frame.shape[0]} but the first frame is {first[1]}x{first[0]}"
            )
    return np.stack(frames)


def load_annotations(sequence: Sequence, frame_shape: tuple[int, int]) -> dict[str, np.ndarray]:
    """{frame stem: bool mask} for the annotated frames, checked against the
    frame size and binarised (logged once if several objects are present)."""
    masks = {}
    multi = False
    for stem, path in sequence.annotation_paths.items():
        mask, labels = read_annotation(path)
        if mask.shape != tuple(frame_shape):
            raise ValueError(
                f"sequence {sequence.name!r}: annotation {path!r} is {mask.shape[1]}x"
                f"{mask.shape[0]} but its frames are {frame_shape[1]}x{frame_shape[0]}"
            )
        multi = multi or labels > 1
        masks[stem] = mask
    if multi:
        logging.info(
            "sequence %s: multi-object annotations binarised (any object = foreground)",
            sequence.name,
        )
    return masks


def iterate_video(source, max_frames: int | None = None):
    """Frames of a video file, a camera (an int device index) or a stream URL
    (anything OpenCV's VideoCapture opens), one at a time as RGB uint8."""
    capture = cv2.VideoCapture(source)
    if not capture.isOpened():
        raise ValueError(f"cannot open video source {source!r}")
    count = 0
    try:
        while max_frames is None or count < max_frames:
            ok, frame = capture.read()
            if not ok:
                break
            count += 1
            yield cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
    finally:
        capture.release()


def read_video(path: str, max_frames: int | None = None) -> np.ndarray:
    """Frames of a video file (anything OpenCV opens), [T, H, W, 3] RGB uint8."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no video file {path!r}")
    capture = cv2.VideoCapture(path)
    if not capture.isOpened():
        raise ValueError(f"cannot open video {path!r} (unknown format or corrupt)")
    frames = []
    try:
        while max_frames is None or len(frames) < max_frames:
            ok, frame = capture.read()
            if not ok:
                break
            frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
    finally:
        capture.release()
    if not frames:
        raise ValueError(f"video {path!r} has no readable frames")
    return np.stack(frames)

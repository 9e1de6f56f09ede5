"""Segmenting a video end to end: probabilities, CRF, masks and pictures on disk."""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable, Iterator

import cv2
import numpy as np

from lvo_tf import io_utils
from lvo_tf.inference import baseline, crf
from lvo_tf.inference.segmenter import LVORunner, StageTimes, segment_windows

METHODS = ("lvo", "baseline")
THUMB_WIDTH = 320
GIF_MAX_FRAMES = 60


@dataclasses.dataclass(frozen=True)
class SegmentOptions:
    method: str = "lvo"
    window: int = 28
    overlap: int = 8
    online: bool = False
    online_chunk: int = 1
    crf: crf.CRFParams | None = None
    save_probabilities: bool = False
    overlay: bool = True


def probabilities(
    runner: LVORunner | None,
    length: int,
    frame: Callable[[int], np.ndarray],
    flow: Callable[[int], np.ndarray],
    options: SegmentOptions,
    times: StageTimes,
) -> Iterator[tuple[int, np.ndarray]]:
    """(t, foreground probability [H, W] float32) for every frame, in order."""
    if options.method == "baseline":
        for t in range(length):
            f = flow(t)
            t0 = time.perf_counter()
            p = baseline.segment_frame(f).astype(np.float32)
            times.add("streams", time.perf_counter() - t0)
            yield t, p
        return
    if options.online:
        state = None
        for s in range(0, length, options.online_chunk):
            ts = list(range(s, min(s + options.online_chunk, length)))
            flows = np.stack([flow(t) for t in ts])
            images = np.stack([frame(t) for t in ts])
            t1 = time.perf_counter()
            feats = runner.features(images, flows)
            t2 = time.perf_counter()
            coarse, state = runner.online(feats, state)
            times.add("streams", t2 - t1)
            times.add("memory", time.perf_counter() - t2)
            for t, c in zip(ts, coarse, strict=True):
                yield t, _upsample(runner, c, frame(t), times)
        return
    for t, c in segment_windows(
        runner, length, frame, flow, options.window, options.overlap, times
    ):
        yield t, _upsample(runner, c, frame(t), times)


def _upsample(runner, coarse, frame, times):
    t0 = time.perf_counter()
    p = runner.upsample(coarse[None], frame[None])[0]
    times.add("upsample", time.perf_counter() - t0)
    return p


def overlay(frame: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """RGB frame with the mask tinted red and outlined."""
    out = frame.astype(np.float32)
    out[mask] = 0.5 * out[mask] + 0.5 * np.array([255, 40, 40])
    out = out.astype(np.uint8)
    contours, _ = cv2.findContours(
        mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE
    )
    cv2.drawContours(out, contours, -1, (255, 255, 0), 2)
    return out


def _thumb(image):
    h, w = image.shape[:2]
    return cv2.resize(image, (THUMB_WIDTH, max(1, round(h * THUMB_WIDTH / w))))


def contact_sheet(thumbs: list[np.ndarray], columns: int = 4, count: int = 8) -> np.ndarray:
    picks = np.unique(np.linspace(0, len(thumbs) - 1, min(count, len(thumbs))).round().astype(int))
    tiles = [thumbs[i] for i in picks]
    while len(tiles) % columns:
        tiles.append(np.zeros_like(tiles[0]))
    rows = [np.concatenate(tiles[i : i + columns], 1) for i in range(0, len(tiles), columns)]
    return np.concatenate(rows, 0)


def write_png(path: str, image: np.ndarray) -> None:
    with io_utils.atomic_path(path, suffix=".png") as tmp:
        if not cv2.imwrite(tmp, image):
            raise OSError(f"could not write {path!r}")


def write_gif(path: str, frames_rgb: list[np.ndarray], fps: float = 8.0) -> None:
    from PIL import Image

    step = max(1, -(-len(frames_rgb) // GIF_MAX_FRAMES))  # at most GIF_MAX_FRAMES frames
    images = [
        Image.fromarray(f).quantize(colors=128, method=Image.Quantize.FASTOCTREE)
        for f in frames_rgb[::step]
    ]
    fps = fps / step
    with io_utils.atomic_path(path, suffix=".gif") as tmp:
        images[0].save(
            tmp, save_all=True, append_images=images[1:], duration=int(1000 / fps), loop=0
        )


def segment_video(
    runner: LVORunner | None,
    stems: list[str],
    frame: Callable[[int], np.ndarray],
    flow: Callable[[int], np.ndarray],
    mask_dir: str,
    options: SegmentOptions,
    times: StageTimes,
    probability_dir: str | None = None,
    overlay_stem: str | None = None,
    progress: Callable[[int], None] | None = None,
) -> None:
    """Writes `<mask_dir>/<stem>.png` (0/255) for every frame, atomically;
    optionally probability PNGs, an overlay GIF and a contact sheet."""
    thumbs = []
    for t, p in probabilities(runner, len(stems), frame, flow, options, times):
        image = frame(t)
        t0 = time.perf_counter()
        mask = crf.refine(image, p, options.crf) if options.crf else p > 0.5
        t1 = time.perf_counter()
        write_png(os.path.join(mask_dir, stems[t] + ".png"), mask.astype(np.uint8) * 255)
        if probability_dir:
            write_png(
                os.path.join(probability_dir, stems[t] + ".png"),
                np.round(np.clip(p, 0, 1) * 255).astype(np.uint8),
            )
        if overlay_stem:
            thumbs.append(_thumb(overlay(image, mask)))
        if options.crf:
            times.add("crf", t1 - t0)
        times.add("write", time.perf_counter() - t1)
        if progress:
            progress(t)
    if overlay_stem and thumbs:
        t0 = time.perf_counter()
        write_gif(overlay_stem + ".gif", thumbs)
        write_png(overlay_stem + ".png", contact_sheet(thumbs)[..., ::-1])
        times.add("write", time.perf_counter() - t0)

"""Segmenting a video end to end: probabilities, CRF, masks and pictures on disk."""

from __future__ import annotations

import collections
import dataclasses
import os
import time
from collections.abc import Callable, Iterable, Iterator

import cv2
import numpy as np
from PIL import Image

from lvo_tf.common import io_utils
from lvo_tf.inference import baseline, crf
from lvo_tf.inference.prefetch import InlineInputs, Prefetcher
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


@dataclasses.dataclass(frozen=True)
class FrameInput:
    """What the network needs of frame t, and the frame at the video's size."""

    original: np.ndarray  # [H, W, 3] uint8, the video's own size
    frame: np.ndarray  # [h, w, 3] uint8, what the network sees
    flow: np.ndarray  # [h, w, 2] float32, t -> t+1 at the network's size


def input_preparer(
    load: Callable[[int], np.ndarray],
    shrink: Callable[[np.ndarray], np.ndarray],
    flow_field: Callable[[int, Callable[[int], np.ndarray]], np.ndarray],
    times: StageTimes,
) -> Callable[[int], FrameInput]:
    """`prepare(t)` -> FrameInput for a `Prefetcher`: `load(i)` reads frame i
    at its own size, `shrink` resizes it for the network, `flow_field(t,
    frame)` gives the flow of t from the shrunk frames `frame(i)`. Frames
    read for a flow field are kept for the next call (calls come in order),
    so each frame is read once. Times "read" and "flow"."""
    loaded: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def pair(i):
        if i not in loaded:
            t0 = time.perf_counter()
            full = load(i)
            loaded[i] = (full, shrink(full))
            times.add("read", time.perf_counter() - t0)
        return loaded[i]

    def prepare(t):
        for old in [i for i in loaded if i < t]:
            del loaded[old]
        original, frame = pair(t)
        t0 = time.perf_counter()
        read_before = times.read
        flow = flow_field(t, lambda i: pair(i)[1])
        times.add("flow", time.perf_counter() - t0 - (times.read - read_before))
        return FrameInput(original, frame, flow)

    return prepare


def probabilities(
    runner: LVORunner | None,
    length: int,
    frame: Callable[[int], np.ndarray],
    flow: Callable[[int], np.ndarray],
    options: SegmentOptions,
    times: StageTimes,
    done: Callable[[int], bool] | None = None,
) -> Iterator[tuple[int, np.ndarray]]:
    """(t, foreground probability [H, W] float32) for every frame not `done`,
    in order. Online mode recomputes done frames (its memory must pass
    through them) but does not yield them."""
    done = done or (lambda t: False)
    if options.method == "baseline":
        for t in range(length):
            if done(t):
                continue
            f = flow(t)
            t0 = time.perf_counter()
            p = baseline.probability(f)
            times.add("streams", time.perf_counter() - t0)
            yield t, p
        return
    if options.online:
        state = None
        for s in range(0, length, options.online_chunk):
            ts = list(range(s, min(s + options.online_chunk, length)))
            flows = np.stack([flow(t) for t in ts])
            images = np.stack([frame(t) for t in ts])
            probs, state = runner.online_probabilities(images, flows, state, times)
            for t, p in zip(ts, probs, strict=True):
                if not done(t):
                    yield t, p
        return
    for t, c in segment_windows(
        runner, length, frame, flow, options.window, options.overlap, times, done
    ):
        yield t, _upsample(runner, c, frame(t), times)


def _upsample(runner, coarse, frame, times):
    t0 = time.perf_counter()
    p = runner.upsample(coarse[None], frame[None])[0]
    times.add("upsample", time.perf_counter() - t0)
    return p


def resize_probability(p: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A probability map [h, w] resized bilinearly to `size` (H, W)."""
    if p.shape == tuple(size):
        return p
    return cv2.resize(p, (size[1], size[0]), interpolation=cv2.INTER_LINEAR)


def to_mask(
    p: np.ndarray, frame: np.ndarray, image: np.ndarray, params: crf.CRFParams | None
) -> np.ndarray:
    """The mask at the size of `image` (the video's frame) from the probability
    `p` at the size of `frame` (what the network saw): `p` upsampled and
    thresholded at 0.5, or refined by the dense CRF. The CRF runs on `frame`,
    its kernel widths scaled to that size, and its marginal is upsampled: as
    accurate as at the video's size on the dev sequences and 3.4x cheaper
    (README, "Segment videos")."""
    size = image.shape[:2]
    if params is None:
        return resize_probability(p, size) > 0.5
    if p.shape != frame.shape[:2]:
        raise ValueError(f"probability {p.shape} and frame {frame.shape[:2]} differ in size")
    if frame.shape[:2] == size:
        return crf.refine(image, p, params)
    q = crf.marginal(frame, p, params.scaled(frame.shape[0] / size[0]))
    return resize_probability(q, size) > 0.5


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


def write_gif(path: str, frames_rgb: list[np.ndarray], fps: float = 8.0) -> None:
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
    original: Callable[[int], np.ndarray] | None = None,
) -> None:
    """Writes `<mask_dir>/<stem>.png` (0/255) for every frame, atomically,
    skipping frames whose mask exists; optionally probability PNGs, an
    overlay GIF and a contact sheet (of all frames, old and new).

    `frame(t)` is what the network sees. When it is a resized copy,
    `original(t)` gives the frame at its own size: probabilities are
    upsampled to it (bilinear) before thresholding or the CRF, so masks
    always have the video's size."""
    original = original or frame

    def mask_path(t):
        return os.path.join(mask_dir, stems[t] + ".png")

    def done(t):
        return os.path.isfile(mask_path(t))

    existing = [t for t in range(len(stems)) if done(t)]
    thumbs = {}
    if overlay_stem:
        for t in existing:
            old = cv2.imread(mask_path(t), cv2.IMREAD_GRAYSCALE)
            if old is not None and old.shape == original(t).shape[:2]:
                thumbs[t] = _thumb(overlay(original(t), old > 0))
    for t, p in probabilities(runner, len(stems), frame, flow, options, times, done):
        image = original(t)
        t0 = time.perf_counter()
        mask = to_mask(p, frame(t), image, options.crf)
        t1 = time.perf_counter()
        io_utils.write_image(mask_path(t), mask.astype(np.uint8) * 255)
        if probability_dir:
            p = resize_probability(p, image.shape[:2])
            io_utils.write_image(
                os.path.join(probability_dir, stems[t] + ".png"),
                np.round(np.clip(p, 0, 1) * 255).astype(np.uint8),
            )
        if overlay_stem:
            thumbs[t] = _thumb(overlay(image, mask))
        if options.crf:
            times.add("crf", t1 - t0)
        times.add("write", time.perf_counter() - t1)
        if progress:
            progress(t)
    if overlay_stem and thumbs:
        t0 = time.perf_counter()
        ordered = [thumbs[t] for t in sorted(thumbs)]
        write_gif(overlay_stem + ".gif", ordered)
        io_utils.write_image(overlay_stem + ".png", contact_sheet(ordered)[..., ::-1])
        times.add("write", time.perf_counter() - t0)


def segment_sequence(
    runner: LVORunner | None,
    stems: list[str],
    load: Callable[[int], np.ndarray],
    flow_field: Callable[[int, Callable[[int], np.ndarray]], np.ndarray],
    mask_dir: str,
    options: SegmentOptions,
    times: StageTimes,
    shrink: Callable[[np.ndarray], np.ndarray] = lambda f: f,
    prefetch: int = 32,
    **outputs,
) -> None:
    """`segment_video` on a stored sequence: `load(i)` reads frame i,
    `shrink` resizes it for the network, `flow_field(i, frame)` gives the
    flow of i from the shrunk frames. With `prefetch` > 0 the inputs of the
    next `prefetch` frames are prepared on a thread while the network runs
    (a window looks back at most `window` frames, so they are kept that
    long); with 0 on this thread. `outputs`: `segment_video`'s optional
    arguments (probability_dir, overlay_stem, progress)."""
    prepare = input_preparer(load, shrink, flow_field, times)
    if prefetch:
        inputs = Prefetcher(prepare, len(stems), ahead=prefetch, keep=options.window + prefetch + 1)
    else:
        inputs = InlineInputs(prepare, len(stems), keep=options.window + 1)
    with inputs:
        segment_video(
            runner,
            stems,
            lambda i: inputs.get(i).frame,
            lambda i: inputs.get(i).flow,
            mask_dir,
            options,
            times,
            original=lambda i: inputs.get(i).original,
            **outputs,
        )
    times.add("wait", inputs.wait_seconds)


def segment_stream(
    runner: LVORunner | None,
    frames: Iterable[np.ndarray],
    estimator: Callable[[np.ndarray, np.ndarray], np.ndarray],
    mask_dir: str,
    options: SegmentOptions,
    times: StageTimes,
    overlay_stem: str | None = None,
    progress: Callable[[int], None] | None = None,
    shrink: Callable[[np.ndarray], np.ndarray] | None = None,
) -> int:
    """Segments frames as they arrive (a camera, a stream, a long file), with
    the forward memory carried (`runner.online`), one frame of latency for the
    flow and memory bounded by `options.online_chunk`. Writes
    `<mask_dir>/%05d.png`; the overlay GIF shows the last GIF_MAX_FRAMES
    frames. `shrink(frame)` gives the frame the network sees (masks keep the
    video's size). Returns the number of frames."""
    shrink = shrink or (lambda f: f)
    thumbs: collections.deque = collections.deque(maxlen=GIF_MAX_FRAMES)
    state = None

    def flush(pending):
        nonlocal state
        images = np.stack([shrink(f) for _, f, _ in pending])
        flows = np.stack([w for _, _, w in pending])
        t0 = time.perf_counter()
        if runner is None:
            probs = [baseline.probability(w) for w in flows]
            times.add("streams", time.perf_counter() - t0)
        else:
            probs, state = runner.online_probabilities(images, flows, state, times)
        for (t, image, _), p, small in zip(pending, probs, images, strict=True):
            t0 = time.perf_counter()
            mask = to_mask(p, small, image, options.crf)
            t1 = time.perf_counter()
            io_utils.write_image(
                os.path.join(mask_dir, f"{t:05d}.png"), mask.astype(np.uint8) * 255
            )
            if overlay_stem:
                thumbs.append(_thumb(overlay(image, mask)))
            if options.crf:
                times.add("crf", t1 - t0)
            times.add("write", time.perf_counter() - t1)
            if progress:
                progress(t)

    iterator = iter(frames)
    t0 = time.perf_counter()
    previous = next(iterator, None)
    times.add("read", time.perf_counter() - t0)
    if previous is None:
        raise ValueError("the video source gave no frames")
    t, pending = 0, []
    last_flow = np.zeros(shrink(previous).shape[:2] + (2,), np.float32)
    while True:
        t0 = time.perf_counter()
        current = next(iterator, None)
        times.add("read", time.perf_counter() - t0)
        if current is None:
            break
        t0 = time.perf_counter()
        last_flow = estimator(shrink(previous), shrink(current))
        times.add("flow", time.perf_counter() - t0)
        pending.append((t, previous, last_flow))
        t, previous = t + 1, current
        if len(pending) == options.online_chunk:
            flush(pending)
            pending = []
    pending.append((t, previous, last_flow))  # the last frame repeats the previous flow
    flush(pending)
    if overlay_stem and thumbs:
        write_gif(overlay_stem + ".gif", list(thumbs))
        io_utils.write_image(overlay_stem + ".png", contact_sheet(list(thumbs))[..., ::-1])
    return t + 1

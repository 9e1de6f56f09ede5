"""Textures of the synthetic world: random crops of scikit-image's sample
photographs (70%) or multi-octave procedural noise (`texture`)."""

from __future__ import annotations

import functools

import cv2
import numpy as np

PHOTOS = (
    "astronaut",
    "coffee",
    "chelsea",
    "rocket",
    "camera",
    "cat",
    "immunohistochemistry",
    "hubble_deep_field",
    "retina",
    "brick",
    "grass",
    "gravel",
)


@functools.cache
def _photo(name: str) -> np.ndarray:
    # lazily: scikit-image's sample photos load only when a texture uses them
    import skimage.data

    image = getattr(skimage.data, name)()
    if image.ndim == 2:
        image = np.stack([image] * 3, -1)
    return np.ascontiguousarray(image[..., :3]).astype(np.uint8)


def _procedural(rng, h, w) -> np.ndarray:
    """Multi-octave coloured value noise, sometimes with stripes."""
    acc = np.zeros((h, w), np.float32)
    for octave in range(1, 6):
        cells = 2**octave
        grid = rng.random((cells + 1, cells + 1)).astype(np.float32)
        acc += cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC) / octave
    acc = (acc - acc.min()) / (np.ptp(acc) + 1e-6)
    if rng.random() < 0.3:
        yy, xx = np.mgrid[:h, :w]
        angle, period = rng.uniform(0, np.pi), rng.uniform(6, 30)
        acc = 0.6 * acc + 0.4 * (np.sin((xx * np.cos(angle) + yy * np.sin(angle)) / period) > 0)
    palette = rng.integers(0, 256, (2, 3)).astype(np.float32)
    image = palette[0] + acc[..., None] * (palette[1] - palette[0])
    return np.clip(image, 0, 255).astype(np.uint8)


def texture(rng, h: int, w: int) -> np.ndarray:
    """An [h, w, 3] texture: a random crop of a photograph (70%) or procedural."""
    if rng.random() < 0.3:
        return _procedural(rng, h, w)
    photo = _photo(PHOTOS[rng.integers(len(PHOTOS))])
    ph, pw = photo.shape[:2]
    scale = rng.uniform(0.4, 1.0)
    ch, cw = max(8, int(ph * scale)), max(8, int(pw * scale))
    y, x = rng.integers(0, ph - ch + 1), rng.integers(0, pw - cw + 1)
    crop = cv2.resize(photo[y : y + ch, x : x + cw], (w, h), interpolation=cv2.INTER_LINEAR)
    if rng.random() < 0.5:
        crop = crop[:, ::-1]
    gain = rng.uniform(0.7, 1.3, 3)
    return np.clip(crop * gain, 0, 255).astype(np.uint8)

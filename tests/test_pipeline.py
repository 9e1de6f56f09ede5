"""The clip pipeline: shapes, determinism, crop/flip, and exact stop-and-go clips."""

import numpy as np
import pytest

from lvo_tf.data.features import FeatureCache
from lvo_tf.data.pipeline import (
    STATIC_START,
    STOP,
    ClipConfig,
    FeatureSource,
    FrameSource,
    clip_dataset,
)

H, W, T = 12, 16, 10


def coded_videos(n=3):
    """Channel 0 = frame index, 1 = video id, 2 = x; flow (u, v) = (1 + t, 2); mask = t / 10."""
    videos = {}
    for vid in range(n):
        frames = np.zeros((T, H, W, 3), np.uint8)
        frames[..., 0] = np.arange(T)[:, None, None]
        frames[..., 1] = vid
        frames[..., 2] = np.arange(W)[None, None, :]
        flow = np.zeros((T, H, W, 2), np.float32)
        flow[..., 0] = 1 + np.arange(T)[:, None, None]
        flow[..., 1] = 2
        masks = np.broadcast_to(np.arange(T)[:, None, None, None] / 10, (T, H, W, 1)).astype(
            np.float32
        )
        videos[f"v{vid}"] = (frames, flow, masks)
    return videos


def take(ds, n):
    return [(x, y) for x, y in ds.take(n)]


def test_shapes_crop_and_consecutive_frames():
    config = ClipConfig(clip_length=4, crop=(8, 10), stop_and_go=0.0, seed=1)
    for x, y in take(clip_dataset(FrameSource(coded_videos()), config, batch_size=2), 5):
        assert x["frames"].shape == (2, 4, 8, 10, 3)
        assert x["flow"].shape == (2, 4, 8, 10, 2) and y.shape == (2, 4, 8, 10, 1)
        frames = x["frames"].numpy()
        for clip in frames:
            t = clip[:, 0, 0, 0].astype(int)
            np.testing.assert_array_equal(np.diff(t), 1)  # consecutive frames
            assert len(set(clip[..., 1].ravel())) == 1  # of one video
            xs = clip[0, 0, :, 2].astype(int)
            assert abs(np.diff(xs)).tolist() == [1] * 9  # a contiguous crop (maybe flipped)


def test_flip_negates_horizontal_flow():
    config = ClipConfig(clip_length=3, stop_and_go=0.0, seed=2)
    flipped = plain = 0
    for x, _ in take(clip_dataset(FrameSource(coded_videos()), config), 40):
        xs = x["frames"].numpy()[0, 0, 0, :, 2].astype(int)
        t = x["frames"].numpy()[0, :, 0, 0, 0].astype(int)
        u = x["flow"].numpy()[0, :, 0, 0, 0]
        np.testing.assert_array_equal(x["flow"].numpy()[0, ..., 1], 2.0)
        if xs[0] > xs[-1]:
            flipped += 1
            np.testing.assert_array_equal(u, -(1 + t))
        else:
            plain += 1
            np.testing.assert_array_equal(u, 1 + t)
    assert flipped > 5 and plain > 5


def test_deterministic_for_a_seed():
    source = FrameSource(coded_videos())
    a = take(clip_dataset(source, ClipConfig(clip_length=4, crop=(8, 8), stop_frames=2, seed=5)), 6)
    b = take(clip_dataset(source, ClipConfig(clip_length=4, crop=(8, 8), stop_frames=2, seed=5)), 6)
    c = take(clip_dataset(source, ClipConfig(clip_length=4, crop=(8, 8), stop_frames=2, seed=6)), 6)
    for (xa, ya), (xb, yb) in zip(a, b, strict=True):
        np.testing.assert_array_equal(xa["frames"], xb["frames"])
        np.testing.assert_array_equal(ya, yb)
    assert any(
        not np.array_equal(xa["frames"], xc["frames"])
        for (xa, _), (xc, _) in zip(a, c, strict=True)
    )


def test_stop_and_go_clips_are_exact():
    k, length = 3, 7
    config = ClipConfig(clip_length=length, stop_and_go=1.0, stop_frames=k, flip=False, seed=3)
    seen = set()
    for x, y in take(clip_dataset(FrameSource(coded_videos()), config), 30):
        kind = int(x["augment"][0])
        t = x["frames"].numpy()[0, :, 0, 0, 0].astype(int)
        u = x["flow"].numpy()[0, :, 0, 0, 0]
        labels = y.numpy()[0, :, 0, 0, 0]
        if kind == STOP:  # L-k real frames, then the last real one k times, no motion
            np.testing.assert_array_equal(np.diff(t[: length - k]), 1)
            np.testing.assert_array_equal(t[length - k :], t[length - k - 1])
            np.testing.assert_array_equal(u[length - k :], 0.0)
            np.testing.assert_array_equal(u[: length - k], 1 + t[: length - k])
        else:  # the first real frame k times with no motion, then L-k real frames
            assert kind == STATIC_START
            np.testing.assert_array_equal(t[: k + 1], t[0])
            np.testing.assert_array_equal(np.diff(t[k:]), 1)
            np.testing.assert_array_equal(u[:k], 0.0)
            np.testing.assert_array_equal(u[k:], 1 + t[k:])
        np.testing.assert_allclose(labels, t / 10, atol=1e-6)  # ground truth follows the frames
        seen.add(kind)
    assert seen == {STOP, STATIC_START}


def test_augmented_fraction():
    config = ClipConfig(clip_length=4, stop_and_go=0.2, stop_frames=2, seed=4)
    n = 3000  # std of the fraction: sqrt(0.2 * 0.8 / n) = 0.0073; bounds are 4 std
    kinds = np.array(
        [
            int(x["augment"][0])
            for x, _ in take(clip_dataset(FrameSource(coded_videos()), config), n)
        ]
    )
    assert abs(np.mean(kinds > 0) - 0.2) < 0.03
    assert abs(np.mean(kinds == STOP) - 0.1) < 0.022
    assert abs(np.mean(kinds == STATIC_START) - 0.1) < 0.022


def test_feature_source_zeroes_only_the_motion_channel(tmp_path):
    cache = FeatureCache(str(tmp_path))
    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        feats = rng.standard_normal((T, 4, 5, 6)).astype(np.float16)
        feats[..., -1] = np.abs(feats[..., -1]) + 0.5  # motion probability, never zero
        cache.write(name, feats, rng.random((T, 4, 5, 1)).astype(np.float16))
    source = FeatureSource(str(tmp_path))
    assert source.channels == 6 and source.size == (4, 5)
    config = ClipConfig(clip_length=6, stop_and_go=1.0, stop_frames=2, flip=False, seed=0)
    for x, y in take(clip_dataset(source, config), 10):
        f = x["features"].numpy()[0]
        motion = np.abs(f[..., -1]).sum(axis=(1, 2))
        zero = motion == 0
        assert zero.sum() == 2
        if int(x["augment"][0]) == STOP:
            assert zero[-2:].all()
            np.testing.assert_array_equal(f[-1, ..., :-1], f[-3, ..., :-1])
            np.testing.assert_array_equal(y.numpy()[0, -1], y.numpy()[0, -3])
        else:
            assert zero[:2].all()
            np.testing.assert_array_equal(f[0, ..., :-1], f[2, ..., :-1])
    with pytest.raises(ValueError, match=r"not in the feature cache .*\['c'\]"):
        FeatureSource(str(tmp_path), ["c"])
    with pytest.raises(FileNotFoundError, match="index.json"):
        FeatureSource(str(tmp_path / "none"))


def test_motion_gain_scales_only_the_motion_channel_per_clip(tmp_path):
    cache = FeatureCache(str(tmp_path))
    rng = np.random.default_rng(1)
    feats = rng.standard_normal((T, 4, 5, 6)).astype(np.float16)
    feats[..., -1] = np.abs(feats[..., -1]) + 0.5
    cache.write("a", feats, rng.random((T, 4, 5, 1)).astype(np.float16))
    source = FeatureSource(str(tmp_path))
    plain = ClipConfig(clip_length=6, stop_and_go=0.0, flip=False, seed=3)
    gained = ClipConfig(clip_length=6, stop_and_go=0.0, flip=False, seed=3, motion_gain=(0.1, 1))
    gains = []
    plain_clips, gained_clips = (
        take(clip_dataset(source, plain), 40),
        take(clip_dataset(source, gained), 40),
    )
    for (a, ya), (b, yb) in zip(plain_clips, gained_clips, strict=True):
        a, b = a["features"].numpy()[0].astype(np.float32), b["features"].numpy()[0]
        np.testing.assert_array_equal(b[..., :-1], a[..., :-1])  # appearance untouched
        np.testing.assert_array_equal(yb, ya)  # labels untouched
        ratio = b[..., -1].astype(np.float32) / a[..., -1]
        np.testing.assert_allclose(ratio, ratio.flat[0], rtol=2e-3)  # one gain per clip
        gains.append(ratio.flat[0])
    assert 0.1 * 0.99 <= min(gains) and max(gains) <= 1.0 * 1.01
    assert min(gains) < 0.2 and max(gains) > 0.5  # spread over the range (log-uniform)
    again = [x["features"].numpy() for x, _ in take(clip_dataset(source, gained), 5)]
    first = [x["features"].numpy() for x, _ in take(clip_dataset(source, gained), 5)]
    np.testing.assert_array_equal(np.stack(again), np.stack(first))  # deterministic
    with pytest.raises(ValueError, match="motion_gain must be 0 < lo <= hi"):
        ClipConfig(motion_gain=(1.0, 0.5))


def test_appearance_dropout_zeroes_the_appearance_channels_of_a_fraction_of_clips(tmp_path):
    cache = FeatureCache(str(tmp_path))
    rng = np.random.default_rng(2)
    feats = (np.abs(rng.standard_normal((T, 4, 5, 6))) + 0.5).astype(np.float16)
    cache.write("a", feats, rng.random((T, 4, 5, 1)).astype(np.float16))
    source = FeatureSource(str(tmp_path))
    plain = ClipConfig(clip_length=6, stop_and_go=0.0, flip=False, seed=3)
    dropped = ClipConfig(clip_length=6, stop_and_go=0.0, flip=False, seed=3, appearance_dropout=0.3)
    n, zeroed = 200, 0
    for (a, ya), (b, yb) in zip(
        take(clip_dataset(source, plain), n), take(clip_dataset(source, dropped), n), strict=True
    ):
        a, b = a["features"].numpy()[0], b["features"].numpy()[0]
        np.testing.assert_array_equal(b[..., -1], a[..., -1])  # motion untouched
        np.testing.assert_array_equal(yb, ya)  # labels untouched
        if np.all(b[..., :-1] == 0):
            zeroed += 1
        else:  # whole clips: either all appearance channels are kept or none
            np.testing.assert_array_equal(b, a)
    # Binomial(200, 0.3): mean 60, sd 6.5; [35, 85] is about +-4 sd.
    assert 35 <= zeroed <= 85, zeroed
    first = [x["features"].numpy() for x, _ in take(clip_dataset(source, dropped), 8)]
    again = [x["features"].numpy() for x, _ in take(clip_dataset(source, dropped), 8)]
    np.testing.assert_array_equal(np.stack(again), np.stack(first))  # deterministic
    with pytest.raises(ValueError, match=r"appearance_dropout must be in \[0, 1\]"):
        ClipConfig(appearance_dropout=1.5)


def test_bad_configurations():
    source = FrameSource(coded_videos())
    with pytest.raises(ValueError, match="no video has 11 frames"):
        clip_dataset(source, ClipConfig(clip_length=11))
    with pytest.raises(ValueError, match="crop 13x16 is larger"):
        clip_dataset(source, ClipConfig(clip_length=4, crop=(13, 16), stop_frames=2))
    with pytest.raises(ValueError, match="stop_frames"):
        ClipConfig(clip_length=4, stop_frames=4)
    with pytest.raises(ValueError, match="stop_and_go"):
        ClipConfig(stop_and_go=1.5)

"""Optical flow: .flo I/O, DIS/Farneback on known motion, the cache."""

import os

import cv2
import numpy as np
import pytest

from lvo_tf.data import flow as fl


def texture(rng, h=120, w=160):
    noise = rng.random((h, w)).astype(np.float32)
    smooth = cv2.GaussianBlur(noise, (0, 0), 2.0)
    smooth = (smooth - smooth.min()) / (smooth.max() - smooth.min())
    gray = (smooth * 255).astype(np.uint8)
    return np.stack([gray, np.roll(gray, 7, 0), np.roll(gray, 5, 1)], -1)


def test_flo_round_trip_and_opencv_agree(rng, tmp_path):
    flow = rng.standard_normal((7, 11, 2)).astype(np.float32) * 5
    ours = str(tmp_path / "ours.flo")
    fl.write_flo(ours, flow)
    np.testing.assert_array_equal(fl.read_flo(ours), flow)
    np.testing.assert_array_equal(cv2.readOpticalFlow(ours), flow)  # independent reader
    theirs = str(tmp_path / "theirs.flo")
    assert cv2.writeOpticalFlow(theirs, flow)
    np.testing.assert_array_equal(fl.read_flo(theirs), flow)
    assert os.path.getsize(ours) == 12 + 8 * 7 * 11


def test_flo_validation(rng, tmp_path):
    good = str(tmp_path / "good.flo")
    fl.write_flo(good, np.zeros((4, 5, 2), np.float32))
    data = open(good, "rb").read()
    cases = {
        "short.flo": (data[:8], "truncated"),
        "cut.flo": (data[:-4], "truncated or padded"),
        "magic.flo": (b"XXXX" + data[4:], "wrong magic"),
        "size.flo": (data[:4] + np.array([-1, 5], "<i4").tobytes() + data[12:], "invalid size"),
    }
    for name, (content, message) in cases.items():
        path = tmp_path / name
        path.write_bytes(content)
        with pytest.raises(fl.FlowFileError, match=message) as info:
            fl.read_flo(str(path))
        assert name in str(info.value)
    with pytest.raises(fl.FlowFileError, match="cannot read"):
        fl.read_flo(str(tmp_path / "absent.flo"))
    with pytest.raises(ValueError, match=r"\[H, W, 2\]"):
        fl.write_flo(str(tmp_path / "bad.flo"), np.zeros((4, 5, 3)))
    assert not (tmp_path / "bad.flo").exists()


@pytest.mark.parametrize("method", fl.METHODS)
def test_translation_is_recovered(rng, method):
    """Frame t+1 is frame t moved by (dx, dy) = (3, -2): flow must be (+3, -2)
    (Middlebury convention). Tolerance: median within 0.25 px in the interior."""
    frame = texture(rng)
    shift = np.float32([[1, 0, 3], [0, 1, -2]])
    moved = cv2.warpAffine(frame, shift, frame.shape[1::-1], borderMode=cv2.BORDER_REFLECT)
    flow = fl.FlowEstimator(method)(frame, moved)
    interior = flow[20:-20, 20:-20]
    assert np.median(interior[..., 0]) == pytest.approx(3.0, abs=0.25)
    assert np.median(interior[..., 1]) == pytest.approx(-2.0, abs=0.25)


def test_fine_resolves_a_moving_object_better_than_medium(rng):
    """A textured 24x24 square moves (4, 0) px over a static textured
    background. "dis_fine" (finest pyramid level at the frame's resolution)
    must follow the object's flow closer than "dis_medium" (which stops at
    half resolution) on the object and a 4-pixel band around it, and agree
    with it on the far background."""
    background, patch = texture(rng), texture(rng, 24, 24)
    first, second = background.copy(), background.copy()
    first[48:72, 60:84] = patch
    second[48:72, 64:88] = patch
    truth = np.zeros(first.shape[:2] + (2,), np.float32)
    truth[48:72, 60:84, 0] = 4.0
    near = np.zeros(first.shape[:2], bool)
    near[44:76, 56:92] = True
    errors = {}
    for method in ("dis_medium", "dis_fine"):
        flow = fl.FlowEstimator(method)(first, second)
        error = np.linalg.norm(flow - truth, axis=-1)
        errors[method] = float(error[near].mean())
        assert np.median(error[~near][400:]) < 0.25, method  # the static background
    assert errors["dis_fine"] < 0.8 * errors["dis_medium"], errors


def test_clip_flow_last_frame_and_single_frame(rng):
    frames = np.stack([texture(rng, 40, 48) for _ in range(3)])
    flow = fl.clip_flow(frames, "dis_fast")
    assert flow.shape == (3, 40, 48, 2)
    np.testing.assert_array_equal(flow[2], flow[1])
    assert np.abs(flow[0]).max() > 0
    np.testing.assert_array_equal(fl.clip_flow(frames[:1]), np.zeros((1, 40, 48, 2)))
    with pytest.raises(ValueError, match="unknown flow method"):
        fl.FlowEstimator("raft")


def test_cache_computes_once_and_reuses(rng, tmp_path):
    frames = np.stack([texture(rng, 40, 48) for _ in range(4)])
    stems = [f"{i:05d}" for i in range(4)]
    cache = fl.FlowCache(str(tmp_path), "dis_fast")
    calls = []

    def load(i):
        calls.append(i)
        return frames[i]

    first = cache.sequence_flow("seq", stems, load)
    assert sorted(os.listdir(tmp_path / "dis_fast" / "seq")) == [s + ".flo" for s in stems[:3]]
    np.testing.assert_allclose(first[:3], fl.clip_flow(frames, "dis_fast")[:3], atol=1e-6)
    calls.clear()
    again = cache.sequence_flow("seq", stems, load)
    assert calls == [0]  # nothing recomputed; one frame read, for the fields' size
    np.testing.assert_array_equal(again, first)
    os.remove(cache.path("seq", "00001"))
    cache.sequence_flow("seq", stems, load)
    assert sorted(set(calls)) == [0, 1, 2]


@pytest.mark.parametrize("damage", ["nan", "huge", "wrong_size", "truncated"])
def test_cache_replaces_a_damaged_field(rng, tmp_path, damage):
    """A cached field that is NaN, absurd, of another size or truncated is
    computed again (never reused, never fatal)."""
    frames = np.stack([texture(rng, 40, 48) for _ in range(3)])
    stems = [f"{i:05d}" for i in range(3)]
    cache = fl.FlowCache(str(tmp_path), "dis_fast")
    fresh = cache.sequence_flow("seq", stems, lambda i: frames[i])
    path = cache.path("seq", "00000")
    if damage == "nan":
        bad = fresh[0].copy()
        bad[3, 4, 0] = np.nan
        fl.write_flo(path, bad)
    elif damage == "huge":
        fl.write_flo(path, np.full((40, 48, 2), 1e6, np.float32))
    elif damage == "wrong_size":
        fl.write_flo(path, np.zeros((20, 24, 2), np.float32))
    else:
        with open(path, "r+b") as f:
            f.truncate(100)
    if damage != "wrong_size":  # a valid file of another size: the cache checks that
        with pytest.raises(fl.FlowFileError):
            fl.read_flo(path)
    again = cache.sequence_flow("seq", stems, lambda i: frames[i])
    np.testing.assert_allclose(again, fresh, atol=1e-6)
    np.testing.assert_allclose(fl.read_flo(path), fresh[0], atol=1e-6)  # replaced on disk
    one = fl.FlowCache(str(tmp_path), "dis_fast")
    if damage == "nan":
        fl.write_flo(path, np.full((40, 48, 2), np.nan, np.float32))
        np.testing.assert_allclose(
            one.field("seq", stems, 0, lambda i: frames[i]), fresh[0], atol=1e-6
        )


def test_compute_flow_binary(tmp_path, rng):
    import subprocess
    import sys

    folder = tmp_path / "frames"
    os.makedirs(folder)
    frame = texture(rng, 48, 64)
    for i in range(3):
        cv2.imwrite(str(folder / f"{i:05d}.png"), np.roll(frame, 2 * i, axis=1)[..., ::-1])
    cmd = [
        sys.executable,
        "-m",
        "lvo_tf.compute_flow",
        f"--input={folder}",
        f"--output_dir={tmp_path / 'cache'}",
        "--method=dis_medium",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    written = sorted(os.listdir(tmp_path / "cache" / "dis_medium" / "frames"))
    assert written == ["00000.flo", "00001.flo"]
    flow = fl.read_flo(str(tmp_path / "cache" / "dis_medium" / "frames" / "00000.flo"))
    assert np.median(flow[8:-8, 8:-8, 0]) == pytest.approx(2.0, abs=0.25)
    bad = subprocess.run(
        cmd[:3] + [f"--input={tmp_path / 'nothing'}", cmd[4]], capture_output=True, text=True
    )
    assert bad.returncode != 0 and "no video file" in bad.stderr and "Traceback" not in bad.stderr
    both = subprocess.run(cmd + [f"--davis_root={tmp_path}"], capture_output=True, text=True)
    assert both.returncode != 0 and "exactly one of --input and --davis_root" in both.stderr


def _moving_frames(folder, rng, n, size=(96, 128)):
    os.makedirs(folder, exist_ok=True)
    base = texture(rng, size[0], size[1] + 2 * n)
    for i in range(n):
        cv2.imwrite(str(folder / f"{i:05d}.png"), base[:, 2 * i : 2 * i + size[1]])


def test_compute_flow_resumes_after_sigkill_to_the_same_fields(tmp_path, rng):
    """kill -9 mid-run, then the same command: every field equals an
    uninterrupted run's, and no partial file is read as a field."""
    import signal
    import subprocess
    import sys
    import time

    _moving_frames(tmp_path / "frames", rng, 60, size=(240, 320))

    def cmd(out):
        return [
            sys.executable,
            "-m",
            "lvo_tf.compute_flow",
            f"--input={tmp_path / 'frames'}",
            f"--output_dir={out}",
            "--method=dis_medium",
        ]

    whole = subprocess.run(cmd(tmp_path / "whole"), capture_output=True, text=True)
    assert whole.returncode == 0, whole.stderr[-2000:]
    killed = tmp_path / "killed" / "dis_medium" / "frames"
    proc = subprocess.Popen(cmd(tmp_path / "killed"), stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and len(list(killed.glob("[0-9]*.flo"))) < 5:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_before = len(list(killed.glob("[0-9]*.flo")))
    assert 5 <= done_before < 59  # killed mid-run
    resumed = subprocess.run(cmd(tmp_path / "killed"), capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    reference = tmp_path / "whole" / "dis_medium" / "frames"
    names = sorted(p.name for p in reference.glob("*.flo"))
    assert len(names) == 59 and sorted(p.name for p in killed.glob("[0-9]*.flo")) == names
    for name in names:
        np.testing.assert_array_equal(
            fl.read_flo(str(killed / name)), fl.read_flo(str(reference / name))
        )

"""The synthetic world's ground truth is right, and the dataset binary writes what readers read."""

import dataclasses
import json
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest

from lvo_tf.data import flow as flow_lib
from lvo_tf.data import readers, synthetic

CLEAN = synthetic.WorldConfig(
    height=96, width=128, frames=8, photometric=False, dynamic_texture_prob=0.0
)
# Objects that stop and start, and a distractor, under a fixed camera.
FIXED_CAMERA_STOP_AND_GO = dataclasses.replace(
    CLEAN,
    camera_motion=False,
    schedules=("stop_and_go", "move_then_stop", "start_late"),
    distractor_prob=1.0,
    near_layer_prob=0.0,
    frames=12,
)


def _warp_error(video, t):
    """Mean |frame_t(p) - frame_t+1(p + flow(p))| over pixels that stay visible
    on the same layer, away from layer edges; and the same with zero flow."""
    h, w = video.masks.shape[1:]
    flow = video.flow[t]
    ys, xs = np.mgrid[:h, :w].astype(np.float32)
    map_x, map_y = xs + flow[..., 0], ys + flow[..., 1]
    warped = cv2.remap(video.frames[t + 1].astype(np.float32), map_x, map_y, cv2.INTER_LINEAR)
    qx, qy = np.round(map_x).astype(int), np.round(map_y).astype(int)
    inside = (qx >= 1) & (qx < w - 1) & (qy >= 1) & (qy < h - 1)
    same = np.zeros((h, w), bool)
    same[inside] = video.layers[t + 1][qy[inside], qx[inside]] == video.layers[t][inside]
    interior = np.ones((h, w), bool)
    for k in np.unique(video.layers[t]):  # away from edges, where textures blend
        region = (video.layers[t] == k).astype(np.uint8)
        interior &= ~(
            (cv2.dilate(region, np.ones((5, 5))) > 0) & (cv2.erode(region, np.ones((5, 5))) == 0)
        )
    sel = same & interior
    frame = video.frames[t].astype(np.float32)
    err = np.abs(warped - frame)[sel].mean()
    zero = np.abs(video.frames[t + 1].astype(np.float32) - frame)[sel].mean()
    return err, zero, sel.mean()


@pytest.mark.parametrize("index, articulated", [(i, i >= 2) for i in range(4)])
def test_ground_truth_flow_warps_frame_onto_next(index, articulated):
    config = dataclasses.replace(CLEAN, near_layer_prob=1.0, articulated_prob=float(articulated))
    video = synthetic.render_video(synthetic.video_rng(1, index), config)
    for t in range(len(video.flow)):
        err, zero, covered = _warp_error(video, t)
        assert covered > 0.5
        assert err < 6.0, (t, err)  # the residual is resampling of fine textures
        assert err < zero or zero < 4.0
        # The true flow is the minimiser: half a pixel off in any direction is worse.
        truth = video.flow[t].copy()
        for delta in ((0.5, 0), (-0.5, 0), (0, 0.5), (0, -0.5)):
            video.flow[t] = truth + np.float32(delta)
            assert err < 0.85 * _warp_error(video, t)[0], (t, delta)
        video.flow[t] = truth


def test_masks_move_with_the_flow():
    config = dataclasses.replace(CLEAN, max_objects=1, distractor_prob=0.0, near_layer_prob=0.0)
    video = synthetic.render_video(synthetic.video_rng(2, 0), config)
    h, w = video.masks.shape[1:]

    def iou(a, b):
        return (a & b).sum() / max((a | b).sum(), 1)

    for t in range(len(video.flow)):
        # Forward-warp the mask with the flow; the outline also deforms while
        # the object moves, so demand a large overlap, not equality.
        ys, xs = np.nonzero(video.masks[t])
        qx = np.round(xs + video.flow[t][ys, xs, 0]).astype(int)
        qy = np.round(ys + video.flow[t][ys, xs, 1]).astype(int)
        keep = (qx >= 0) & (qx < w) & (qy >= 0) & (qy < h)
        warped = np.zeros((h, w), bool)
        warped[qy[keep], qx[keep]] = True
        warped = cv2.morphologyEx(warped.astype(np.uint8), cv2.MORPH_CLOSE, np.ones((3, 3))) > 0
        assert iou(warped, video.masks[t + 1]) > 0.85, t
        assert iou(warped, video.masks[t + 1]) >= iou(video.masks[t], video.masks[t + 1])


def test_stop_intervals_have_zero_object_flow_and_distractors_stay_background():
    config = FIXED_CAMERA_STOP_AND_GO
    checked_static = checked_moving = 0
    for index in range(6):
        video = synthetic.render_video(synthetic.video_rng(3, index), config)
        roles = [layer["role"] for layer in video.meta["layers"]]
        names = [layer["name"] for layer in video.meta["layers"]]
        for obj in video.meta["objects"]:
            k = names.index(obj["name"])
            for t, moving in enumerate(obj["moving"]):
                pixels = video.layers[t] == k
                if not pixels.any():
                    continue
                speed = np.abs(video.flow[t][pixels]).max()
                if obj["role"] == "distractor" or not moving:
                    assert speed < 1e-4, (obj, t)
                    assert not video.moving[t][pixels].any()
                    checked_static += 1
                else:
                    assert speed > 0.5 and video.moving[t][pixels].all()
                    checked_moving += 1
        distractors = [i for i, r in enumerate(roles) if r == "distractor"]
        assert not (np.isin(video.layers, distractors) & video.masks).any()
        # A stopped foreground object stays foreground.
        fg = [i for i, r in enumerate(roles) if r == "object"]
        np.testing.assert_array_equal(video.masks, np.isin(video.layers, fg))
    assert checked_static > 10 and checked_moving > 10


def test_articulated_limbs_swing_only_while_their_body_moves():
    """Limbs are foreground (or distractor) layers of their own, hinged on the
    body: with a fixed camera their flow is zero while the body is stopped,
    and while it moves it is not the body's rigid motion (the object is
    articulated), with the ground truth still exact (warp test above)."""
    config = dataclasses.replace(FIXED_CAMERA_STOP_AND_GO, articulated_prob=1.0)
    h, w = CLEAN.height, CLEAN.width
    ys, xs = np.mgrid[:h, :w].astype(np.float64)
    still = swinging = 0
    for index in range(4):
        video = synthetic.render_video(synthetic.video_rng(4, index), config)
        names = [layer["name"] for layer in video.meta["layers"]]
        roles = [layer["role"] for layer in video.meta["layers"]]
        for obj in video.meta["objects"]:
            limbs = [k for k, n in enumerate(names) if n.startswith(obj["name"] + "_limb")]
            assert 2 <= len(limbs) <= 4, names
            assert {roles[k] for k in limbs} == {roles[names.index(obj["name"])]}
            body = video.layers == names.index(obj["name"])
            for t, moving in enumerate(obj["moving"]):
                pixels = np.isin(video.layers[t], limbs)
                if pixels.sum() < 10:
                    continue
                flow = video.flow[t][pixels]
                if obj["role"] == "distractor" or not moving:
                    assert np.abs(flow).max() < 1e-4, (obj["name"], t)
                    assert not video.moving[t][pixels].any()
                    still += 1
                elif body[t].sum() > 50:
                    # The body's own motion, fitted as an affine map on its pixels,
                    # does not explain the limbs' flow.
                    sel = body[t]
                    a = np.stack([xs[sel], ys[sel], np.ones(sel.sum())], -1)
                    fit = np.linalg.lstsq(a, video.flow[t][sel], rcond=None)[0]
                    b = np.stack([xs[pixels], ys[pixels], np.ones(pixels.sum())], -1)
                    miss = np.linalg.norm(b @ fit - flow, axis=-1)
                    assert video.moving[t][pixels].all()
                    swinging += int(np.median(miss) > 0.3)
        fg = [i for i, r in enumerate(roles) if r == "object"]
        np.testing.assert_array_equal(video.masks, np.isin(video.layers, fg))
    assert still > 10 and swinging > 10, (still, swinging)


def test_articulation_is_off_by_default():
    a = synthetic.render_video(synthetic.video_rng(7, 3), CLEAN)
    assert not any("_limb" in layer["name"] for layer in a.meta["layers"])
    c = synthetic.render_video(
        synthetic.video_rng(7, 3), dataclasses.replace(CLEAN, articulated_prob=1.0)
    )
    assert any("_limb" in layer["name"] for layer in c.meta["layers"])


def test_schedules_and_static_frames():
    rng = np.random.default_rng(0)
    for name in synthetic.SCHEDULES:
        for _ in range(20):
            moving = synthetic._schedule(rng, name, 13)
            assert moving.any()
            if name != "always":
                assert not moving.all()
    assert synthetic.static_frames(np.array([True, False, False, True])) == [2]
    with pytest.raises(ValueError, match="unknown schedule"):
        synthetic._schedule(rng, "teleport", 10)


def test_deterministic_for_a_seed():
    a = synthetic.render_video(synthetic.video_rng(7, 3), CLEAN)
    b = synthetic.render_video(synthetic.video_rng(7, 3), CLEAN)
    c = synthetic.render_video(synthetic.video_rng(7, 4), CLEAN)
    np.testing.assert_array_equal(a.frames, b.frames)
    np.testing.assert_array_equal(a.flow, b.flow)
    assert a.meta == b.meta
    assert not np.array_equal(a.frames, c.frames)


def test_objects_are_large_and_single_frame_video_works():
    video = synthetic.render_video(synthetic.video_rng(0, 0), dataclasses.replace(CLEAN, frames=1))
    assert video.frames.shape == (1, 96, 128, 3) and video.flow.shape == (0, 96, 128, 2)
    areas = [
        synthetic.render_video(synthetic.video_rng(5, i), CLEAN).masks.mean() for i in range(8)
    ]
    assert np.mean(areas) > 0.08  # DAVIS-like object sizes, not specks


def test_synthesize_binary_writes_readable_dataset(tmp_path):
    root = tmp_path / "synth"
    cmd = [
        sys.executable,
        "-m",
        "lvo_tf.synthesize",
        f"--output_dir={root}",
        "--num_videos=4",
        "--frames=5",
        "--height=48",
        "--width=64",
        "--val_fraction=0.25",
        "--workers=2",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    train = readers.davis_sequences(str(root), "train")
    val = readers.davis_sequences(str(root), "val")
    assert [s.name for s in train] == ["synth00000", "synth00001", "synth00002"]
    assert [s.name for s in val] == ["synth00003"]
    frames = readers.load_frames(val[0])
    assert frames.shape == (5, 48, 64, 3)
    masks = readers.load_annotations(val[0], (48, 64))
    meta = json.loads((root / "Meta" / "synth00003.json").read_text())
    expected = synthetic.render_video(
        synthetic.video_rng(0, 3), synthetic.WorldConfig(height=48, width=64, frames=5)
    )
    assert meta == json.loads(json.dumps(expected.meta))
    np.testing.assert_array_equal(np.stack(list(masks.values())), expected.masks)
    np.testing.assert_allclose(
        flow_lib.read_flo(str(root / "Flow" / "synth00003" / "00002.flo")), expected.flow[2]
    )
    assert len(os.listdir(root / "Flow" / "synth00003")) == 4
    # A second run finds every video complete and rewrites only the splits.
    stamp = os.path.getmtime(root / "JPEGImages" / "480p" / "synth00001" / "00000.jpg")
    assert subprocess.run(cmd, capture_output=True).returncode == 0
    assert os.path.getmtime(root / "JPEGImages" / "480p" / "synth00001" / "00000.jpg") == stamp


def test_synthesize_world_flags(tmp_path):
    """--camera_speed, --object_area and --object_speed reach the world: the
    written video is the one rendered with that config, and the settings
    are recorded; bad ranges fail before any work, naming the flag."""
    root = tmp_path / "world"
    base = [sys.executable, "-m", "lvo_tf.synthesize", f"--output_dir={root}", "--num_videos=2"]
    base += ["--frames=4", "--height=48", "--width=64", "--val_fraction=0.5", "--workers=1"]
    world = ["--camera_speed=12", "--object_area=0.05,0.1", "--object_speed=1,2"]
    world += ["--articulated_prob=1"]
    proc = subprocess.run(base + world, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    settings = json.loads((root / "synthesize.json").read_text())
    assert settings["camera_speed"] == 12.0
    assert settings["object_area"] == [0.05, 0.1] and settings["object_speed"] == [1.0, 2.0]
    assert settings["articulated_prob"] == 1.0
    config = synthetic.WorldConfig(
        height=48, width=64, frames=4, camera_speed=12.0, object_area=(0.05, 0.1),
        object_speed=(1.0, 2.0), articulated_prob=1.0,
    )  # fmt: skip
    expected = synthetic.render_video(synthetic.video_rng(0, 1), config)
    meta = json.loads((root / "Meta" / "synth00001.json").read_text())
    assert meta == json.loads(json.dumps(expected.meta))
    default = synthetic.render_video(
        synthetic.video_rng(0, 1), synthetic.WorldConfig(height=48, width=64, frames=4)
    )
    assert meta != json.loads(json.dumps(default.meta))
    for flag, message in [
        ("--object_area=0.5,0.1", "--object_area must be 0 < lo <= hi <= 1.0"),
        ("--object_speed=fast", "--object_speed must be 'lo,hi'"),
        ("--camera_speed=-1", "camera_speed"),
        ("--articulated_prob=1.5", "articulated_prob"),
    ]:
        bad = subprocess.run(
            base + [flag] + [f"--output_dir={tmp_path / 'bad'}"], capture_output=True, text=True
        )
        assert bad.returncode != 0 and message in bad.stderr, bad.stderr[-1000:]
        assert "Traceback" not in bad.stderr and not (tmp_path / "bad").exists()

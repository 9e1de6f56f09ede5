"""Inference: windows, streaming, CRF, baseline, and segment -> evaluate end to end."""

import json
import os
import subprocess
import sys

import cv2
import keras
import numpy as np
import pytest

from lvo_tf.evaluation import davis_metrics
from lvo_tf.inference import baseline, crf, run
from lvo_tf.inference.segmenter import (
    LVORunner,
    segment_windows,
    window_owner,
    window_starts,
)
from lvo_tf.models import build_lvo
from tests.fixtures import write_davis
from tests.test_models import TINY, clip


@pytest.fixture(scope="module")
def runner():
    keras.utils.set_random_seed(11)
    return LVORunner(build_lvo(TINY))


@pytest.mark.parametrize("length, window, overlap", [(5, 8, 2), (30, 8, 2), (17, 6, 3), (9, 9, 0)])
def test_windows_cover_every_frame_once(length, window, overlap):
    starts = window_starts(length, window, overlap)
    owner = window_owner(length, starts, window)
    assert starts[0] == 0 and starts[-1] + window >= length
    assert owner == sorted(owner)  # frames are emitted in order
    for t, k in enumerate(owner):
        assert starts[k] <= t < starts[k] + window
    with pytest.raises(ValueError, match="overlap < window"):
        window_starts(10, 4, 4)


def test_runner_composes_to_the_model(runner, rng):
    x = clip(rng, 1, 4, 37, 50)
    feats = runner.features(x["frames"][0], x["flow"][0])
    probs = runner.upsample(runner.coarse(feats), x["frames"][0])
    np.testing.assert_allclose(probs, np.asarray(runner.model(x))[0, ..., 0], atol=1e-5)
    # The streams in batches of 3 frames (3 + 1 here) give the same features.
    chunked = LVORunner(runner.model, stream_batch=3)
    np.testing.assert_allclose(
        chunked.features(x["frames"][0], x["flow"][0]), feats, rtol=1e-5, atol=1e-5
    )
    with pytest.raises(ValueError, match="stream_batch must be >= 1"):
        LVORunner(runner.model, stream_batch=0)


def _stream(runner, x, window, overlap):
    frames, flow = x["frames"][0], x["flow"][0]
    out = dict(
        segment_windows(
            runner, len(frames), lambda t: frames[t], lambda t: flow[t], window, overlap
        )
    )
    return np.stack([out[t] for t in range(len(frames))])


def test_window_covering_the_video_equals_whole_video(runner, rng):
    x = clip(rng, 1, 6, 24, 32)
    whole = runner.coarse(runner.features(x["frames"][0], x["flow"][0]))
    np.testing.assert_allclose(_stream(runner, x, window=8, overlap=2), whole, atol=1e-6)


def test_windows_match_their_own_clips(runner, rng):
    """Each frame's output is exactly its owner window's output."""
    x = clip(rng, 1, 13, 16, 24)
    window, overlap = 5, 2
    got = _stream(runner, x, window, overlap)
    feats = runner.features(x["frames"][0], x["flow"][0])
    starts = window_starts(13, window, overlap)
    for t, k in enumerate(window_owner(13, starts, window)):
        s = starts[k]
        own = runner.coarse(feats[s : s + window])[t - s]
        np.testing.assert_allclose(got[t], own, atol=1e-6)
    whole = runner.coarse(feats)
    assert np.abs(got - whole).max() > 1e-6  # windows really do cut the memory


def test_online_chunk_covering_the_video_equals_whole(runner, rng):
    x = clip(rng, 1, 5, 16, 24)
    feats = runner.features(x["frames"][0], x["flow"][0])
    online, _ = runner.online(feats, None)
    np.testing.assert_allclose(online, runner.coarse(feats), atol=1e-5)


def test_online_reads_only_the_streams_the_memory_was_trained_on(rng):
    """A motion-only memory (both shipped models are): online over one chunk is
    the whole clip's output, whatever the appearance channels hold."""
    keras.utils.set_random_seed(2)
    motion = LVORunner(build_lvo(TINY.replace(memory_streams="motion", motion_mix=0.25)))
    x = clip(rng, 1, 5, 16, 24)
    feats = motion.features(x["frames"][0], x["flow"][0])
    online, _ = motion.online(feats, None)
    np.testing.assert_allclose(online, motion.coarse(feats), atol=1e-5)


def test_motion_only_models_skip_the_appearance_stream(rng):
    """A motion-only memory: the runner's features are the streams' with the
    appearance channels zero (the stream not run), and every output is the
    same as with the full streams, bit for bit, and as the Keras model's."""
    keras.utils.set_random_seed(3)
    model = build_lvo(TINY.replace(memory_streams="motion", motion_mix=0.25))
    fast, full = LVORunner(model), LVORunner(model, full_streams=True)
    assert fast.motion_only and full.streams_model.get_layer("appearance_stream")
    assert "appearance_stream" not in {layer.name for layer in fast.streams_model.layers}
    x = clip(rng, 1, 6, 24, 40)
    frames, flow = x["frames"][0], x["flow"][0]
    streams = np.asarray(model.get_layer("streams")([frames[None], flow[None]]))[0]
    got = fast.features(frames, flow)
    np.testing.assert_array_equal(got[..., :-1], 0)
    np.testing.assert_allclose(got[..., -1], streams[..., -1], atol=1e-6)
    np.testing.assert_array_equal(fast.coarse(got), full.coarse(full.features(frames, flow)))
    whole = np.asarray(model({"frames": x["frames"], "flow": x["flow"]}))[0]
    np.testing.assert_allclose(fast.upsample(fast.coarse(got), frames), whole[..., 0], atol=1e-5)
    both = LVORunner(build_lvo(TINY))  # a memory that reads both streams runs both
    assert not both.motion_only


@pytest.mark.parametrize("streams,mix", [("both", 0.0), ("both", 0.25), ("motion", 0.25)])
def test_online_is_exact_for_a_forward_only_model(rng, streams, mix):
    keras.utils.set_random_seed(2)
    config = TINY.replace(memory_type="forward", memory_streams=streams, motion_mix=mix)
    forward = LVORunner(build_lvo(config))
    x = clip(rng, 1, 6, 16, 24)
    feats = forward.features(x["frames"][0], x["flow"][0])
    state, parts = None, []
    for t in range(6):  # one frame at a time, memory carried
        p, state = forward.online(feats[t : t + 1], state)
        parts.append(p)
    np.testing.assert_allclose(np.concatenate(parts), forward.coarse(feats), atol=1e-5)


def test_crf_improves_boundary_f_of_a_blurred_map():
    h, w = 96, 128
    frame = np.full((h, w, 3), (40, 120, 40), np.uint8)
    truth = np.zeros((h, w), bool)
    cv2.circle(frame, (64, 48), 28, (200, 60, 60), -1)
    cv2.circle(truth.view(np.uint8), (64, 48), 28, 1, -1)
    blurred = cv2.GaussianBlur(truth.astype(np.float32), (0, 0), 9)
    blurred = np.roll(blurred, 5, axis=1) * 0.9  # coarse and off by a few pixels
    plain = blurred > 0.5
    refined = crf.refine(frame, blurred)
    f_plain = davis_metrics.boundary_measure(plain, truth)[0]
    f_crf = davis_metrics.boundary_measure(refined, truth)[0]
    assert f_crf > f_plain + 0.15, (f_plain, f_crf)
    assert davis_metrics.region_similarity(refined, truth) > 0.9
    with pytest.raises(ValueError, match="differ in size"):
        crf.refine(frame[:10], blurred)


def test_crf_marginal_and_scaled_params():
    rng = np.random.default_rng(3)
    frame = rng.integers(0, 255, (24, 32, 3), dtype=np.uint8)
    p = rng.random((24, 32)).astype(np.float32)
    q = crf.marginal(frame, p)
    assert q.dtype == np.float32 and 0 <= q.min() and q.max() <= 1
    np.testing.assert_array_equal(crf.refine(frame, p), q > 0.5)
    half = crf.CRFParams().scaled(0.5)
    assert (half.gaussian_sxy, half.bilateral_sxy) == (1.5, 25.0)
    assert (half.bilateral_srgb, half.bilateral_compat, half.iterations) == (10.0, 5.0, 5)


def _disk_scene(h, w, shift=0):
    """A red disk on green, its mask, and a coarse, shifted probability of it."""
    frame = np.full((h, w, 3), (40, 120, 40), np.uint8)
    truth = np.zeros((h, w), np.uint8)
    centre, radius = (w // 2, h // 2), int(0.3 * h)
    cv2.circle(frame, centre, radius, (200, 60, 60), -1)
    cv2.circle(truth, centre, radius, 1, -1)
    blurred = cv2.GaussianBlur(truth.astype(np.float32), (0, 0), 0.1 * h)
    return frame, truth.astype(bool), np.roll(blurred, shift, axis=1) * 0.9


def test_crf_at_the_processing_size_matches_the_crf_at_full_size():
    """`to_mask` with a downscaled frame runs the CRF there (kernel widths
    scaled) and upsamples its marginal: same mask as the CRF at full size to
    within a thin rim, and both far better than the thresholded map."""
    frame, truth, _ = _disk_scene(192, 256)
    small = cv2.resize(frame, (128, 96), interpolation=cv2.INTER_AREA)
    _, _, p_small = _disk_scene(96, 128, shift=3)
    params = crf.CRFParams()
    at_small = run.to_mask(p_small, small, frame, params)
    at_full = crf.refine(frame, run.resize_probability(p_small, (192, 256)), params)
    plain = run.to_mask(p_small, small, frame, None)
    np.testing.assert_array_equal(plain, run.resize_probability(p_small, (192, 256)) > 0.5)
    assert at_small.shape == (192, 256)
    assert davis_metrics.region_similarity(at_small, at_full) > 0.97
    f_plain = davis_metrics.boundary_measure(plain, truth)[0]
    for mask in (at_small, at_full):
        assert davis_metrics.boundary_measure(mask, truth)[0] > f_plain + 0.15
        assert davis_metrics.region_similarity(mask, truth) > 0.93
    # Same size: exactly the CRF at full size.
    p_full = run.resize_probability(p_small, (192, 256))
    np.testing.assert_array_equal(
        run.to_mask(p_full, frame, frame, params), crf.refine(frame, p_full)
    )
    with pytest.raises(ValueError, match="differ in size"):
        run.to_mask(p_small, frame, frame, params)


def test_baseline_probability_gives_the_crf_a_soft_map():
    """The baseline's mask as a MASK_CONFIDENCE map: thresholding gives the
    mask back, and the CRF can move a boundary the flow got wrong onto the
    object's edge in the frame (a 0/1 map would pin it)."""
    h, w = 96, 128
    frame = np.full((h, w, 3), 80, np.uint8)
    frame[30:70, 40:90] = (230, 200, 40)
    truth = np.zeros((h, w), bool)
    truth[30:70, 40:90] = True
    flow = np.zeros((h, w, 2), np.float32)
    flow[..., 0] = 1.5  # camera
    flow[30:70, 46:96] = (-3.0, 1.0)  # the flow's object is 6 pixels right of the frame's
    p = baseline.probability(flow)
    c = baseline.MASK_CONFIDENCE
    np.testing.assert_allclose(np.unique(p), [1 - c, c], rtol=1e-6)
    np.testing.assert_array_equal(p > 0.5, baseline.segment_frame(flow))
    j_mask = davis_metrics.region_similarity(p > 0.5, truth)
    j_crf = davis_metrics.region_similarity(crf.refine(frame, p), truth)
    assert j_crf > j_mask + 0.1, (j_mask, j_crf)
    np.testing.assert_array_equal(crf.refine(frame, p > 0.5), p > 0.5)  # 0/1: pinned
    with pytest.raises(ValueError, match="confidence"):
        baseline.probability(flow, 0.5)


def test_baseline_finds_an_object_moving_against_the_camera():
    h, w = 120, 160
    flow = np.zeros((h, w, 2), np.float32)
    flow[..., 0] = 2.0  # camera pans
    flow[40:80, 60:110] = (-3.0, 1.0)  # the object moves its own way
    truth = np.zeros((h, w), bool)
    truth[40:80, 60:110] = True
    assert davis_metrics.region_similarity(baseline.segment_frame(flow), truth) > 0.9


def _run(args):
    return subprocess.run(
        [sys.executable, "-m", "lvo_tf.segment", *args], capture_output=True, text=True
    )


@pytest.fixture
def davis(tmp_path, rng):
    root = tmp_path / "davis"
    write_davis(str(root), rng, sequences=("a", "b"), frames=6, size=(40, 56))
    return root


def test_segment_then_evaluate_end_to_end(davis, tmp_path):
    out = tmp_path / "seg"
    proc = _run(
        [
            f"--davis_root={davis}",
            f"--output_dir={out}",
            "--preset=lite",
            "--allow_random_weights",
            "--window=4",
            "--overlap=1",
            "--save_probabilities",
        ]
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    for seq in ("a", "b"):
        masks = sorted(os.listdir(out / seq))
        assert masks == [".segment_run.json"] + [f"{i:05d}.png" for i in range(6)]
        mask = cv2.imread(str(out / seq / "00003.png"), cv2.IMREAD_UNCHANGED)
        assert mask.shape == (40, 56) and set(np.unique(mask)) <= {0, 255}
        assert (out / "probabilities" / seq / "00003.png").is_file()
        assert (out / "overlays" / f"{seq}.gif").is_file()
    summary = json.loads((out / "segment_summary.json").read_text())
    assert summary["processed"] == 12 and summary["stage_seconds_per_frame"]["memory"] > 0
    assert summary["flow_method"] == "dis_medium"  # no manifest: the project's default
    assert summary["stage_seconds_per_frame"]["flow"] > 0  # on the prefetch thread
    assert 0 <= summary["stage_seconds_per_frame"]["wait"] < summary["seconds_per_frame"]
    evaluation = subprocess.run(
        [
            sys.executable,
            "-m",
            "lvo_tf.evaluate",
            f"--davis_root={davis}",
            f"--results_dir={out}",
            f"--output_json={tmp_path / 'eval.json'}",
        ],
        capture_output=True,
        text=True,
    )
    assert evaluation.returncode == 0, evaluation.stderr[-2000:]
    scores = json.loads((tmp_path / "eval.json").read_text())
    assert scores["problems"] == {} and set(scores["sequences"]) == {"a", "b"}
    same = [f"--davis_root={davis}", f"--output_dir={out}", "--preset=lite"]
    same += ["--allow_random_weights", "--window=4", "--overlap=1"]
    again = _run(same)
    assert again.returncode == 0 and again.stderr.count("masks exist, skipped") == 2
    # Other settings into the same folder: refused, naming what differs, nothing touched.
    before = (out / "a" / "00003.png").stat().st_mtime_ns
    other = _run(same[:-2] + ["--window=5", "--overlap=1"])
    assert other.returncode == 2 and "holds 6 masks of another run" in other.stderr
    assert "window: 4 then, 5 now" in other.stderr and "Traceback" not in other.stderr
    assert (out / "a" / "00003.png").stat().st_mtime_ns == before
    replaced = _run(same[:-2] + ["--window=5", "--overlap=1", "--overwrite"])
    assert replaced.returncode == 0 and "masks exist" not in replaced.stderr
    record = json.loads((out / "a" / ".segment_run.json").read_text())
    assert record["settings"]["window"] == 5


def test_segment_folder_input_baseline_and_crf(tmp_path, rng):
    folder = tmp_path / "frames"
    os.makedirs(folder)
    for i in range(4):
        image = np.full((48, 64, 3), 90, np.uint8)
        cv2.rectangle(image, (10 + 3 * i, 12), (30 + 3 * i, 36), (250, 250, 250), -1)
        cv2.imwrite(str(folder / f"f{i}.png"), image)
    out = tmp_path / "out"
    proc = _run(
        [
            f"--input={folder}",
            f"--output_dir={out}",
            "--method=baseline",
            "--crf",
            "--overlay=false",
        ]
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert sorted(n for n in os.listdir(out) if n.endswith(".png")) == [
        f"f{i}.png" for i in range(4)
    ]
    assert not (out / "overlays").exists()


def test_segment_refuses_missing_weights_and_bad_input(davis, tmp_path):
    no_weights = _run(
        [
            f"--davis_root={davis}",
            f"--output_dir={tmp_path / 'x'}",
            f"--weights={tmp_path / 'none.weights.h5'}",
        ]
    )
    assert no_weights.returncode != 0 and "no such file" in no_weights.stderr
    assert "Traceback" not in no_weights.stderr
    missing = _run(
        [f"--input={tmp_path / 'none.mp4'}", f"--output_dir={tmp_path / 'y'}", "--method=baseline"]
    )
    assert missing.returncode != 0 and "no video file" in missing.stderr
    assert not (tmp_path / "y").exists()
    overlap = _run(
        [
            f"--davis_root={davis}",
            f"--output_dir={tmp_path / 'z'}",
            "--overlap=9",
            "--window=4",
            "--method=baseline",
        ]
    )
    assert overlap.returncode != 0 and "--overlap must be smaller than --window" in overlap.stderr


@pytest.fixture
def lite_weights(tmp_path):
    from lvo_tf.models import weights

    keras.utils.set_random_seed(21)
    model = build_lvo("lite")
    path = str(tmp_path / "lite.weights.h5")
    weights.save_weights(model, path)
    return model, path


def test_resume_recomputes_only_missing_frames(davis, tmp_path, lite_weights):
    _, path = lite_weights
    out = tmp_path / "seg"
    args = [
        f"--davis_root={davis}",
        "--sequences=a",
        f"--output_dir={out}",
        f"--weights={path}",
        "--preset=lite",
        "--flow_method=dis_medium",
        "--window=3",
        "--overlap=1",
    ]
    assert _run(args).returncode == 0
    names = [n for n in os.listdir(out / "a") if n.endswith(".png")]
    first = {n: cv2.imread(str(out / "a" / n), cv2.IMREAD_UNCHANGED) for n in names}
    stamps = {n: os.path.getmtime(out / "a" / n) for n in first}
    for n in ("00001.png", "00004.png"):
        os.remove(out / "a" / n)
    proc = _run(args)
    assert proc.returncode == 0 and "4 of 6 masks exist" in proc.stderr
    for n, mask in first.items():
        np.testing.assert_array_equal(cv2.imread(str(out / "a" / n), cv2.IMREAD_UNCHANGED), mask)
        if n not in ("00001.png", "00004.png"):
            assert os.path.getmtime(out / "a" / n) == stamps[n]  # not rewritten


def test_online_stream_matches_in_process_online(tmp_path, lite_weights, rng):
    from lvo_tf.data import flow as flow_lib
    from lvo_tf.data import readers

    model, path = lite_weights
    video = str(tmp_path / "clip.avi")
    writer = cv2.VideoWriter(video, cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 48))
    for i in range(5):
        image = np.full((48, 64, 3), 60, np.uint8)
        cv2.circle(image, (12 + 8 * i, 24), 9, (30, 200, 240), -1)
        writer.write(image)
    writer.release()
    out = tmp_path / "live"
    proc = _run(
        [
            f"--input={video}",
            "--online",
            "--online_chunk=2",
            f"--output_dir={out}",
            f"--weights={path}",
            "--preset=lite",
            "--flow_method=dis_medium",
            "--nocrf",
        ]
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    frames = readers.read_video(video)
    flow = flow_lib.clip_flow(frames)
    runner = LVORunner(model)
    feats = runner.features(frames, flow)
    state, expected = None, []
    for s in range(0, 5, 2):
        coarse, state = runner.online(feats[s : s + 2], state)
        expected.append(runner.upsample(coarse, frames[s : s + 2]) > 0.5)
    expected = np.concatenate(expected)
    got = np.stack(
        [cv2.imread(str(out / f"{t:05d}.png"), cv2.IMREAD_UNCHANGED) > 0 for t in range(5)]
    )
    np.testing.assert_array_equal(got, expected)
    bad = _run(
        [
            "--input=rtsp://127.0.0.1:1/none",
            "--online",
            f"--output_dir={tmp_path / 'x'}",
            "--method=baseline",
        ]
    )
    assert bad.returncode != 0 and "cannot open video source" in bad.stderr


@pytest.mark.parametrize("prefetch", ["--prefetch=32", "--prefetch=0"])
def test_default_model_runs_at_its_height_and_masks_keep_the_video_size(davis, tmp_path, prefetch):
    """No --weights and no CRF flag: the shipped model, on frames resized to
    --process_height; the masks are the default model's probabilities on the
    resized frames refined by the CRF at that size and scaled back to the
    frames' size (an in-process reference), with inputs prepared on a thread
    or inline."""
    from lvo_tf import shipped
    from lvo_tf.data import flow as flow_lib
    from lvo_tf.data import readers

    out = tmp_path / "default"
    proc = _run(
        [
            f"--davis_root={davis}",
            f"--output_dir={out}",
            "--process_height=32",
            "--overlay=false",
            prefetch,
        ]
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((out / "segment_summary.json").read_text())
    assert summary["process_height"] == 32 and summary["crf"] is True
    model, info = shipped.load()
    assert summary["flow_method"] == info["flow_method"]  # the flow the model learned
    assert summary["model"] == info["name"] and summary["preset"] == info["preset"]
    reference = LVORunner(model)
    seq = readers.davis_sequences(str(davis), "val", ["a"])[0]
    full = readers.load_frames(seq)
    small = np.stack([readers.resize_to_height(f, 32) for f in full])
    assert small.shape[1:3] == (32, 45)
    flow = flow_lib.clip_flow(small, info["flow_method"])
    probabilities = reference.upsample(reference.coarse(reference.features(small, flow)), small)
    for t, stem in enumerate(seq.stems):
        mask = cv2.imread(str(out / "a" / f"{stem}.png"), cv2.IMREAD_GRAYSCALE)
        assert mask.shape == (40, 56)
        expected = run.to_mask(probabilities[t], small[t], full[t], crf.CRFParams())
        assert np.mean((mask > 127) != expected) < 0.01, t


def _texture_frames(folder, rng, n=4, shift=3, size=(60, 80)):
    os.makedirs(folder, exist_ok=True)
    base = cv2.GaussianBlur((rng.random((size[0], size[1] + shift * n, 3)) * 255), (0, 0), 2)
    for i in range(n):
        cv2.imwrite(str(folder / f"{i:05d}.png"), base[:, shift * i : shift * i + size[1]])


def test_compute_flow_fills_the_cache_segment_reads(tmp_path, rng):
    """compute_flow --process_height=H --output_dir=X, then segment
    --flow_dir=X at height H computes no flow: every field comes from X."""
    from lvo_tf.data import flow as flow_lib

    _texture_frames(tmp_path / "clip", rng)
    cache = tmp_path / "flowcache"
    made = subprocess.run(
        [
            sys.executable,
            "-m",
            "lvo_tf.compute_flow",
            f"--input={tmp_path / 'clip'}",
            f"--output_dir={cache}",
            "--process_height=40",
        ],
        capture_output=True,
        text=True,
    )
    assert made.returncode == 0, made.stderr[-2000:]
    fields = sorted(cache.glob("h40/dis_medium/clip-*/*.flo"))
    assert len(fields) == 3 and flow_lib.read_flo(str(fields[0])).shape == (40, 53, 2)
    stamps = {p: p.stat().st_mtime_ns for p in fields}
    proc = _run(
        [
            f"--input={tmp_path / 'clip'}",
            f"--output_dir={tmp_path / 'out'}",
            "--method=baseline",
            f"--flow_dir={cache}",
            "--process_height=40",
            "--nooverlay",
        ]
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert sorted(cache.rglob("*.flo")) == fields  # nothing new computed
    assert {p: p.stat().st_mtime_ns for p in fields} == stamps  # nor rewritten
    assert f"Flow cache: {cache / 'h40'}" in proc.stderr


def test_two_videos_of_one_name_never_share_flow(tmp_path, rng):
    """Two different `frames/` folders with one --flow_dir: each video gets
    its own cached flow, keyed by its frames' SHA-256; --nokeep_flow drops it."""
    from lvo_tf.data import flow as flow_lib

    _texture_frames(tmp_path / "one" / "frames", rng, shift=2)
    _texture_frames(tmp_path / "two" / "frames", rng, shift=6)
    cache = tmp_path / "shared_flow"
    for which in ("one", "two"):
        proc = _run(
            [
                f"--input={tmp_path / which / 'frames'}",
                f"--output_dir={tmp_path / which / 'out'}",
                "--method=baseline",
                f"--flow_dir={cache}",
                "--nooverlay",
            ]
        )
        assert proc.returncode == 0, proc.stderr[-2000:]
    folders = sorted(p.name for p in (cache / "full" / "dis_medium").iterdir())
    assert len(folders) == 2 and all(f.startswith("frames-") for f in folders)
    a, b = (
        flow_lib.read_flo(str(cache / "full" / "dis_medium" / f / "00000.flo")) for f in folders
    )
    medians = sorted([float(np.median(a[..., 0])), float(np.median(b[..., 0]))])
    np.testing.assert_allclose(medians, [-6, -2], atol=0.5)  # each video's own motion
    dropped = _run(
        [
            f"--input={tmp_path / 'one' / 'frames'}",
            f"--output_dir={tmp_path / 'three'}",
            "--method=baseline",
            f"--flow_dir={tmp_path / 'drop'}",
            "--nooverlay",
            "--nokeep_flow",
        ]
    )
    assert dropped.returncode == 0 and not list((tmp_path / "drop").rglob("*.flo"))

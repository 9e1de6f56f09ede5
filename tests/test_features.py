"""Cached stream features: labels at stride 8, the cache, and the extract_features binary."""

import json
import subprocess
import sys

import numpy as np
import pytest

from lvo_tf.data import features
from lvo_tf.models import build_lvo
from tests.fixtures import write_davis
from tests.test_models import TINY, clip


def test_labels_at_stride_are_cell_fractions():
    masks = np.zeros((1, 20, 24), bool)
    masks[0, 0:8, 8:16] = True  # one whole cell
    masks[0, 8:12, 0:8] = True  # half a cell
    labels = features.labels_at_stride(masks)
    assert labels.shape == (1, 4, 4, 1)  # padded to 32x32, then /8
    assert labels.dtype == np.float16
    expected = np.zeros((4, 4))
    expected[0, 1], expected[1, 0] = 1.0, 0.5
    np.testing.assert_array_equal(labels[0, ..., 0], expected)


def test_chunked_extraction_equals_one_pass(rng):
    model = build_lvo(TINY)
    streams = model.get_layer("streams")
    x = clip(rng, 1, 5, 24, 40)
    whole = np.asarray(streams([x["frames"], x["flow"]]))[0]
    chunked = features.extract(streams, x["frames"][0], x["flow"][0], chunk=2)
    np.testing.assert_allclose(chunked, whole.astype(np.float16), atol=1e-3)


def test_cache_refuses_other_channel_count(tmp_path):
    cache = features.FeatureCache(str(tmp_path))
    cache.write("a", np.zeros((2, 3, 4, 5)), np.zeros((2, 3, 4, 1)))
    with pytest.raises(ValueError, match="another preset"):
        cache.write("b", np.zeros((2, 3, 4, 6)), np.zeros((2, 3, 4, 1)))
    assert "a" in features.FeatureCache(str(tmp_path))  # the index survives a reload


def _extract_command(tmp_path, *flags):
    """extract_features on the DAVIS-layout folder tmp_path/data (val) into tmp_path/feats."""
    return [
        sys.executable,
        "-m",
        "lvo_tf.extract_features",
        f"--data_root={tmp_path / 'data'}",
        "--split=val",
        f"--output_dir={tmp_path / 'feats'}",
        *flags,
    ]


def test_extract_features_binary_resumes(tmp_path, rng):
    write_davis(str(tmp_path / "data"), rng, sequences=("s1", "s2"), frames=3, size=(40, 56))
    cmd = _extract_command(tmp_path, "--preset=lite")
    refused = subprocess.run(cmd, capture_output=True, text=True)
    assert refused.returncode != 0 and "no weights" in refused.stderr
    proc = subprocess.run(cmd + ["--allow_random_weights"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    index = json.loads((tmp_path / "feats" / "index.json").read_text())
    assert index["channels"] == 33
    assert index["sequences"]["s1"] == {"frames": 3, "size": [6, 8]}
    labels = np.load(tmp_path / "feats" / "s2.labels.npy")
    assert labels.shape == (3, 6, 8, 1) and 0 < labels.max() <= 1
    again = subprocess.run(cmd + ["--allow_random_weights"], capture_output=True, text=True)
    assert "2 already cached" in again.stderr


def test_extract_features_runs_a_packaged_model_on_the_flow_it_learned(tmp_path, rng):
    """--weights with a package_default manifest beside it: its network and
    its flow method (here dis_fast, whose fields land under dis_fast/); the
    features equal the packaged model's streams on that flow."""
    import shutil

    from lvo_tf import shipped
    from lvo_tf.data import flow as flow_lib
    from lvo_tf.data import readers

    write_davis(str(tmp_path / "data"), rng, sequences=("s1",), frames=3, size=(40, 56))
    source = shipped.weights_path(name="davis")  # a .weights.npz package
    weights = tmp_path / ("pkg" + source[source.index(".weights.") :])
    shutil.copy(source, weights)
    info = shipped.manifest(name="davis")
    info["flow_method"] = "dis_fast"
    (tmp_path / "pkg.json").write_text(json.dumps(info))
    proc = subprocess.run(
        _extract_command(tmp_path, f"--weights={weights}"), capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Optical flow: dis_fast" in proc.stderr
    assert sorted((tmp_path / "feats" / "flow").iterdir()) == [
        tmp_path / "feats" / "flow" / "dis_fast"
    ]
    model, _ = shipped.resolve(str(weights), "lite")
    seq = readers.davis_sequences(str(tmp_path / "data"), "val")[0]
    frames = readers.load_frames(seq)
    expected = features.extract(
        model.get_layer("streams"), frames, flow_lib.clip_flow(frames, "dis_fast"), chunk=8
    )
    got = np.load(tmp_path / "feats" / "s1.features.npy")
    np.testing.assert_allclose(got.astype(np.float32), expected.astype(np.float32), atol=2e-3)


def test_extract_features_resumes_after_sigkill_to_the_same_cache(tmp_path, rng):
    """kill -9 once some sequences are cached, then the same command: every
    sequence's features and labels equal an uninterrupted run's, and the index
    lists each sequence once."""
    import signal
    import time

    import keras

    from lvo_tf.models import weights

    names = tuple(f"s{i}" for i in range(8))
    write_davis(str(tmp_path / "data"), rng, sequences=names, frames=4, size=(64, 96))
    keras.utils.set_random_seed(5)
    path = str(tmp_path / "lite.weights.h5")
    weights.save_weights(build_lvo("lite"), path)

    def cmd(out):
        command = _extract_command(tmp_path, "--preset=lite", f"--weights={path}")
        return [a for a in command if not a.startswith("--output_dir=")] + [
            f"--output_dir={out}",
            f"--flow_dir={tmp_path / 'flow'}",
        ]

    whole = subprocess.run(cmd(tmp_path / "whole"), capture_output=True, text=True)
    assert whole.returncode == 0, whole.stderr[-2000:]
    killed = tmp_path / "killed"
    proc = subprocess.Popen(cmd(killed), stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline and len(list(killed.glob("s*.labels.npy"))) < 2:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert 2 <= len(list(killed.glob("s*.labels.npy"))) < len(names)  # killed mid-run
    resumed = subprocess.run(cmd(killed), capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "already cached" in resumed.stderr
    index = json.loads((killed / "index.json").read_text())
    assert sorted(index["sequences"]) == list(names)
    for name in names:
        for suffix in (".features.npy", ".labels.npy"):
            np.testing.assert_array_equal(
                np.load(killed / (name + suffix)), np.load(tmp_path / "whole" / (name + suffix))
            )

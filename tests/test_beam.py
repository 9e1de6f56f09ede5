"""segment_beam: the same masks as segment on DirectRunner with two worker
processes, dead letters for failing videos, idempotent retries."""

import json
import os
import subprocess
import sys

import cv2
import keras
import numpy as np
import pytest

from lvo_tf.inference import beam as beam_lib
from lvo_tf.inference import crf, run
from lvo_tf.models import build_lvo, weights
from tests.fixtures import write_davis

BEAM = ["--runner=DirectRunner", "--direct_num_workers=2", "--direct_running_mode=multi_processing"]


def _masks(folder):
    return {
        os.path.relpath(os.path.join(root, n), folder): open(os.path.join(root, n), "rb").read()
        for root, _, names in os.walk(folder)
        for n in names
        if n.endswith(".png") and "overlays" not in root
    }


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    keras.utils.set_random_seed(8)
    path = str(tmp_path_factory.mktemp("beam_model") / "lite.weights.h5")
    weights.save_weights(build_lvo("lite"), path)
    return path


def _run(module, *args):
    return subprocess.run(
        [sys.executable, "-m", module, *args], capture_output=True, text=True, timeout=900
    )


def test_masks_equal_segments_on_two_worker_processes(tmp_path, rng, model_file):
    root = str(tmp_path / "davis")
    write_davis(root, rng, sequences=("a", "b", "c"), frames=6, size=(48, 64))
    model = [
        f"--weights={model_file}",
        "--preset=lite",
        "--flow_method=dis_medium",
        "--window=4",
        "--overlap=1",
        "--save_probabilities",
    ]
    alone = _run(
        "lvo_tf.segment",
        f"--davis_root={root}",
        f"--output_dir={tmp_path / 'seg'}",
        "--nooverlay",
        *model,
    )
    assert alone.returncode == 0, alone.stderr[-2000:]
    beamed = _run(
        "lvo_tf.segment_beam",
        f"--davis_root={root}",
        f"--output_dir={tmp_path / 'beam'}",
        *model,
        *BEAM,
    )
    assert beamed.returncode == 0, beamed.stderr[-3000:]
    expected, got = _masks(tmp_path / "seg"), _masks(tmp_path / "beam")
    assert len(expected) == 3 * 6 * 2 and got.keys() == expected.keys()
    assert all(got[k] == expected[k] for k in expected)  # byte for byte
    summary = json.loads((tmp_path / "beam" / "segment_beam_summary.json").read_text())
    assert summary["failed"] == [] and summary["computed"] == summary["frames"] == 18
    again = _run(
        "lvo_tf.segment_beam",
        f"--davis_root={root}",
        f"--output_dir={tmp_path / 'beam'}",
        *model,
        *BEAM,
    )
    assert again.returncode == 0, again.stderr[-3000:]
    summary = json.loads((tmp_path / "beam" / "segment_beam_summary.json").read_text())
    assert summary["computed"] == 0 and _masks(tmp_path / "beam") == got  # resumed, unchanged


def _folder(path, rng, n=4):
    os.makedirs(path)
    base = cv2.GaussianBlur((rng.random((48, 64 + 3 * n, 3)) * 255).astype(np.uint8), (0, 0), 2)
    for i in range(n):
        cv2.imwrite(os.path.join(path, f"{i:05d}.png"), base[:, 3 * i : 3 * i + 64])


def test_a_failing_video_is_a_dead_letter(tmp_path, rng):
    for name in ("cats", "dogs", "broken"):
        _folder(str(tmp_path / "corpus" / name), rng)
    open(tmp_path / "corpus" / "broken" / "00002.png", "wb").close()  # zero bytes
    out = tmp_path / "out"
    proc = _run(
        "lvo_tf.segment_beam",
        f"--input_pattern={tmp_path / 'corpus' / '*'}",
        f"--output_dir={out}",
        "--method=baseline",
        *BEAM,
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert "1 of 3 videos failed (first: broken:" in last and "is an empty file" in last
    summary = json.loads((out / "segment_beam_summary.json").read_text())
    assert [r["video"] for r in summary["done"]] == ["cats", "dogs"]
    assert [r["video"] for r in summary["failed"]] == ["broken"]
    for name in ("cats", "dogs"):
        assert sorted(n for n in os.listdir(out / name) if n.endswith(".png")) == [
            f"{i:05d}.png" for i in range(4)
        ]
    broken = out / "broken"  # checked before any mask was written: none there
    assert not broken.exists() or not [n for n in os.listdir(broken) if n.endswith(".png")]


def test_a_retried_bundle_resumes_and_writes_the_same_bytes(tmp_path, rng):
    """process() twice on one video (what a runner's retry does), in one
    worker: the second call computes nothing and changes no byte."""
    _folder(str(tmp_path / "corpus" / "clip"), rng)
    options = run.SegmentOptions(method="baseline", crf=crf.CRFParams(), overlay=False)
    spec = beam_lib.SegmentSpec(
        output_dir=str(tmp_path / "out"), options=options, method="baseline"
    )
    fn = beam_lib.SegmentVideo(spec)
    fn.setup()
    (video,) = beam_lib.corpus(str(tmp_path / "corpus" / "*"))
    (first,) = list(fn.process(video))
    masks = _masks(tmp_path / "out")
    (second,) = list(fn.process(video))
    assert first["computed"] == 4 and second["computed"] == 0
    assert _masks(tmp_path / "out") == masks and len(masks) == 4


def test_corpus_refuses_two_videos_of_one_name(tmp_path, rng):
    _folder(str(tmp_path / "a" / "clip"), rng)
    _folder(str(tmp_path / "b" / "clip"), rng)
    with pytest.raises(ValueError, match="are both named 'clip'"):
        beam_lib.corpus(str(tmp_path / "*" / "clip"))
    with pytest.raises(ValueError, match="matches no video"):
        beam_lib.corpus(str(tmp_path / "nothing*"))


def test_feature_cache_equals_extract_features(tmp_path, rng, model_file):
    """extract_features_beam on two worker processes writes the cache
    extract_features writes: the same shards, the same index."""
    root = str(tmp_path / "data")
    write_davis(root, rng, sequences=("s1", "s2", "s3"), frames=4, size=(48, 64))
    common = [
        f"--data_root={root}",
        "--split=val",
        "--preset=lite",
        f"--weights={model_file}",
        f"--flow_dir={tmp_path / 'flow'}",
    ]
    alone = _run("lvo_tf.extract_features", *common, f"--output_dir={tmp_path / 'one'}")
    assert alone.returncode == 0, alone.stderr[-2000:]
    beamed = _run(
        "lvo_tf.extract_features_beam", *common, f"--output_dir={tmp_path / 'beam'}", *BEAM
    )
    assert beamed.returncode == 0, beamed.stderr[-3000:]
    index = json.loads((tmp_path / "beam" / "index.json").read_text())
    assert index == json.loads((tmp_path / "one" / "index.json").read_text())
    for name in ("s1", "s2", "s3"):
        for suffix in (".features.npy", ".labels.npy"):
            np.testing.assert_array_equal(
                np.load(tmp_path / "beam" / (name + suffix)),
                np.load(tmp_path / "one" / (name + suffix)),
            )


def test_a_failing_sequence_is_a_dead_letter_and_the_others_are_indexed(tmp_path, rng, model_file):
    """A frame whose header passes the up-front check but whose data is
    corrupt fails its sequence on the worker: one line naming it, exit 2,
    and the sequences that did extract are in the cache's index."""
    root = tmp_path / "data"
    write_davis(str(root), rng, sequences=("s1", "s2", "bad"), frames=4, size=(48, 64))
    frame = root / "JPEGImages" / "480p" / "bad" / "00002.jpg"
    data = bytearray(cv2.imencode(".png", rng.integers(0, 256, (48, 64, 3), np.uint8))[1])
    data[60:120] = bytes(60)  # the IHDR (size) intact, the IDAT's CRC broken
    frame.write_bytes(bytes(data))
    out = tmp_path / "beam"
    proc = _run(
        "lvo_tf.extract_features_beam",
        f"--data_root={root}",
        "--split=val",
        "--preset=lite",
        f"--weights={model_file}",
        f"--output_dir={out}",
        *BEAM,
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert "1 of 3 sequences failed (first: bad:" in last and "00002.jpg" in last, last
    summary = json.loads((out / "extract_beam_summary.json").read_text())
    assert [r["video"] for r in summary["done"]] == ["s1", "s2"]
    index = json.loads((out / "index.json").read_text())
    assert "bad" not in json.dumps(index) and "s1" in json.dumps(index)
    assert not (out / "bad.labels.npy").exists()

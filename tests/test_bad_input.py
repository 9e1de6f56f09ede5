"""The bad-input table (README, "Bad input"): every case ends with one line
naming the input, exit status 2, no traceback, and nothing half-written."""

import json
import os
import re
import shutil
import subprocess
import sys

import cv2
import numpy as np
import pytest

from tests.fixtures import write_davis, write_toy_features


def _frames(folder, rng, n=5, size=(48, 64), ext=".png"):
    os.makedirs(folder, exist_ok=True)
    base = (rng.random((size[0], size[1] + 4 * n, 3)) * 255).astype(np.uint8)
    base = cv2.GaussianBlur(base, (0, 0), 2)
    for i in range(n):
        cv2.imwrite(os.path.join(folder, f"{i:05d}{ext}"), base[:, 4 * i : 4 * i + size[1]])
    return folder


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Inputs good and bad, made once: {name: path}."""
    rng = np.random.default_rng(3)
    t = tmp_path_factory.mktemp("bad_input")
    w = {"tmp": str(t)}
    w["frames"] = _frames(str(t / "frames"), rng)
    w["davis"] = str(t / "davis")
    write_davis(w["davis"], rng, sequences=("a", "b"), frames=5, size=(40, 56))
    sets = t / "davis" / "ImageSets" / "480p"
    (sets / "malformed.txt").write_text("garbage\n")
    (sets / "gap.txt").write_text(
        "/JPEGImages/480p/a/00000.jpg /Annotations/480p/a/00000.png\n"
        "/JPEGImages/480p/a/00009.jpg /Annotations/480p/a/00009.png\n"
    )
    w["file"] = str(t / "a_file")
    (t / "a_file").write_text("not a folder")
    mixed = _frames(str(t / "mixed"), rng, n=3)
    cv2.imwrite(os.path.join(mixed, "00003.png"), np.zeros((40, 60, 3), np.uint8))
    w["mixed"] = mixed
    w["tiny"] = _frames(str(t / "tiny"), rng, n=3, size=(8, 8))
    empty = _frames(str(t / "empty_frame"), rng, n=3)
    open(os.path.join(empty, "00001.png"), "wb").close()
    w["empty_frame"] = empty
    truncated = _frames(str(t / "truncated"), rng, n=3, ext=".jpg")
    path = os.path.join(truncated, "00002.jpg")
    data = open(path, "rb").read()
    open(path, "wb").write(data[: len(data) // 2])
    w["truncated"] = truncated
    w["text_video"] = str(t / "notes.mp4")
    (t / "notes.mp4").write_text("this is text, not a video")
    w["corrupt_weights"] = str(t / "corrupt.weights.h5")
    (t / "corrupt.weights.h5").write_text("not hdf5")
    w["bare_weights"] = str(t / "bare.weights.h5")
    shutil.copy(str(t / "corrupt.weights.h5"), w["bare_weights"])  # exists; no manifest
    w["empty_results"] = str(t / "empty_results")
    os.makedirs(w["empty_results"])
    # A DAVIS root whose annotation does not fit its frames, with results of the right size.
    w["badann"] = str(t / "badann")
    write_davis(w["badann"], rng, sequences=("a",), frames=4, size=(40, 56))
    cv2.imwrite(
        os.path.join(w["badann"], "Annotations", "480p", "a", "00002.png"),
        np.zeros((20, 28), np.uint8),
    )
    w["results"] = str(t / "results")
    os.makedirs(os.path.join(w["results"], "a"))
    for i in range(4):
        cv2.imwrite(os.path.join(w["results"], "a", f"{i:05d}.png"), np.zeros((40, 56), np.uint8))
    w["features"] = write_toy_features(t / "features", rng, sequences=2, frames=6)
    w["onnx_exists"] = str(t / "model.onnx")
    (t / "model.onnx").write_text("an earlier export")
    w["unwritable"] = "/sys/lvo_tf_cannot_write" if os.geteuid() == 0 else "/lvo_tf_cannot_write"
    return w


# (case, binary, flags, message). {name} is a path of `world`.
CASES = [
    # --- outputs ---
    (
        "segment: output through a file",
        "lvo_tf.segment",
        ["--input={frames}", "--output_dir={file}/out", "--method=baseline"],
        "cannot write there",
    ),
    (
        "segment: unwritable output",
        "lvo_tf.segment",
        ["--input={frames}", "--output_dir={unwritable}/out", "--method=baseline"],
        "cannot write there",
    ),
    (
        "segment: output is the frames folder",
        "lvo_tf.segment",
        ["--input={frames}", "--output_dir={frames}", "--method=baseline"],
        "inside the input",
    ),
    (
        "segment: output inside DAVIS frames",
        "lvo_tf.segment",
        ["--davis_root={davis}", "--output_dir={davis}/JPEGImages/480p/a/x", "--method=baseline"],
        "inside the input",
    ),
    (
        "segment: output is the DAVIS root",
        "lvo_tf.segment",
        ["--davis_root={davis}", "--output_dir={davis}", "--method=baseline"],
        "is the input",
    ),
    (
        "compute_flow: output inside the frames",
        "lvo_tf.compute_flow",
        ["--input={frames}", "--output_dir={frames}/flow"],
        "inside the input",
    ),
    (
        "compute_flow: output through a file",
        "lvo_tf.compute_flow",
        ["--input={frames}", "--output_dir={file}/flow"],
        "cannot write there",
    ),
    (
        "extract_features: output is the data root",
        "lvo_tf.extract_features",
        ["--data_root={davis}", "--split=val", "--output_dir={davis}", "--allow_random_weights"],
        "is the input",
    ),
    (
        "evaluate: output through a file",
        "lvo_tf.evaluate",
        [
            "--davis_root={badann}",
            "--results_dir={results}",
            "--output_json={file}/x.json",
            "--split=all",
        ],
        "is a file, not a folder",
    ),
    (
        "export.onnx: existing output",
        "export.onnx",
        ["--saved_model_dir={tmp}", "--output={onnx_exists}"],
        "exists; pass --overwrite",
    ),
    (
        "onnx_client: output is the frames folder",
        "export.onnx_client",
        ["--model={onnx_exists}", "--frames_dir={frames}", "--output_dir={frames}"],
        "inside the input",
    ),
    (
        "train: output through a file",
        "lvo_tf.train",
        ["--feature_dir={features}", "--output_dir={file}/run", "--steps=1"],
        "a_file",
    ),
    (
        "synthesize: output through a file",
        "lvo_tf.synthesize",
        ["--output_dir={file}/synth", "--num_videos=1", "--frames=4"],
        "a_file",
    ),
    (
        "prepare_davis: output through a file",
        "lvo_tf.prepare_davis",
        ["--davis_root={davis}", "--split=val", "--output_dir={file}/prep"],
        "a_file",
    ),
    (
        "train_appearance: output through a file",
        "lvo_tf.train_appearance",
        ["--data_root={davis}", "--train_split=val", "--output_dir={file}/app", "--steps=1"],
        "a_file",
    ),
    (
        "extract_features: output through a file",
        "lvo_tf.extract_features",
        [
            "--data_root={davis}",
            "--split=val",
            "--output_dir={file}/feats",
            "--allow_random_weights",
        ],
        "cannot write there",
    ),
    (
        "export.saved_model: weights without a manifest",
        "export.saved_model",
        ["--export_dir={tmp}/servable", "--weights={bare_weights}"],
        "has no manifest beside it",
    ),
    ("demo: output through a file", "lvo_tf.demo", ["--output_dir={file}/demo"], "a_file"),
    # --- frames ---
    (
        "segment: frames of two sizes",
        "lvo_tf.segment",
        ["--input={mixed}", "--output_dir={tmp}/o_mixed", "--method=baseline"],
        "00003.png' is 60x40 but the first frame",
    ),
    (
        "segment: frames too small",
        "lvo_tf.segment",
        ["--input={tiny}", "--output_dir={tmp}/o_tiny", "--method=baseline"],
        "at least 16 pixels",
    ),
    (
        "segment: zero-byte frame",
        "lvo_tf.segment",
        ["--input={empty_frame}", "--output_dir={tmp}/o_empty", "--method=baseline"],
        "00001.png' is an empty file",
    ),
    (
        "segment: truncated JPEG",
        "lvo_tf.segment",
        ["--input={truncated}", "--output_dir={tmp}/o_trunc", "--method=baseline"],
        "00002.jpg' is a truncated JPEG",
    ),
    (
        "segment: text file as video",
        "lvo_tf.segment",
        ["--input={text_video}", "--output_dir={tmp}/o_text", "--method=baseline"],
        "cannot open video",
    ),
    (
        "compute_flow: frames of two sizes",
        "lvo_tf.compute_flow",
        ["--input={mixed}", "--output_dir={tmp}/f_mixed"],
        "must have one size",
    ),
    # --- split files ---
    (
        "segment: malformed split line",
        "lvo_tf.segment",
        [
            "--davis_root={davis}",
            "--split=malformed",
            "--output_dir={tmp}/o_split",
            "--method=baseline",
        ],
        "malformed.txt' line 1: expected",
    ),
    (
        "segment: split lists a missing frame",
        "lvo_tf.segment",
        ["--davis_root={davis}", "--split=gap", "--output_dir={tmp}/o_gap", "--method=baseline"],
        "lists 1 frame(s) of 'a' that do not exist",
    ),
    (
        "extract_features: split lists a missing frame",
        "lvo_tf.extract_features",
        [
            "--data_root={davis}",
            "--split=gap",
            "--output_dir={tmp}/x_gap",
            "--allow_random_weights",
        ],
        "do not exist",
    ),
    (
        "evaluate: malformed split line",
        "lvo_tf.evaluate",
        [
            "--davis_root={davis}",
            "--split=malformed",
            "--results_dir={results}",
            "--output_json={tmp}/e_split.json",
        ],
        "line 1: expected",
    ),
    # --- numbers ---
    (
        "segment: NaN CRF weight",
        "lvo_tf.segment",
        [
            "--input={frames}",
            "--output_dir={tmp}/o_nan",
            "--method=baseline",
            "--crf_gaussian_compat=nan",
        ],
        "finite weight",
    ),
    (
        "segment: negative CRF width",
        "lvo_tf.segment",
        [
            "--input={frames}",
            "--output_dir={tmp}/o_neg",
            "--method=baseline",
            "--crf_bilateral_sxy=-1",
        ],
        "positive finite width",
    ),
    # --- models ---
    (
        "segment: corrupt weights file",
        "lvo_tf.segment",
        [
            "--input={frames}",
            "--output_dir={tmp}/o_corrupt",
            "--weights={corrupt_weights}",
            "--preset=lite",
            "--flow_method=dis_medium",
        ],
        "not a readable HDF5 file",
    ),
    (
        "segment: weights without a manifest",
        "lvo_tf.segment",
        ["--input={frames}", "--output_dir={tmp}/o_bare", "--weights={bare_weights}"],
        "has no manifest beside it",
    ),
    (
        "onnx_client: text file as model",
        "export.onnx_client",
        ["--model={text_video}", "--frames_dir={frames}", "--output_dir={tmp}/c_text"],
        "is not a loadable ONNX model",
    ),
    # --- results ---
    (
        "evaluate: empty results folder",
        "lvo_tf.evaluate",
        ["--davis_root={davis}", "--results_dir={empty_results}", "--output_json={tmp}/e.json"],
        "lacks 10 of the 10 annotated frames' masks",
    ),
    (
        "evaluate: annotation of the wrong size",
        "lvo_tf.evaluate",
        [
            "--davis_root={badann}",
            "--split=all",
            "--results_dir={results}",
            "--output_json={tmp}/e_ann.json",
        ],
        "00002.png' is 28x20 but the frames of 'a' are 56x40",
    ),
    # --- serving ---
    (
        "serving_client: no gRPC server",
        "export.serving_client",
        [
            "--frames_dir={frames}",
            "--output_dir={tmp}/s_grpc",
            "--server=127.0.0.1:9",
            "--timeout=20",
        ],
        "did not answer",
    ),
    (
        "serving_client: no REST server",
        "export.serving_client",
        [
            "--frames_dir={frames}",
            "--output_dir={tmp}/s_rest",
            "--rest=http://127.0.0.1:9",
            "--timeout=20",
        ],
        "no TF Serving answer",
    ),
]


@pytest.mark.parametrize("case, binary, args, message", CASES, ids=[c[0] for c in CASES])
def test_bad_input_gets_one_line(world, case, binary, args, message):
    argv = [a.format(**world) for a in args]
    proc = subprocess.run(
        [sys.executable, "-m", binary, *argv], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 2, (case, proc.returncode, proc.stderr[-2000:])
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    last = proc.stderr.strip().splitlines()[-1]
    name = binary.split(".")[-1]
    assert last.startswith(f"{name}: error: ") and message in last, last
    for a in argv:  # nothing was written where output was asked for (unless it existed)
        flag, _, value = a.partition("=")
        if flag in ("--output_dir", "--output_json") and value.startswith(world["tmp"]):
            folder = value if flag == "--output_dir" else os.path.dirname(value)
            if os.path.isdir(folder) and folder not in world.values():
                leftovers = [n for n in os.listdir(folder) if not n.startswith(".")]
                assert leftovers == [], (case, leftovers)


def test_a_png_named_jpg_reads_as_the_png_it_is(tmp_path):
    """Not bad input: decoded by content, segmented as usual."""
    rng = np.random.default_rng(4)
    folder = _frames(str(tmp_path / "frames"), rng, n=4)
    for name in os.listdir(folder):
        os.rename(os.path.join(folder, name), os.path.join(folder, name.replace(".png", ".jpg")))
    out = tmp_path / "out"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "lvo_tf.segment",
            f"--input={folder}",
            f"--output_dir={out}",
            "--method=baseline",
            "--nooverlay",
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert sorted(n for n in os.listdir(out) if n.endswith(".png")) == [
        f"{i:05d}.png" for i in range(4)
    ]
    summary = json.loads((out / "segment_summary.json").read_text())
    assert summary["processed"] == 4


def test_helpshort_lists_the_trainers_library_flags():
    proc = subprocess.run(
        [sys.executable, "-m", "lvo_tf.train", "--helpshort"], capture_output=True, text=True
    )
    for flag in ("--steps", "--seed", "--checkpoint_every", "--feature_dir"):
        assert f"  {flag}:" in proc.stdout + proc.stderr, flag


def test_onnx_client_checks_inputs_as_the_saved_model_does():
    """ONNX Runtime would return NaN for NaN flow or fail deep inside for a
    clip of the wrong shape; the client refuses first, naming the input."""
    from export.onnx_runtime import check_inputs, segment

    frames = np.zeros((3, 16, 24, 3), np.uint8)
    flow = np.zeros((3, 16, 24, 2), np.float32)
    check_inputs(frames, flow)  # a good clip passes
    bad_flow = flow.copy()
    bad_flow[1, 2, 3, 0] = np.nan
    cases = [
        ((frames, bad_flow), "flow holds non-finite values"),
        ((frames[:0], flow[:0]), "T = 0"),
        ((frames, flow[:, :8]), "flow must be [T, H, W, 2] = (3, 16, 24, 2)"),
        ((frames.astype(np.float32), flow), "frames must be uint8"),
    ]
    for (f, g), message in cases:
        with pytest.raises(ValueError, match=re.escape(message)):
            segment(None, f, g)  # refused before the session is used

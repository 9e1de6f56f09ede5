"""Export and serving: SavedModel (TF Serving layout) and ONNX agree with Keras."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from export import serving
from export.serving_requests import predict_request, rest_body
from lvo_tf.data import synthetic
from lvo_tf.data.flow import clip_flow
from lvo_tf.models import build_lvo, build_memory_step


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    keras.utils.set_random_seed(4)
    model = build_lvo("lite")
    base = tmp_path_factory.mktemp("servables") / "lvo"
    target = serving.export_saved_model(model, str(base))
    onnx_path = str(base.parent / "lvo.onnx")
    serving.convert_to_onnx(target, onnx_path)
    return model, base, target, onnx_path


def _keras(model, frames, flow):
    return np.asarray(model({"frames": frames, "flow": flow}))


@pytest.mark.parametrize("shape", [(1, 3, 37, 50), (2, 2, 64, 48), (1, 1, 16, 24)])
def test_keras_saved_model_onnx_agree(exported, shape):
    model, _, target, onnx_path = exported
    frames, flow = serving.test_clip(shape[2], shape[3], shape[1], shape[0], seed=sum(shape))
    want = _keras(model, frames, flow)
    loaded, fn = serving.load_signature(target)
    saved = fn(frames=frames, flow=flow)["probabilities"].numpy()
    onnx = serving.run_onnx(serving.onnx_session(onnx_path), frames, flow)
    assert saved.shape == onnx.shape == shape + (1,)
    np.testing.assert_allclose(saved, want, atol=1e-4)
    np.testing.assert_allclose(onnx, want, atol=1e-4)


def test_memory_signature(exported, rng):
    model, _, target, _ = exported
    loaded, fn = serving.load_signature(target, serving.MEMORY_SIGNATURE)
    features = rng.standard_normal((1, 3, 5, 7, 33)).astype(np.float32)
    np.testing.assert_allclose(
        fn(features=features)["probabilities"].numpy(),
        np.asarray(model.get_layer("memory")(features)),
        atol=1e-5,
    )


def test_memory_step_signature_streams_like_keras(exported, rng):
    """The exported streaming step, fed three chunks with its state carried,
    equals the Keras step fed the same; over one whole chunk from a zero state
    it equals the memory signature."""
    model, _, target, _ = exported
    loaded, fn = serving.load_signature(target, serving.MEMORY_STEP_SIGNATURE)
    step = build_memory_step(model.get_layer("memory"))
    f = step.input["state"].shape[-1]
    features = rng.standard_normal((2, 6, 5, 7, 33)).astype(np.float32)
    keras_state = saved_state = np.zeros((2, 5, 7, f), np.float32)
    for s, e in [(0, 1), (1, 4), (4, 6)]:
        want = step({"features": features[:, s:e], "state": keras_state})
        got = fn(features=features[:, s:e], state=saved_state)
        np.testing.assert_allclose(got["probabilities"], want["probabilities"], atol=1e-5)
        np.testing.assert_allclose(got["state"], want["state"], atol=1e-5)
        keras_state, saved_state = np.asarray(want["state"]), got["state"].numpy()
    whole = fn(features=features, state=np.zeros((2, 5, 7, f), np.float32))
    _, memory_fn = serving.load_signature(target, serving.MEMORY_SIGNATURE)
    np.testing.assert_allclose(
        whole["probabilities"], memory_fn(features=features)["probabilities"], atol=1e-5
    )


def test_signature_refuses_wrong_inputs(exported):
    _, _, target, _ = exported
    loaded, fn = serving.load_signature(target)
    frames, flow = serving.test_clip()
    bad = {
        "dtype": dict(frames=frames.astype(np.float32), flow=flow),
        "rank": dict(frames=frames[0], flow=flow[0]),
        "channels": dict(frames=frames, flow=np.concatenate([flow, flow[..., :1]], -1)),
    }
    for name, kwargs in bad.items():  # typed tensors, as the server passes them
        with pytest.raises((TypeError, ValueError, tf.errors.InvalidArgumentError)):
            fn(**{k: tf.constant(v) for k, v in kwargs.items()})
            pytest.fail(f"wrong {name} was accepted")
    with pytest.raises(tf.errors.InvalidArgumentError, match="same batch, time, height, width"):
        fn(frames=frames, flow=flow[:, :2])


def test_versions_and_atomic_export(exported, tmp_path):
    model, base, target, _ = exported
    assert os.path.basename(target) == "1"
    stamp = os.path.getmtime(os.path.join(target, "saved_model.pb"))
    second = serving.export_saved_model(model, str(base))
    assert os.path.basename(second) == "2"
    assert os.path.getmtime(os.path.join(target, "saved_model.pb")) == stamp
    with pytest.raises(FileExistsError):
        serving.export_saved_model(model, str(base), version=1)
    assert sorted(os.listdir(base)) == ["1", "2"]  # no temporary folders left


def test_saved_model_cli_lists_the_signatures(exported):
    _, _, target, _ = exported
    cli = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
    out = subprocess.run([cli, "show", "--dir", target, "--all"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    for word in (
        "signature_def['serving_default']",
        "signature_def['memory']",
        "signature_def['memory_step']",
        "inputs['state']",
        "inputs['frames']",
        "inputs['flow']",
        "outputs['probabilities']",
        "dtype: DT_UINT8",
        "shape: (-1, -1, -1, -1, 3)",
    ):
        assert word in out.stdout, word


def test_grpc_and_rest_requests_run_like_the_server(exported):
    """Requests for a real clip, decoded and run the way TF Serving does."""
    model, _, target, _ = exported
    video = synthetic.render_video(
        synthetic.video_rng(0, 1), synthetic.WorldConfig(height=48, width=64, frames=4)
    )
    frames, flow = video.frames[None], clip_flow(video.frames)[None]
    want = _keras(model, frames, flow)
    loaded, fn = serving.load_signature(target)
    request = predict_request(frames, flow)
    assert request.model_spec.signature_name == "serving_default"
    inputs = {k: tf.make_ndarray(v) for k, v in request.inputs.items()}
    np.testing.assert_array_equal(inputs["frames"], frames)
    got = fn(**{k: tf.constant(v) for k, v in inputs.items()})["probabilities"].numpy()
    np.testing.assert_allclose(got, want, atol=1e-4)
    body = json.loads(rest_body(frames, flow))
    got = fn(
        frames=tf.constant(np.asarray(body["inputs"]["frames"], np.uint8)),
        flow=tf.constant(np.asarray(body["inputs"]["flow"], np.float32)),
    )["probabilities"].numpy()
    np.testing.assert_allclose(got, want, atol=1e-3)  # REST flow is rounded to 1e-4 px


def test_onnx_binary_refuses_a_mismatch(exported, tmp_path):
    _, _, target, _ = exported
    out = tmp_path / "strict.onnx"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "export.onnx",
            f"--saved_model_dir={target}",
            f"--output={out}",
            "--atol=0",
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode != 0 and "differs from the SavedModel" in proc.stderr
    assert not out.exists() and list(tmp_path.iterdir()) == []
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "export.onnx",
            f"--saved_model_dir={tmp_path / 'none'}",
            f"--output={out}",
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode != 0 and "--saved_model_dir" in proc.stderr


def test_onnx_client_segments_without_tensorflow(exported, tmp_path):
    _, _, _, onnx_path = exported
    import cv2

    folder = tmp_path / "frames"
    os.makedirs(folder)
    video = synthetic.render_video(
        synthetic.video_rng(0, 2), synthetic.WorldConfig(height=48, width=64, frames=3)
    )
    for i, f in enumerate(video.frames):
        cv2.imwrite(str(folder / f"{i:03d}.png"), f[..., ::-1])
    script = (
        "import runpy, sys; sys.argv = ['onnx_client', '--model={m}', '--frames_dir={f}', "
        "'--output_dir={o}']\n"
        "try:\n    runpy.run_module('export.onnx_client', run_name='__main__')\n"
        "except SystemExit:\n    pass\n"
        "assert 'tensorflow' not in sys.modules, 'tensorflow was imported'\n"
        "print('NO_TF')"
    ).format(m=onnx_path, f=folder, o=tmp_path / "masks")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert proc.returncode == 0 and "NO_TF" in proc.stdout, proc.stderr[-2000:]
    assert sorted(os.listdir(tmp_path / "masks")) == ["000.png", "001.png", "002.png"]


def test_saved_model_binary(tmp_path):
    base = tmp_path / "servables" / "lvo"
    refused = subprocess.run(
        [
            sys.executable,
            "-m",
            "export.saved_model",
            f"--export_dir={base}",
            f"--weights={tmp_path / 'none.weights.h5'}",
        ],
        capture_output=True,
        text=True,
    )
    assert refused.returncode != 0 and "no such file" in refused.stderr
    assert "Traceback" not in refused.stderr and not base.exists()
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "export.saved_model",
            f"--export_dir={base}",
            "--allow_random_weights",
            "--version=7",
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (base / "7" / "saved_model.pb").is_file()


@pytest.mark.slow
@pytest.mark.parametrize("name", [None, "fast"])
def test_the_default_model_is_what_gets_exported_without_weights(tmp_path, name):
    """No --weights: the shipped default model, checked against Keras by the
    binary itself; here also against shipped.load() directly. The same for
    --weights=fast (its network: processing height and CRF are segment's)."""
    from lvo_tf import shipped

    base = tmp_path / "servables" / "default"
    proc = subprocess.run(
        [sys.executable, "-m", "export.saved_model", f"--export_dir={base}"]
        + ([f"--weights={name}"] if name else []),
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    model, _ = shipped.load(name=name or shipped.DEFAULT)
    rng = np.random.default_rng(3)
    frames = rng.integers(0, 256, (1, 3, 48, 64, 3)).astype("uint8")
    flow = rng.normal(0, 2, (1, 3, 48, 64, 2)).astype("float32")
    served = tf.saved_model.load(str(base / "1")).signatures["serving_default"]
    got = served(frames=tf.constant(frames), flow=tf.constant(flow))
    expected = np.asarray(model({"frames": frames, "flow": flow}))
    np.testing.assert_allclose(next(iter(got.values())).numpy(), expected, atol=1e-4)


@pytest.mark.slow
def test_paper_preset_exports_and_converts(tmp_path):
    keras.utils.set_random_seed(8)
    model = build_lvo("paper")
    target = serving.export_saved_model(model, str(tmp_path / "paper"))
    serving.check_saved_model(model, target)
    onnx_path = str(tmp_path / "paper.onnx")
    serving.convert_to_onnx(target, onnx_path)
    assert serving.check_onnx(target, onnx_path) < 1e-4

"""The LVO network: shapes, topology, composition, parity and input checks."""

import cv2
import keras
import numpy as np
import pytest
import tensorflow as tf

from lvo_tf.models import (
    LVOConfig,
    build_deeplab_large_fov,
    build_lvo,
    build_memory,
    build_memory_step,
    build_mpnet,
    resolve_config,
)
from lvo_tf.models.camera import camera_flow, residual_percentile
from lvo_tf.models.frame_ops import (
    CAFFE_MEAN_BGR,
    CAFFE_MEAN_RGB,
    CaffePreprocess,
    FlowEncoding,
    PadFrames,
    UpsampleToFrames,
)
from lvo_tf.models.weights import get_part
from tests.parity import assert_all_agree, run_all_ways

TINY = LVOConfig(
    appearance_width=1 / 16,
    appearance_channels=8,
    motion_width=1 / 16,
    memory_filters=4,
    memory_kernel=3,
    head_filters=4,
)


def clip(rng, b, t, h, w, flow_scale=3.0):
    return {
        "frames": rng.integers(0, 256, (b, t, h, w, 3)).astype("uint8"),
        "flow": (flow_scale * rng.standard_normal((b, t, h, w, 2))).astype("float32"),
    }


@pytest.fixture(scope="module")
def tiny_model():
    keras.utils.set_random_seed(7)
    return build_lvo(TINY)


@pytest.mark.parametrize("shape", [(1, 1, 8, 8), (2, 3, 37, 50), (1, 2, 64, 48), (1, 4, 17, 9)])
def test_output_shapes_any_size(tiny_model, rng, shape):
    out = np.asarray(tiny_model(clip(rng, *shape)))
    assert out.shape == shape + (1,)
    assert out.dtype == np.float32
    assert 0.0 <= out.min() and out.max() <= 1.0


def test_vgg16_part_matches_keras_applications():
    deeplab = build_deeplab_large_fov(1.0)
    conv_params = sum(
        deeplab.get_layer(f"conv{b}_{i}").count_params()
        for b, n in ((1, 2), (2, 2), (3, 3), (4, 3), (5, 3))
        for i in range(1, n + 1)
    )
    vgg = keras.applications.VGG16(include_top=False, weights=None)
    assert conv_params == vgg.count_params() == 14_714_688
    assert deeplab.get_layer("fc6").count_params() == 3 * 3 * 512 * 1024 + 1024
    dilations = {
        layer.name: layer.dilation_rate for layer in deeplab.layers if "conv" in layer.name
    }
    assert dilations["conv5_3"] == (2, 2) and dilations["conv4_3"] == (1, 1)
    assert deeplab.get_layer("fc6").dilation_rate == (12, 12)
    strides = [deeplab.get_layer(f"pool{i}").strides for i in range(1, 6)]
    assert strides == [(2, 2)] * 3 + [(1, 1)] * 2


def test_output_strides():
    deeplab = build_deeplab_large_fov(1 / 16)
    assert deeplab(np.zeros((1, 37, 50, 3), "uint8")).shape == (1, 5, 7, 64)
    mpnet = build_mpnet(1 / 16)
    assert mpnet(np.zeros((2, 64, 48, 2), "float32")).shape == (2, 16, 12, 1)


def test_paper_preset_frozen_parts_and_feature_channels():
    model = build_lvo("paper")
    assert resolve_config("paper").feature_channels == 129
    assert get_part(model, "deeplab").trainable_weights == []
    assert get_part(model, "motion").trainable_weights == []
    trainable = {v.path.split("/")[0] for v in model.trainable_weights}
    assert trainable == {"reduce1", "reduce2", "visual_memory", "head_conv", "classifier"}
    memory = get_part(model, "memory")
    assert memory.input.shape[-1] == 129
    gru = memory.get_layer("visual_memory").forward_layer
    assert (gru.filters, gru.kernel_size) == (64, (7, 7))
    with pytest.raises(ValueError, match="unknown LVO preset 'huge'"):
        build_lvo("huge")


def test_full_model_equals_streams_then_feature_model(tiny_model, rng):
    x = clip(rng, 2, 3, 37, 50)
    streams = tiny_model.get_layer("streams")
    features = streams([x["frames"], x["flow"]])
    assert features.shape == (2, 3, 48 // 8, 64 // 8, TINY.feature_channels)
    coarse = get_part(tiny_model, "memory")(features)
    expected = UpsampleToFrames(8)(coarse, x["frames"])
    np.testing.assert_allclose(tiny_model(x), expected, atol=1e-6)


def test_forward_only_config_builds():
    memory = build_memory(TINY.replace(memory_type="forward"))
    out = memory(np.zeros((1, 3, 4, 5, TINY.feature_channels), "float32"))
    assert out.shape == (1, 3, 4, 5, 1)
    assert memory.get_layer("visual_memory").filters == TINY.memory_filters


def test_no_memory_config_is_per_frame(rng):
    """memory_type="none": each frame's output depends on that frame alone."""
    memory = build_memory(TINY.replace(memory_type="none"))
    x = rng.normal(size=(1, 4, 6, 7, TINY.feature_channels)).astype("float32")
    whole = np.asarray(memory(x))
    for t in range(4):
        np.testing.assert_allclose(
            np.asarray(memory(x[:, t : t + 1]))[:, 0], whole[:, t], atol=1e-6
        )
    with pytest.raises(ValueError, match="memory_type must be"):
        build_memory(TINY.replace(memory_type="sideways"))


@pytest.mark.parametrize("streams", ["motion", "appearance"])
def test_memory_streams_ignores_the_other_stream(rng, streams):
    """memory_streams="motion": the memory's output is that of the same
    weights fed features whose appearance channels are zero, whatever those
    channels hold (and the converse for "appearance")."""
    keras.utils.set_random_seed(5)
    masked = build_memory(TINY.replace(memory_streams=streams))
    both = build_memory(TINY)
    both.set_weights(masked.get_weights())  # the mask adds no weights
    x = rng.normal(size=(1, 3, 6, 7, TINY.feature_channels)).astype("float32")
    zeroed = x.copy()
    if streams == "motion":
        zeroed[..., :-1] = 0
    else:
        zeroed[..., -1] = 0
    reference = np.asarray(both(zeroed))
    np.testing.assert_allclose(np.asarray(masked(x)), reference, atol=1e-6)
    assert np.abs(np.asarray(both(x)) - reference).max() > 1e-4  # the channels matter
    with pytest.raises(ValueError, match="memory_streams must be"):
        build_memory(TINY.replace(memory_streams="audio"))


@pytest.mark.parametrize("memory_type", ["bidirectional", "forward"])
@pytest.mark.parametrize("streams,mix", [("both", 0.0), ("motion", 0.25)])
def test_memory_step_on_the_whole_clip_is_the_memory(rng, memory_type, streams, mix):
    """The streaming step shares the memory's weights (adds none) and, fed a
    whole clip with a zero state, gives the memory's output, stream mask and
    motion mix included; its state is the forward memory's last hidden state."""
    keras.utils.set_random_seed(8)
    config = TINY.replace(memory_type=memory_type, memory_streams=streams, motion_mix=mix)
    memory = build_memory(config)
    step = build_memory_step(memory)
    assert len(step.weights) == len(memory.weights)
    layer = memory.get_layer("visual_memory")
    forward = layer.forward_layer if memory_type == "bidirectional" else layer
    for b, t, h, w in [(1, 1, 5, 6), (2, 4, 6, 7), (1, 7, 3, 9)]:
        x = rng.normal(size=(b, t, h, w, TINY.feature_channels)).astype("float32")
        zero = np.zeros((b, h, w, TINY.memory_filters), "float32")
        out = step({"features": x, "state": zero})
        np.testing.assert_allclose(out["probabilities"], np.asarray(memory(x)), atol=1e-6)
        masked = memory.get_layer("stream_mask")(x)
        np.testing.assert_allclose(out["state"], np.asarray(forward(masked))[:, -1], atol=1e-6)
    with pytest.raises(ValueError, match="no state to carry"):
        build_memory_step(build_memory(TINY.replace(memory_type="none")))


@pytest.mark.parametrize("streams,mix", [("both", 0.0), ("motion", 0.25)])
def test_forward_memory_step_carried_chunk_by_chunk_is_the_whole_clip(rng, streams, mix):
    """A forward-only memory streamed in chunks of 2, 1 and 4 frames, its state
    carried, gives the whole clip's output: eagerly and in one graph traced
    once for every chunk length."""
    keras.utils.set_random_seed(9)
    config = TINY.replace(memory_type="forward", memory_streams=streams, motion_mix=mix)
    memory = build_memory(config)
    step = build_memory_step(memory)
    c, f = TINY.feature_channels, TINY.memory_filters
    graph = tf.function(
        lambda x, h: step({"features": x, "state": h}),
        input_signature=[
            tf.TensorSpec((None, None, None, None, c), tf.float32),
            tf.TensorSpec((None, None, None, f), tf.float32),
        ],
    )
    x = rng.normal(size=(2, 7, 5, 6, c)).astype("float32")
    want = np.asarray(memory(x))
    for run in (lambda a, h: step({"features": a, "state": h}), graph):
        state, parts = np.zeros((2, 5, 6, f), "float32"), []
        for s, e in [(0, 2), (2, 3), (3, 7)]:
            out = run(x[:, s:e], state)
            parts.append(np.asarray(out["probabilities"]))
            state = np.asarray(out["state"])
        np.testing.assert_allclose(np.concatenate(parts, axis=1), want, atol=1e-5)
    assert graph.experimental_get_tracing_count() == 1


def test_motion_mix_is_the_weighted_mean_of_memory_and_motion(rng):
    """motion_mix=w: (1 - w) * the memory's own output + w * the motion
    channel of the features, with the same (and no extra) weights."""
    keras.utils.set_random_seed(6)
    config = TINY.replace(memory_streams="motion")
    plain = build_memory(config)
    mixed = build_memory(config.replace(motion_mix=0.25))
    assert len(mixed.get_weights()) == len(plain.get_weights())
    mixed.set_weights(plain.get_weights())
    x = rng.uniform(size=(1, 4, 6, 7, TINY.feature_channels)).astype("float32")
    expected = 0.75 * np.asarray(plain(x)) + 0.25 * x[..., -1:]
    np.testing.assert_allclose(np.asarray(mixed(x)), expected, atol=1e-6)
    with pytest.raises(ValueError, match="motion_mix must be in"):
        build_memory(config.replace(motion_mix=1.5))
    with pytest.raises(ValueError, match="motion_mix: the memory reads no motion"):
        build_memory(TINY.replace(memory_streams="appearance", motion_mix=0.25))


@pytest.mark.parametrize("mix", [0.0, 0.25])
def test_motion_only_memory_exports_with_parity(rng, tmp_path, mix):
    keras.utils.set_random_seed(4)
    model = build_lvo(TINY.replace(memory_streams="motion", motion_mix=mix))
    results = run_all_ways(model, [clip(rng, 1, 3, 37, 50), clip(rng, 1, 2, 24, 16)], str(tmp_path))
    assert_all_agree(results, atol=1e-5)


def test_eager_graph_saved_model_onnx_agree(rng, tmp_path):
    keras.utils.set_random_seed(3)
    model = build_lvo("lite")
    feeds = [clip(rng, 2, 3, 37, 50), clip(rng, 1, 1, 64, 48)]
    results = run_all_ways(model, feeds, str(tmp_path))
    assert results["graph_traces"] == 1
    assert_all_agree(results, atol=1e-5)


# === Layers against independent references ===


def test_caffe_preprocess_matches_numpy(rng):
    rgb = rng.integers(0, 256, (2, 5, 4, 3)).astype("uint8")
    expected = rgb[..., ::-1].astype("float32") - np.array(CAFFE_MEAN_BGR, "float32")
    np.testing.assert_allclose(CaffePreprocess()(rgb), expected, atol=1e-4)


def test_flow_encodings_match_numpy(rng):
    flow = rng.standard_normal((2, 4, 5, 2)).astype("float32") * 10
    flow[0, 0, 0] = 0.0
    np.testing.assert_allclose(FlowEncoding("uv", 20.0)(flow), flow / 20.0, atol=1e-6)
    out = np.asarray(FlowEncoding("angle_magnitude", 10.0)(flow))
    angle = np.arctan2(flow[..., 1], flow[..., 0])
    magnitude = np.hypot(flow[..., 0], flow[..., 1])
    np.testing.assert_allclose(out[..., 2], magnitude / 10.0, atol=1e-5)
    np.testing.assert_allclose(out[1, ..., 0], np.cos(angle[1]), atol=1e-5)
    np.testing.assert_allclose(out[1, ..., 1], np.sin(angle[1]), atol=1e-5)
    np.testing.assert_array_equal(out[0, 0, 0], [1.0, 0.0, 0.0])
    with pytest.raises(ValueError, match="representation"):
        FlowEncoding("polar")


def numpy_camera_flow(flow, iterations=5, min_scale=0.5, model="affine", stride=1):
    """Reference IRLS fit (affine or quadratic) with Cauchy weights on every
    `stride`-th pixel, solved by np.linalg in float64, evaluated everywhere."""
    n, h, w, _ = flow.shape
    ys, xs = np.mgrid[0:h, 0:w]
    x = xs * 2.0 / max(w - 1, 1) - 1
    y = ys * 2.0 / max(h - 1, 1) - 1
    columns = [np.ones_like(x), x, y]
    if model == "quadratic":
        columns += [x * x, x * y, y * y]
    full = np.stack(columns, -1)
    design = full[::stride, ::stride].reshape(-1, len(columns))
    fitted = np.zeros_like(flow, dtype=np.float64)
    for k in range(n):
        f = flow[k, ::stride, ::stride].reshape(-1, 2).astype(np.float64)
        weights = np.ones(len(f))
        for _ in range(iterations):
            weights = weights / weights.sum()
            a = design.T @ (weights[:, None] * design)
            coef = np.linalg.solve(a, design.T @ (weights[:, None] * f))
            r2 = ((f - design @ coef) ** 2).sum(-1)
            c2 = max((weights * r2).sum(), min_scale**2)
            weights = 1 / (1 + r2 / c2)
        fitted[k] = full @ coef
    return fitted


def test_camera_flow_matches_numpy_and_ignores_movers(rng):
    h, w = 48, 80
    ys, xs = np.mgrid[0:h, 0:w]
    x, y = xs * 2 / (w - 1) - 1, ys * 2 / (h - 1) - 1
    camera = np.stack([1.5 + 0.8 * x - 0.3 * y, -2 + 0.2 * x + 0.5 * y], -1).astype("float32")
    moving = camera.copy()
    moving[10:26, 20:44] += [6.0, -4.0]  # 10% of the frame moves on its own
    noisy = camera + rng.normal(0, 0.3, camera.shape).astype("float32")
    flow = np.stack([camera, moving, noisy])
    fitted = np.asarray(camera_flow(tf.constant(flow)))
    np.testing.assert_allclose(fitted, numpy_camera_flow(flow), atol=1e-3)
    strided = np.asarray(camera_flow(tf.constant(flow), stride=4))
    np.testing.assert_allclose(strided, numpy_camera_flow(flow, stride=4), atol=1e-3)
    # The strided fit is as good: equal without noise, as close to the true
    # camera with it (16x fewer samples of 0.3-pixel noise on this small frame).
    assert np.abs(strided[:2] - fitted[:2]).max() < 0.05
    assert np.abs(strided[2] - camera).max() < 0.2 and np.abs(fitted[2] - camera).max() < 0.2
    encoded = FlowEncoding("residual", 1.0, camera_stride=4)(flow)
    np.testing.assert_allclose(encoded, flow - strided, atol=1e-5)
    with pytest.raises(ValueError, match="stride"):
        camera_flow(tf.constant(flow), stride=0)
    np.testing.assert_allclose(fitted[0], camera, atol=1e-4)  # exact for an affine camera
    assert np.abs(fitted[1] - camera).max() < 0.05  # the mover barely pulls the fit
    residual = np.asarray(FlowEncoding("uv_residual", 2.0)(flow[1:2]))[0]
    np.testing.assert_allclose(residual[..., :2], moving / 2.0, atol=1e-6)
    assert np.abs(residual[15, 30, 2:] - [3.0, -2.0]).max() < 0.03
    assert np.abs(residual[40, 70, 2:]).max() < 0.03
    only = np.asarray(FlowEncoding("residual", 2.0)(flow[1:2]))[0]
    np.testing.assert_allclose(only, residual[..., 2:], atol=1e-6)


def homography_flow(h, w, matrix):
    """Flow of the pixel grid under a 3x3 homography (pixel coordinates)."""
    ys, xs = np.mgrid[0:h, 0:w].astype("float64")
    points = np.stack([xs, ys, np.ones_like(xs)], -1) @ np.asarray(matrix).T
    return (points[..., :2] / points[..., 2:] - np.stack([xs, ys], -1)).astype("float32")


def test_quadratic_camera_follows_perspective_that_affine_cannot(rng):
    h, w = 48, 80
    # A fast pan with perspective (the kind of camera motion of a hand-held
    # follow shot): translation, rotation and a projective term.
    pan = homography_flow(h, w, [[1.02, 0.01, 9.0], [-0.01, 1.0, 1.5], [4e-4, 1e-4, 1.0]])
    moving = pan.copy()
    moving[12:24, 30:42] += [-5.0, 3.0]  # 4% of the frame moves on its own
    flow = np.stack([pan, moving, pan + rng.normal(0, 0.3, pan.shape).astype("float32")])
    quadratic = np.asarray(camera_flow(tf.constant(flow), model="quadratic"))
    np.testing.assert_allclose(
        quadratic, numpy_camera_flow(flow, model="quadratic"), atol=2e-3, rtol=1e-4
    )
    affine = np.asarray(camera_flow(tf.constant(flow)))
    background = np.ones((h, w), bool)
    background[12:24, 30:42] = False
    quadratic_error = np.linalg.norm(quadratic[1] - pan, axis=-1)[background]
    affine_error = np.linalg.norm(affine[1] - pan, axis=-1)[background]
    assert np.percentile(quadratic_error, 90) < 0.1
    assert np.percentile(affine_error, 90) > 3 * np.percentile(quadratic_error, 90)
    residual = np.asarray(FlowEncoding("residual", 1.0, "quadratic")(flow[1:2]))[0]
    assert np.abs(residual[18, 36] - [-5.0, 3.0]).max() < 0.2
    with pytest.raises(ValueError, match="camera model"):
        camera_flow(tf.constant(flow), model="projective")
    with pytest.raises(ValueError, match="camera model"):
        FlowEncoding("residual", 1.0, "projective")


def test_residual_percentile_is_the_kth_largest_magnitude(rng):
    residual = rng.normal(0, 2, (3, 13, 17, 2)).astype("float32")
    magnitude = np.linalg.norm(residual, axis=-1).reshape(3, -1)
    for fraction in (0.01, 0.1, 0.5, 1.0):
        k = max(int(np.ceil(fraction * magnitude.shape[1])), 1)
        expected = np.sort(magnitude, axis=1)[:, -k]
        got = np.asarray(residual_percentile(tf.constant(residual), fraction))
        assert got.shape == (3, 1, 1, 1)
        np.testing.assert_allclose(got[:, 0, 0, 0], expected, rtol=1e-5)


def test_gain_control_brings_each_frames_99th_percentile_to_the_peak(rng):
    h, w = 40, 64
    camera = homography_flow(h, w, [[1.0, 0.0, 3.0], [0.0, 1.0, -1.0], [0.0, 0.0, 1.0]])
    frames = []
    for speed in (1.0, 20.0, 0.05):  # slow, fast, below MIN_PEAK
        f = camera + rng.normal(0, 0.02, camera.shape).astype("float32")
        f[5:25, 10:40] += [speed, 0.0]  # 23% of the frame
        frames.append(f)
    flow = np.stack(frames)
    layer = FlowEncoding("residual", 20.0, "quadratic", peak=5.0)
    out = np.asarray(layer(flow))
    residual = flow - numpy_camera_flow(flow, model="quadratic")
    k = int(np.ceil(0.01 * h * w))
    p99 = np.sort(np.linalg.norm(residual, axis=-1).reshape(3, -1), axis=1)[:, -k]
    gain = 5.0 / np.maximum(p99, FlowEncoding.MIN_PEAK)
    np.testing.assert_allclose(out, residual * gain[:, None, None, None] / 20.0, atol=2e-4)
    # A 1-pixel and a 20-pixel mover both come out at about 5 pixels (the slow
    # one pulls the robust fit a little); a frame whose residual is under
    # MIN_PEAK everywhere gets the largest gain, peak / MIN_PEAK, and stays
    # well under the peak.
    assert 3.0 < 20 * out[0, 15, 25, 0] <= 5.2 and abs(20 * out[1, 15, 25, 0] - 5) < 0.2
    assert gain[2] == pytest.approx(5.0 / FlowEncoding.MIN_PEAK)
    assert 20 * np.abs(out[2]).max() < 0.4 * 5.0
    # Without the gain the slow mover is 20x weaker than the fast one.
    plain = np.asarray(FlowEncoding("residual", 20.0, "quadratic")(flow))
    assert plain[1, 15, 25, 0] > 15 * plain[0, 15, 25, 0]
    restored = FlowEncoding.from_config(layer.get_config())
    assert (restored.representation, restored.camera_model, restored.peak) == (
        "residual",
        "quadratic",
        5.0,
    )
    with pytest.raises(ValueError, match="stride"):
        FlowEncoding("residual", 20.0, camera_stride=0)
    with pytest.raises(ValueError, match="residual representation"):
        FlowEncoding("uv", 20.0, peak=5.0)
    with pytest.raises(ValueError, match="peak"):
        FlowEncoding("residual", 20.0, peak=-1.0)


def test_pad_frames_uses_channel_values(rng):
    x = rng.integers(0, 256, (1, 2, 5, 7, 3)).astype("float32")
    out = np.asarray(PadFrames(16, CAFFE_MEAN_RGB)(x))
    assert out.shape == (1, 2, 16, 16, 3)
    np.testing.assert_allclose(out[:, :, :5, :7], x, atol=1e-4)
    np.testing.assert_allclose(
        out[:, :, 5:, :], np.broadcast_to(CAFFE_MEAN_RGB, out[:, :, 5:].shape), atol=1e-4
    )
    assert PadFrames(16)(np.zeros((1, 1, 32, 16, 2))).shape == (1, 1, 32, 16, 2)


def test_upsampling_matches_opencv_bilinear(rng):
    coarse = rng.random((1, 2, 6, 8, 1)).astype("float32")
    frames = np.zeros((1, 2, 45, 61, 3), "uint8")
    out = np.asarray(UpsampleToFrames(8)(coarse, frames))
    assert out.shape == (1, 2, 45, 61, 1)
    for t in range(2):
        # OpenCV's INTER_LINEAR uses the same half-pixel-centre convention.
        reference = cv2.resize(coarse[0, t, ..., 0], (64, 48), interpolation=cv2.INTER_LINEAR)
        np.testing.assert_allclose(out[0, t, ..., 0], reference[:45, :61], atol=1e-5)


# === Bad input ===


def test_bad_inputs_name_the_input(tiny_model, rng):
    good = clip(rng, 1, 3, 16, 16)
    with pytest.raises(ValueError, match="same clip length"):
        tiny_model({"frames": good["frames"], "flow": good["flow"][:, :2]})
    with pytest.raises(ValueError, match="same height"):
        tiny_model({"frames": good["frames"], "flow": good["flow"][:, :, :8]})
    with pytest.raises(ValueError, match="flow"):
        tiny_model({"frames": good["frames"], "flow": good["flow"][..., :1]})
    bad_flow = good["flow"].copy()
    bad_flow[0, 1, 2, 3, 0] = np.nan
    with pytest.raises(ValueError, match="`flow` contains NaN or Inf"):
        tiny_model({"frames": good["frames"], "flow": bad_flow})


def test_bad_inputs_in_graph_mode_raise_named_errors(tiny_model, rng):
    spec = {
        "frames": tf.TensorSpec((None, None, None, None, 3), tf.uint8),
        "flow": tf.TensorSpec((None, None, None, None, 2), tf.float32),
    }
    fn = tf.function(lambda x: tiny_model(x), input_signature=[spec], autograph=False)
    good = clip(rng, 1, 3, 16, 16)
    with pytest.raises(tf.errors.InvalidArgumentError, match="`frames` and `flow` must have"):
        fn({"frames": good["frames"], "flow": good["flow"][:, :2]})
    bad_flow = good["flow"].copy()
    bad_flow[..., 0] = np.inf
    with pytest.raises(tf.errors.InvalidArgumentError, match="`flow` contains NaN or Inf"):
        fn({"frames": good["frames"], "flow": bad_flow})


def test_keras_file_round_trip(tiny_model, rng, tmp_path):
    path = str(tmp_path / "lvo.keras")
    tiny_model.save(path)
    restored = keras.models.load_model(path)
    x = clip(rng, 1, 2, 20, 30)
    np.testing.assert_array_equal(restored(x), tiny_model(x))
    assert len(restored.trainable_weights) == len(tiny_model.trainable_weights)
    assert get_part(restored, "deeplab").trainable_weights == []


def _halved_flow_reference(flow):
    """NumPy: flow [N, H, W, 2] padded with zeros to multiples of 32, then each
    2x2 block's mean, halved."""
    n, h, w, _ = flow.shape
    hp, wp = -(-h // 32) * 32, -(-w // 32) * 32
    padded = np.zeros((n, hp, wp, 2), np.float32)
    padded[:, :h, :w] = flow
    return padded.reshape(n, hp // 2, 2, wp // 2, 2, 2).mean(axis=(2, 4)) * 0.5


@pytest.mark.parametrize("shape", [(1, 1, 16, 24), (2, 3, 37, 50), (1, 2, 64, 48)])
def test_motion_stride_2_runs_mpnet_on_half_size_flow(rng, shape):
    """motion_stride 2: the memory's motion channel is MP-Net (the same weights)
    run on the flow averaged over 2x2 blocks and halved (NumPy), at the 1/8
    cells of the frame padded to 16; the appearance channels are untouched."""
    from lvo_tf.models.frame_ops import HalveFlow

    b, t, h, w = shape
    config = TINY.replace(motion_stride=2)
    keras.utils.set_random_seed(3)
    model = build_lvo(config)
    feed = clip(rng, *shape)
    streams = model.get_layer("streams")
    features = np.asarray(streams([feed["frames"], feed["flow"]]))
    rows, cols = -(-h // 16) * 2, -(-w // 16) * 2
    assert features.shape == (b, t, rows, cols, config.feature_channels)
    mpnet = get_part(model, "motion")
    flow = feed["flow"].reshape(b * t, h, w, 2)
    want = np.asarray(mpnet(_halved_flow_reference(flow)))[:, :rows, :cols]
    np.testing.assert_allclose(features[..., -1:], want.reshape(b, t, rows, cols, 1), atol=1e-5)
    plain = build_lvo(TINY)
    plain.set_weights(model.get_weights())  # no weights of its own: same shapes
    same = np.asarray(plain.get_layer("streams")([feed["frames"], feed["flow"]]))
    np.testing.assert_allclose(features[..., :-1], same[..., :-1], atol=1e-6)
    even = rng.standard_normal((2, 3, 8, 6, 2)).astype(np.float32)
    want = even.reshape(2, 3, 4, 2, 3, 2, 2).mean(axis=(3, 5)) * 0.5
    np.testing.assert_allclose(np.asarray(HalveFlow()(even)), want, atol=1e-6)
    with pytest.raises(ValueError, match="motion_stride must be 1 or 2"):
        TINY.replace(motion_stride=4)


@pytest.mark.slow
def test_motion_stride_2_agrees_eager_graph_saved_model_onnx(rng, tmp_path):
    """The fast preset's network, several sizes and clip lengths in one trace."""
    keras.utils.set_random_seed(5)
    model = build_lvo(TINY.replace(motion_stride=2, flow_representation="residual"))
    feeds = [clip(rng, *shape) for shape in ((1, 1, 16, 24), (1, 3, 37, 50), (2, 2, 64, 48))]
    assert_all_agree(run_all_ways(model, feeds, str(tmp_path)), atol=1e-4)

"""ConvGRU / ConvGRUCell against the paper's equations and Keras' contracts."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from lvo_tf.layers import ConvGRU, ConvGRUCell
from tests import reference
from tests.parity import assert_all_agree, run_all_ways


def _random_weights(layer, rng, scale=0.3):
    weights = [scale * rng.standard_normal(w.shape).astype("float32") for w in layer.get_weights()]
    layer.set_weights(weights)
    return weights


def _seq(rng, b, t, h, w, c):
    return rng.standard_normal((b, t, h, w, c)).astype("float32")


def test_weights_layout():
    layer = ConvGRU(5, 7)
    layer.build((None, None, None, None, 3))
    shapes = {w.path.split("/")[-1]: tuple(w.shape) for w in layer.weights}
    assert shapes == {"kernel": (7, 7, 3, 15), "recurrent_kernel": (7, 7, 5, 15), "bias": (15,)}
    assert layer.count_params() == 7 * 7 * 3 * 15 + 7 * 7 * 5 * 15 + 15


def test_cell_step_matches_numpy(rng):
    cell = ConvGRUCell(4, 3)
    cell.build((None, 6, 7, 3))
    k, rk, b = _random_weights(cell, rng)
    x = rng.standard_normal((2, 6, 7, 3)).astype("float32")
    h = rng.standard_normal((2, 6, 7, 4)).astype("float32")
    out, [state] = cell(x, [h])
    expected = reference.conv_gru_step(x, h, k, rk, b)
    np.testing.assert_allclose(out, expected, atol=1e-5)
    np.testing.assert_array_equal(out, state)


@pytest.mark.parametrize("kernel_size", [3, (5, 3), 4])
def test_sequence_matches_numpy(rng, kernel_size):
    layer = ConvGRU(4, kernel_size, return_sequences=True, return_state=True)
    x = _seq(rng, 2, 5, 8, 9, 3)
    layer.build(x.shape)
    k, rk, b = _random_weights(layer, rng)
    out, last = layer(x)
    expected = reference.conv_gru_sequence(x, k, rk, b)
    np.testing.assert_allclose(out, expected, atol=1e-5)
    np.testing.assert_allclose(last, expected[:, -1], atol=1e-5)


def test_initial_state_carries_memory(rng):
    """Splitting a clip in two and carrying the memory equals one pass."""
    layer = ConvGRU(4, 3, return_sequences=True, return_state=True)
    x = _seq(rng, 1, 6, 7, 5, 2)
    layer.build(x.shape)
    _random_weights(layer, rng)
    whole, _ = layer(x)
    first, h = layer(x[:, :4])
    second, _ = layer(x[:, 4:], initial_state=h)
    np.testing.assert_allclose(np.concatenate([first, second], 1), whole, atol=1e-6)
    # A non-zero initial memory really changes the output.
    other, _ = layer(x[:, 4:])
    assert np.abs(np.asarray(other) - np.asarray(second)).max() > 1e-3


def test_go_backwards_is_forward_on_reversed_clip(rng):
    forward = ConvGRU(4, 3, return_sequences=True)
    x = _seq(rng, 2, 6, 5, 6, 3)
    forward.build(x.shape)
    weights = _random_weights(forward, rng)
    backward = ConvGRU.from_config({**forward.get_config(), "go_backwards": True})
    backward.build(x.shape)
    backward.set_weights(weights)
    # Outputs come in processing order, like keras.layers.RNN.
    np.testing.assert_allclose(backward(x), forward(x[:, ::-1]), atol=1e-6)
    expected = reference.conv_gru_sequence(x, *weights, backwards=True)
    np.testing.assert_allclose(backward(x), expected, atol=1e-5)


def test_bidirectional_concat_equals_halves(rng):
    bi = keras.layers.Bidirectional(ConvGRU(4, 3, return_sequences=True), merge_mode="concat")
    x = _seq(rng, 2, 5, 6, 4, 3)
    bi.build(x.shape)
    fw = _random_weights(bi.forward_layer, rng)
    bw = _random_weights(bi.backward_layer, rng)
    out = np.asarray(bi(x))
    assert out.shape == (2, 5, 6, 4, 8)
    np.testing.assert_allclose(out[..., :4], reference.conv_gru_sequence(x, *fw), atol=1e-5)
    back = reference.conv_gru_sequence(x, *bw, backwards=True)[:, ::-1]
    np.testing.assert_allclose(out[..., 4:], back, atol=1e-5)
    # The two directions really differ at the clip's start.
    assert np.abs(out[:, 0, ..., :4] - out[:, 0, ..., 4:]).max() > 1e-2


def _bidirectional_model(channels=3, filters=4, kernel_size=3):
    inp = keras.Input((None, None, None, channels), name="features")
    out = keras.layers.Bidirectional(
        ConvGRU(filters, kernel_size, return_sequences=True), name="memory"
    )(inp)
    return keras.Model(inp, out)


def test_eager_graph_saved_model_onnx_agree(rng, tmp_path):
    model = _bidirectional_model()
    inputs = [
        {"features": _seq(rng, 2, 5, 9, 11, 3)},
        {"features": _seq(rng, 1, 3, 16, 7, 3)},
        {"features": _seq(rng, 3, 1, 4, 4, 3)},
    ]
    results = run_all_ways(model, inputs, str(tmp_path))
    assert results["graph_traces"] == 1  # one dynamic graph served every shape
    assert_all_agree(results, atol=1e-5)


def test_config_round_trip_and_keras_file(rng, tmp_path):
    layer = ConvGRU(
        4,
        (3, 5),
        return_sequences=True,
        go_backwards=True,
        kernel_initializer="he_normal",
        recurrent_activation="hard_sigmoid",
    )
    config = layer.get_config()
    clone = ConvGRU.from_config(config)
    assert clone.get_config() == config
    x = _seq(rng, 1, 4, 6, 6, 2)
    layer.build(x.shape)
    clone.build(x.shape)
    clone.set_weights(layer.get_weights())
    np.testing.assert_array_equal(layer(x), clone(x))

    model = _bidirectional_model(channels=2)
    path = str(tmp_path / "memory.keras")
    model.save(path)
    restored = keras.models.load_model(path)
    np.testing.assert_array_equal(model(x), restored(x))


def test_tiny_model_trains(rng):
    """A ConvGRU learns to mark where a blob has been (needs memory)."""
    b, t, h, w = 16, 4, 8, 8
    x = np.zeros((b, t, h, w, 1), "float32")
    y = np.zeros((b, t, h, w, 1), "float32")
    for i in range(b):
        r, c = rng.integers(1, h - 1, 2)
        x[i, 0, r, c] = 1.0  # visible only in the first frame
        y[i, :, r, c] = 1.0  # to be remembered in all frames
    inp = keras.Input((None, None, None, 1))
    feat = ConvGRU(8, 3, return_sequences=True)(inp)
    out = keras.layers.Conv3D(1, 1, activation="sigmoid")(feat)  # 1x1x1: per frame
    model = keras.Model(inp, out)
    model.compile(keras.optimizers.Adam(1e-2), "binary_crossentropy")
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(keras.losses.binary_crossentropy(y, model(x)))
    grads = tape.gradient(loss, model.trainable_weights)
    assert all(np.isfinite(g.numpy()).all() for g in grads)
    assert all(np.abs(g.numpy()).max() > 0 for g in grads)
    history = model.fit(x, y, epochs=40, batch_size=16, verbose=0).history["loss"]
    assert history[-1] < 0.5 * float(loss)


def test_dtypes_float32_and_mixed_precision(rng):
    x = _seq(rng, 1, 3, 5, 5, 2)
    layer = ConvGRU(3, 3, return_sequences=True)
    out32 = layer(x)
    assert out32.dtype == "float32"
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        half = ConvGRU(3, 3, return_sequences=True)
        half.build(x.shape)
        half.set_weights(layer.get_weights())
        out16 = half(x)
        assert out16.dtype == "float16"
        assert all(w.dtype == "float32" for w in half.weights)
        np.testing.assert_allclose(np.asarray(out16, "float32"), out32, atol=1e-2)
    finally:
        keras.mixed_precision.set_global_policy("float32")


def test_output_shapes_symbolic():
    layer = ConvGRU(6, 7, return_sequences=False, return_state=True)
    out, state = layer(keras.Input((None, None, None, 129)))
    assert tuple(out.shape) == (None, None, None, 6)
    assert tuple(state.shape) == (None, None, None, 6)
    seq = ConvGRU(6, 7, return_sequences=True)(keras.Input((14, 60, 107, 129)))
    assert tuple(seq.shape) == (None, 14, 60, 107, 6)


def test_bad_inputs_raise_clear_errors(rng):
    layer = ConvGRU(4, 3)
    with pytest.raises(ValueError, match="rank 5"):
        layer(np.zeros((2, 5, 5, 3), "float32"))
    layer(np.zeros((1, 2, 5, 5, 3), "float32"))
    with pytest.raises(ValueError, match="built for 3 input channels.*has 4"):
        layer(np.zeros((1, 2, 5, 5, 4), "float32"))
    with pytest.raises(ValueError, match="initial_state must have 4 channels"):
        layer(np.zeros((1, 2, 5, 5, 3), "float32"), initial_state=np.zeros((1, 5, 5, 2), "float32"))
    with pytest.raises(ValueError, match="padding='same'"):
        ConvGRU(4, 3, padding="valid")
    with pytest.raises(ValueError, match="kernel_size"):
        ConvGRU(4, (3, 3, 3))
    with pytest.raises(ValueError, match="filters"):
        ConvGRU(0)


@pytest.mark.parametrize("bidirectional", [False, True])
def test_recompute_gives_the_same_outputs_and_gradients(rng, bidirectional):
    """Gradient checkpointing changes what is stored, not what is computed."""
    x = tf.constant(rng.normal(size=(2, 5, 6, 7, 3)).astype("float32"))
    grads = {}
    for recompute in (False, True):
        keras.utils.set_random_seed(4)
        layer = ConvGRU(4, 3, return_sequences=True, recompute=recompute)
        if bidirectional:
            layer = keras.layers.Bidirectional(layer)

        @tf.function
        def run(x, layer=layer):
            with tf.GradientTape() as tape:
                tape.watch(x)
                y = layer(x)
                loss = tf.reduce_sum(tf.sin(y))
            return y, tape.gradient(loss, [x, *layer.trainable_variables])

        grads[recompute] = run(x)
    y0, g0 = grads[False]
    y1, g1 = grads[True]
    np.testing.assert_allclose(y1.numpy(), y0.numpy(), atol=1e-6)
    for a, b in zip(g1, g0, strict=True):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-5)
    config = ConvGRU(4, 3, recompute=True).get_config()
    assert config["recompute"] and ConvGRU.from_config(config).recompute

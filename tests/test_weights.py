"""Saving, loading and importing weights: round trips and refusals."""

import h5py
import keras
import numpy as np
import pytest

from lvo_tf.models import build_lvo
from lvo_tf.models.weights import (
    PARTS,
    WeightsMismatchError,
    export_npz,
    get_part,
    import_npz,
    import_vgg16,
    load_weights,
    npz_names,
    save_weights,
)
from tests.test_models import TINY, clip


def _model(seed):
    keras.utils.set_random_seed(seed)
    model = build_lvo(TINY)
    rng = np.random.default_rng(seed)
    for v in model.weights:  # make every weight distinct, biases included
        v.assign(0.2 * rng.standard_normal(v.shape).astype("float32"))
    return model


def _same(a, b):
    return all(np.array_equal(x, y) for x, y in zip(a.get_weights(), b.get_weights(), strict=True))


@pytest.fixture
def pair():
    return _model(1), _model(2)


@pytest.mark.parametrize("part", PARTS)
def test_part_round_trip(pair, tmp_path, part):
    a, b = pair
    path = str(tmp_path / f"{part}.weights.h5")
    save_weights(a, path, part=part)
    assert not _same(get_part(a, part), get_part(b, part))
    load_weights(b, path, part=part)
    assert _same(get_part(a, part), get_part(b, part))


def test_all_parts_give_identical_outputs(pair, tmp_path, rng):
    a, b = pair
    x = clip(rng, 1, 3, 24, 40)
    for part in ("appearance", "motion", "memory"):
        save_weights(a, str(tmp_path / f"{part}.weights.h5"), part=part)
        load_weights(b, str(tmp_path / f"{part}.weights.h5"), part=part)
    np.testing.assert_array_equal(a(x), b(x))


def test_whole_model_round_trip(pair, tmp_path, rng):
    a, b = pair
    save_weights(a, str(tmp_path / "lvo.weights.h5"))
    load_weights(b, str(tmp_path / "lvo.weights.h5"))
    x = clip(rng, 1, 2, 16, 16)
    np.testing.assert_array_equal(a(x), b(x))


@pytest.mark.parametrize("part", PARTS)
def test_npz_round_trip(pair, tmp_path, part):
    a, b = pair
    path = str(tmp_path / f"{part}.npz")
    export_npz(a, part, path)
    with np.load(path) as data:
        assert {k: data[k].shape for k in data.files} == npz_names(a, part)
    import_npz(b, part, path)
    assert _same(get_part(a, part), get_part(b, part))


def test_caffe_layout_import(pair, tmp_path):
    """Arrays named and laid out as a converted DeepLab-LargeFOV Caffe model."""
    a, b = pair
    arrays = {}
    for layer in get_part(a, "deeplab").layers:
        if layer.weights:
            kernel, bias = layer.get_weights()
            arrays[f"{layer.name}/weights"] = kernel.transpose(3, 2, 0, 1)  # (out, in, kh, kw)
            arrays[f"{layer.name}/biases"] = bias
    assert "conv5_3/weights" in arrays and "fc6/biases" in arrays
    np.savez(tmp_path / "deeplab_caffe.npz", **arrays)
    import_npz(b, "deeplab", str(tmp_path / "deeplab_caffe.npz"), layout="caffe")
    assert _same(get_part(a, "deeplab"), get_part(b, "deeplab"))


def _write_legacy_vgg16_h5(vgg, path):
    """The layout of Keras' `vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5`."""
    with h5py.File(path, "w") as f:
        f.attrs["layer_names"] = [layer.name.encode() for layer in vgg.layers]
        f.attrs["backend"] = b"tensorflow"
        f.attrs["keras_version"] = b"2.2.4"
        for layer in vgg.layers:
            group = f.create_group(layer.name)
            names = [f"{layer.name}/{n}:0".encode() for n in ("kernel", "bias")][
                : len(layer.weights)
            ]
            group.attrs["weight_names"] = names
            for name, value in zip(names, layer.get_weights(), strict=True):
                group.create_dataset(name.decode(), data=value)


@pytest.mark.parametrize("fmt", ["legacy_h5", "weights_h5"])
def test_import_vgg16(tmp_path, fmt):
    keras.utils.set_random_seed(5)
    vgg = keras.applications.VGG16(include_top=False, weights=None)
    if fmt == "legacy_h5":
        path = str(tmp_path / "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5")
        _write_legacy_vgg16_h5(vgg, path)
    else:
        path = str(tmp_path / "vgg16.weights.h5")
        vgg.save_weights(path)
    model = build_lvo("paper")
    fc6_before = get_part(model, "deeplab").get_layer("fc6").get_weights()[0].copy()
    import_vgg16(model, path)
    deeplab = get_part(model, "deeplab")
    for block, convs in ((1, 2), (2, 2), (3, 3), (4, 3), (5, 3)):
        for i in range(1, convs + 1):
            ours = deeplab.get_layer(f"conv{block}_{i}").get_weights()
            theirs = vgg.get_layer(f"block{block}_conv{i}").get_weights()
            for x, y in zip(ours, theirs, strict=True):
                np.testing.assert_array_equal(x, y)
    np.testing.assert_array_equal(deeplab.get_layer("fc6").get_weights()[0], fc6_before)


# === Refusals: a clear message, nothing half-loaded ===


def test_refuses_other_parts_file(pair, tmp_path):
    a, b = pair
    path = str(tmp_path / "motion.weights.h5")
    save_weights(a, path, part="motion")
    before = [w.copy() for w in b.get_weights()]
    with pytest.raises(WeightsMismatchError, match="missing from the file") as info:
        load_weights(b, path, part="memory")
    assert "in the file but not in the model" in str(info.value)
    assert all(np.array_equal(x, y) for x, y in zip(before, b.get_weights(), strict=True))


def test_refuses_whole_file_into_part(pair, tmp_path):
    """Keras alone would load the matching subset silently; we refuse."""
    a, b = pair
    path = str(tmp_path / "lvo.weights.h5")
    save_weights(a, path)
    with pytest.raises(WeightsMismatchError, match="nothing was loaded"):
        load_weights(b, path, part="memory")


def test_npz_refusals_list_problems(pair, tmp_path):
    a, b = pair
    path = str(tmp_path / "memory.npz")
    export_npz(a, "memory", path)
    with np.load(path) as data:
        arrays = {k: data[k] for k in data.files}
    arrays.pop("classifier/bias")
    arrays["head_conv/kernel"] = arrays["head_conv/kernel"][..., :2]
    arrays["stray/kernel"] = np.zeros(3)
    np.savez(tmp_path / "bad.npz", **arrays)
    before = [w.copy() for w in b.get_weights()]
    with pytest.raises(WeightsMismatchError) as info:
        import_npz(b, "memory", str(tmp_path / "bad.npz"))
    message = str(info.value)
    assert "missing from the file: classifier/bias" in message
    assert "in the file but not in the model: stray/kernel" in message
    assert "shape mismatch: head_conv/kernel" in message
    assert all(np.array_equal(x, y) for x, y in zip(before, b.get_weights(), strict=True))


def test_unreadable_and_missing_files(pair, tmp_path):
    _, b = pair
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a zip")
    with pytest.raises(WeightsMismatchError, match="not a readable .npz"):
        import_npz(b, "memory", str(junk))
    junk_h5 = tmp_path / "junk.weights.h5"
    junk_h5.write_bytes(b"not hdf5")
    with pytest.raises(WeightsMismatchError, match="not a readable HDF5"):
        load_weights(b, str(junk_h5), part="memory")
    with pytest.raises(FileNotFoundError, match="no such file"):
        load_weights(b, str(tmp_path / "absent.weights.h5"))
    with pytest.raises(ValueError, match="unknown part"):
        get_part(b, "flow")
    with pytest.raises(ValueError, match=r"\.weights\.h5"):
        save_weights(b, str(tmp_path / "x.h5"))


def test_vgg16_refused_for_lite_width(pair, tmp_path):
    _, b = pair
    vgg = keras.applications.VGG16(include_top=False, weights=None)
    vgg.save_weights(str(tmp_path / "vgg16.weights.h5"))
    with pytest.raises(WeightsMismatchError, match="full-width"):
        import_vgg16(b, str(tmp_path / "vgg16.weights.h5"))

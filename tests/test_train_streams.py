"""MP-Net training: examples are right, the network learns motion, weights load into LVO."""

import dataclasses
import json

import numpy as np
import pytest

from lvo_tf.data import synthetic
from lvo_tf.data.pipeline import MotionSource, motion_dataset
from lvo_tf.models import build_lvo
from lvo_tf.models.weights import get_part, load_weights
from lvo_tf.training import mpnet_trainer


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
    ds = motion_dataset(source, crop=(32, 48), seed=1, batch_size=4)
    seen_flip = False
    for x, y in ds.take(5):
        assert x.shape == (4, 32, 48, 2) and y.shape == (4, 8, 12, 1)
    a = [b[0].numpy() for b in motion_dataset(source, (32, 48), seed=2, batch_size=2).take(3)]
    b = [b[0].numpy() for b in motion_dataset(source, (32, 48), seed=2, batch_size=2).take(3)]
    np.testing.assert_array_equal(np.stack(a), np.stack(b))  # deterministic
    full = list(motion_dataset(source, None, flip=True, seed=0, batch_size=1).take(20))
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
    with pytest.raises(ValueError, match="multiples of 16"):
        motion_dataset(source, crop=(30, 48))


@pytest.mark.slow
def test_mpnet_learns_and_loads_into_lvo(dataset, tmp_path):
    """Learning, not generalisation (two tiny validation videos swing too much
    to assert on): the loss falls clearly and J on training examples rises
    well above the untrained network's."""
    from lvo_tf.models import build_motion, resolve_config

    config = mpnet_trainer.MPNetTrainConfig(
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
    before = mpnet_trainer.validation_j(build_motion(resolve_config("lite")), train_source, 20)
    mpnet_trainer.train(config)
    history = [json.loads(line) for line in open(tmp_path / "mpnet" / "history.jsonl")]
    first = np.mean([r["loss"] for r in history[:50]])
    last = np.mean([r["loss"] for r in history[-50:]])
    assert last < 0.75 * first, (first, last)
    model = build_lvo("lite")
    load_weights(model, str(tmp_path / "mpnet" / "motion.weights.h5"), part="motion")
    after = mpnet_trainer.validation_j(get_part(model, "motion"), train_source, 20)
    assert after > before + 0.2, (before, after)
    assert get_part(model, "motion").trainable_weights == []  # still frozen inside LVO


def test_bad_settings_are_named(dataset, tmp_path):
    base = dict(data_root=dataset, output_dir=str(tmp_path))
    with pytest.raises(ValueError, match="data_root: no Motion"):
        mpnet_trainer.MPNetTrainConfig(**{**base, "data_root": str(tmp_path)}).validate()
    with pytest.raises(ValueError, match="flow must be"):
        mpnet_trainer.MPNetTrainConfig(**base, flow="raft").validate()
    with pytest.raises(ValueError, match="learning_rate must be positive"):
        mpnet_trainer.MPNetTrainConfig(**base, learning_rate=0).validate()
    assert dataclasses.asdict(mpnet_trainer.MPNetTrainConfig(**base))["flow"] == "dis_medium"

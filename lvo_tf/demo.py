r"""Interim demo: the visual memory on a toy stop-and-go world.

    python -m lvo_tf.demo --output_dir=out/demo     # or: make demo

The full LVO model and its default weights do not exist yet, so this demo
does not segment real video. It shows the part that exists: a bidirectional
ConvGRU, trained here in about a minute, keeps segmenting objects while they
are static (before they start and after they stop), where the motion cue
alone loses them. Each toy clip has a moving square whose motion channel is
zero while it is static, and a static distractor square that looks the same
and never moves (not foreground).

Writes `results.md` / `results.json` (J on moving and on static frames,
motion cue vs memory) and `contact_sheet.png` (rows: frame, motion channel,
memory prediction, ground truth) into --output_dir.
"""

import os
import time

import keras
import numpy as np
from absl import app, flags, logging

from lvo_tf import io_utils
from lvo_tf.layers import ConvGRU

_OUTPUT_DIR = flags.DEFINE_string("output_dir", "out/demo", "Where results go.")
_STEPS = flags.DEFINE_integer("train_steps", 300, "Training steps.", lower_bound=1)
_SEED = flags.DEFINE_integer("seed", 0, "Seed of data and weights.")

_SIZE, _FRAMES = 32, 12


def toy_clip(rng: np.random.Generator):
    """One clip: (features [T, S, S, 2] = appearance and motion, mask [T, S, S, 1],
    static [T] True where the foreground object does not move)."""
    t, s = _FRAMES, _SIZE
    appearance = rng.normal(0.0, 0.15, (t, s, s)).astype("float32")
    motion = np.zeros((t, s, s), "float32")
    mask = np.zeros((t, s, s), "float32")
    side = int(rng.integers(5, 9))
    # Distractor: same look, never moves.
    dr, dc = rng.integers(0, s - side, 2)
    appearance[:, dr : dr + side, dc : dc + side] += 1.0
    # Foreground: moves during [start, stop), static before and after.
    start, stop = sorted(rng.choice(np.arange(0, t + 1), 2, replace=False))
    if stop - start < 3:
        start, stop = 0, min(t, 4 + int(rng.integers(0, 4)))
    velocity = rng.choice([-2, -1, 1, 2], 2)
    pos = np.array(rng.integers(side, s - 2 * side, 2), float)
    static = np.ones(t, bool)
    for i in range(t):
        r, c = np.clip(pos.astype(int), 0, s - side)
        appearance[i, r : r + side, c : c + side] += 1.0
        mask[i, r : r + side, c : c + side] = 1.0
        if start <= i < stop:
            static[i] = False
            motion[i, r : r + side, c : c + side] = 1.0
            pos = np.clip(pos + velocity, 0, s - side)
    motion += rng.normal(0.0, 0.1, motion.shape).astype("float32")
    features = np.stack([appearance, motion], -1)
    return features, mask[..., None], static


def toy_batch(rng, n):
    clips = [toy_clip(rng) for _ in range(n)]
    return tuple(np.stack(parts) for parts in zip(*clips, strict=True))


def build_memory_model(seed: int) -> keras.Model:
    keras.utils.set_random_seed(seed)
    features = keras.Input((None, None, None, 2), name="features")
    memory = keras.layers.Bidirectional(ConvGRU(8, 5, return_sequences=True))(features)
    # 1x1x1 Conv3D acts on each frame alone.
    probabilities = keras.layers.Conv3D(1, 1, activation="sigmoid", name="classifier")(memory)
    return keras.Model(features, probabilities)


def iou(pred: np.ndarray, gt: np.ndarray) -> float:
    union = np.logical_or(pred, gt).sum()
    return 1.0 if union == 0 else float(np.logical_and(pred, gt).sum() / union)


def mean_j(pred, gt, select):
    scores = [iou(p, g) for p, g, s in zip(pred, gt, select, strict=True) if s]
    return float(np.mean(scores)) if scores else float("nan")


def _frames(a: np.ndarray) -> np.ndarray:
    # [N, T, S, S] -> [N*T, S, S]
    return a.reshape(-1, _SIZE, _SIZE)


def contact_sheet(features, prediction, mask, scale=6) -> np.ndarray:
    rows = [
        np.clip(features[..., 0] / 1.5, 0, 1),
        np.clip(features[..., 1], 0, 1),
        prediction[..., 0],
        mask[..., 0],
    ]
    sheet = np.concatenate([np.concatenate(list(r), axis=1) for r in rows], axis=0)
    sheet = np.kron(sheet, np.ones((scale, scale)))
    return (sheet * 255).astype(np.uint8)


def main(argv):
    del argv
    rng = np.random.default_rng(_SEED.value)
    logging.info(
        "Interim demo: the full LVO model and default weights are not built yet; "
        "training the visual memory on a toy stop-and-go world instead."
    )
    model = build_memory_model(_SEED.value)
    model.compile(keras.optimizers.Adam(3e-3), "binary_crossentropy")
    start = time.time()
    for step in range(1, _STEPS.value + 1):
        x, y, _ = toy_batch(rng, 8)
        loss = model.train_on_batch(x, y)
        if step % 50 == 0 or step == _STEPS.value:
            rate = step / (time.time() - start)
            logging.info(
                "step %d/%d  loss %.4f  %.1f steps/s  ETA %.0f s",
                step,
                _STEPS.value,
                loss,
                rate,
                (_STEPS.value - step) / rate,
            )

    x, y, static = toy_batch(np.random.default_rng(_SEED.value + 1), 64)
    prediction = np.asarray(model.predict(x, verbose=0))
    gt = y[..., 0] > 0.5
    memory = prediction[..., 0] > 0.5
    motion = x[..., 1] > 0.5
    moving_sel, static_sel = ~static.reshape(-1), static.reshape(-1)
    results = {
        "note": "toy world, not real video; the LVO model and default weights come later",
        "train_steps": _STEPS.value,
        "J": {
            "motion cue thresholded": {
                "moving frames": mean_j(_frames(motion), _frames(gt), moving_sel),
                "static frames": mean_j(_frames(motion), _frames(gt), static_sel),
            },
            "bidirectional ConvGRU memory": {
                "moving frames": mean_j(_frames(memory), _frames(gt), moving_sel),
                "static frames": mean_j(_frames(memory), _frames(gt), static_sel),
            },
        },
    }
    table = ["| method | J moving frames | J static frames |", "|---|---|---|"]
    for name, j in results["J"].items():
        table.append(f"| {name} | {j['moving frames']:.3f} | {j['static frames']:.3f} |")
    markdown = (
        "# Interim demo: visual memory on a toy stop-and-go world\n\n"
        "Not real video: the LVO model and its default weights come later.\n\n"
        + "\n".join(table)
        + "\n\ncontact_sheet.png rows: frame, motion channel, memory prediction, ground truth.\n"
    )
    out = _OUTPUT_DIR.value
    io_utils.write_json(os.path.join(out, "results.json"), results)
    io_utils.write_text(os.path.join(out, "results.md"), markdown)
    io_utils.write_image(
        os.path.join(out, "contact_sheet.png"), contact_sheet(x[0], prediction[0], y[0])
    )
    print(markdown)
    logging.info("Wrote %s", os.path.abspath(out))


if __name__ == "__main__":
    app.run(main)

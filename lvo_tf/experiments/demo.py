"""The demo's work (`python -m lvo_tf.demo`, `make demo`): the default model and
the non-learned baseline on fresh synthetic stop-and-go clips and, when
present, one real sequence, scored with the DAVIS protocol overall and on
static frames; masks, overlay GIFs, contact sheets and a J/F table."""

import os
import shutil
import time

import numpy as np
from absl import logging

from lvo_tf import shipped
from lvo_tf.common import io_utils
from lvo_tf.data import flow as flow_lib
from lvo_tf.data import readers, synthetic
from lvo_tf.evaluation import davis_metrics
from lvo_tf.inference import baseline, crf, run
from lvo_tf.inference.segmenter import LVORunner, StageTimes


def score(masks: list[np.ndarray], truth: list[np.ndarray], static: list[int]) -> dict:
    """DAVIS J/F means, overall and on `static` frames (the protocol's first
    and last frames excluded)."""
    result = davis_metrics.evaluate_sequence(masks, truth)
    j, f = np.array(result["J"]["per_frame"]), np.array(result["F"]["per_frame"])
    picks = [t for t in static if 0 < t < len(truth) - 1]
    moving = [t for t in range(1, len(truth) - 1) if t not in set(picks)]
    return {
        "J": result["J"]["mean"],
        "F": result["F"]["mean"],
        "J moving": float(np.mean(j[moving])) if moving else None,
        "J static": float(np.mean(j[picks])) if picks else None,
        "F static": float(np.mean(f[picks])) if picks else None,
        "static frames": len(picks),
    }


def segment_clip(runner, info, name, frames, truth, static, out, times, crf_params=None) -> dict:
    """Both methods on one clip (refined by the CRF when `crf_params` is
    given); masks and pictures of the default model."""
    height = info["process_height"]
    small = [readers.shrink_to_height(f, height) for f in frames]
    estimator = flow_lib.FlowEstimator(info["flow_method"])
    t0 = time.time()
    flows = [estimator(small[t], small[t + 1]) for t in range(len(frames) - 1)]
    flows.append(flows[-1] if flows else np.zeros(small[0].shape[:2] + (2,), np.float32))
    times.add("flow", time.time() - t0)
    clip_dir = os.path.join(out, name)
    # A fresh run: masks an earlier run left (perhaps of another model) are not reused.
    shutil.rmtree(os.path.join(clip_dir, "masks"), ignore_errors=True)
    stems = [f"{t:05d}" for t in range(len(frames))]

    def progress(t):
        if (t + 1) % 10 == 0 or t + 1 == len(frames):
            logging.info("%s: %d/%d frames", name, t + 1, len(frames))

    run.segment_video(
        runner,
        stems,
        lambda t: small[t],
        lambda t: flows[t],
        os.path.join(clip_dir, "masks"),
        run.SegmentOptions(crf=crf_params),
        times,
        overlay_stem=os.path.join(clip_dir, "overlay"),
        progress=progress,
        original=lambda t: frames[t],
    )
    os.replace(os.path.join(clip_dir, "overlay.png"), os.path.join(clip_dir, "contact_sheet.png"))
    masks = [readers.read_annotation(os.path.join(clip_dir, "masks", s + ".png"))[0] for s in stems]
    # The baseline at the frames' own size, as `segment --method=baseline` runs it.
    full_estimator = flow_lib.FlowEstimator(flow_lib.DEFAULT_METHOD)
    probs = [
        baseline.probability(full_estimator(frames[t], frames[t + 1]))
        for t in range(len(frames) - 1)
    ]
    probs.append(probs[-1] if probs else np.zeros(frames[0].shape[:2], np.float32))
    base = [run.to_mask(p, f, f, crf_params) for p, f in zip(probs, frames, strict=True)]
    return {
        "default model": score(masks, truth, static),
        "non-learned baseline": score(base, truth, static),
    }


def _fmt(v):
    return "n/a" if v is None else f"{v:.3f}"


def markdown(results: dict, info: dict) -> str:
    lines = [
        "# lvo_tf demo",
        "",
        f"Default model: {info['summary']}.",
        "",
        "| clip | method | J | F | J moving frames | J static frames | F static frames |",
        "|---|---|---|---|---|---|---|",
    ]
    for clip, methods in results["clips"].items():
        for method, s in methods.items():
            lines.append(
                f"| {clip} | {method} | {_fmt(s['J'])} | {_fmt(s['F'])} | {_fmt(s['J moving'])} "
                f"| {_fmt(s['J static'])} ({s['static frames']}) | {_fmt(s['F static'])} |"
            )
    for dataset, text in (
        ("heldout", "held-out DAVIS-2016 train sequences (never trained on)"),
        ("dev", "real dev sequences"),
    ):
        scores = info.get("metrics", {}).get(dataset)
        if not (scores and "baseline_j" in scores):
            continue
        with_crf = results.get("crf") and "crf_j" in scores and "baseline_crf_j" in scores
        if with_crf:
            ours = (scores["crf_j"], scores["crf_f"])
            base = (scores["baseline_crf_j"], scores["baseline_crf_f"])
        else:
            ours, base = (scores["j"], scores["f"]), (scores["baseline_j"], scores["baseline_f"])
        lines += [
            "",
            f"On all {scores['sequences']} {text} (`make ablations`), "
            f"{'both with the dense CRF, ' if with_crf else 'without the CRF, '}the default "
            f"model gets J {ours[0]:.3f} / F {ours[1]:.3f} and the non-learned baseline "
            f"J {base[0]:.3f} / F {base[1]:.3f}.",
        ]
    lines += ["", "The README's model card says what the default model is and is not good at."]
    lines += [
        "",
        "Masks: "
        + (
            "refined by the dense CRF, for both methods (`--nocrf`: thresholded)."
            if results.get("crf")
            else "thresholded at 0.5, no CRF (`--nocrf`)."
        ),
    ]
    lines += [
        "",
        "Static frames: every foreground object is still (known exactly in the synthetic "
        "world; real sequences are not split). Pictures: `<clip>/overlay.gif`, "
        "`<clip>/contact_sheet.png`; masks: `<clip>/masks/`.",
    ]
    return "\n".join(lines) + "\n"


def mean_scores(scores: list[dict]) -> dict:
    """The mean of each measure over clips (clips without static frames do
    not count for the static measures); static frames are summed."""
    out = {"static frames": sum(s["static frames"] for s in scores)}
    for key in ("J", "F", "J moving", "J static", "F static"):
        values = [s[key] for s in scores if s[key] is not None]
        out[key] = float(np.mean(values)) if values else None
    return out


def run_demo(
    output_dir: str,
    frames: int,
    seed: int,
    num_clips: int,
    dev_root: str,
    dev_sequence: str,
    use_crf: bool = True,
) -> dict:
    start = time.time()
    crf_params = crf.CRFParams() if use_crf else None
    model, info = shipped.load()
    runner = LVORunner(model)
    times = StageTimes()
    results = {"model": info["summary"], "crf": use_crf, "clips": {}}
    clips = []
    for k in range(num_clips):
        video = synthetic.stop_and_go_video(seed + k, frames)
        logging.info(
            "Synthetic clip %d/%d: %d frames, objects %s, %d static frames",
            k + 1,
            num_clips,
            frames,
            [o["schedule"] for o in video.meta["objects"]],
            len(video.meta["static_frames"]),
        )
        clips.append(
            segment_clip(
                runner,
                info,
                f"synthetic_{k + 1}",
                list(video.frames),
                list(video.masks),
                video.meta["static_frames"],
                output_dir,
                times,
                crf_params,
            )
        )
        results["clips"][f"synthetic stop-and-go {k + 1}"] = clips[-1]
    results["clips"][f"synthetic stop-and-go, mean of {num_clips}"] = {
        method: mean_scores([clip[method] for clip in clips]) for method in clips[0]
    }
    if dev_root and os.path.isdir(dev_root):
        seq = readers.davis_sequences(dev_root, "all", [dev_sequence])[0]
        frames_real = list(readers.load_frames(seq))
        truth = readers.load_annotations(seq, frames_real[0].shape[:2])
        results["clips"][f"real: {seq.name}"] = segment_clip(
            runner,
            info,
            seq.name,
            frames_real,
            [truth[s] for s in seq.stems],
            [],
            output_dir,
            times,
            crf_params,
        )
    else:
        logging.info("No real sequences at %r: skipped", dev_root)
    results["seconds"] = time.time() - start
    results["stage_seconds"] = vars(times)
    io_utils.write_json(os.path.join(output_dir, "results.json"), results)
    io_utils.write_text(os.path.join(output_dir, "results.md"), markdown(results, info))
    return results

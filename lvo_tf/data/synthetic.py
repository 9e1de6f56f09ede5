"""A synthetic world of moving objects, with exact ground truth.

Each video is a stack of textured 2.5-D layers, each mapped into the frame by
its own homography per frame:

- a far background (a photograph or a procedural texture) under a camera
  that translates, zooms and rotates;
- optional near static layers (poles, bushes) at a larger depth factor:
  the camera's translation moves them more than the background, so they show
  parallax although they are static scenery (not foreground);
- optional dynamic textures (water, foliage) that change in place in the
  background plane (not foreground);
- 1..N foreground objects: star-shaped, textured, deforming non-rigidly
  while they move, following their own affine path on top of the camera,
  with a stop-and-go schedule (`always`, `move_then_stop`, `start_late`,
  `stop_and_go`);
- optional static distractors that look like objects but never move on
  their own (not foreground);
- with `articulated_prob`, objects (and distractors alike) get 2-4 limbs,
  layers of their own hinged on the body's outline, that swing while the
  object moves: real objects are articulated, so their flow varies inside
  the object instead of being one rigid motion.

Ground truth per frame: the foreground mask (objects that move at some point
of the clip, including while they are stopped), the flow t -> t+1 of the
layer visible at each pixel (Middlebury convention, exact: composed
homographies), and the per-pixel "independently moving" label at t. Then
lighting drift, blur and noise are applied to the frames (not to the truth).

Deterministic: video `i` of seed `s` draws from `np.random.default_rng([s, i])`.
"""

from __future__ import annotations

import dataclasses
import json
import os

import cv2
import numpy as np

from lvo_tf.common import io_utils
from lvo_tf.data import flow as flow_lib
from lvo_tf.data.textures import texture

SCHEDULES = ("always", "move_then_stop", "start_late", "stop_and_go")


@dataclasses.dataclass(frozen=True)
class WorldConfig:
    """What the synthetic world draws from. Probabilities are per video."""

    height: int = 240
    width: int = 427
    frames: int = 20
    max_objects: int = 2
    object_area: tuple[float, float] = (0.04, 0.30)  # fraction of the frame
    object_speed: tuple[float, float] = (1.5, 6.0)  # pixels per frame
    articulated_prob: float = 0.0  # per object: limbs that swing while it moves
    schedules: tuple[str, ...] = SCHEDULES
    distractor_prob: float = 0.6
    near_layer_prob: float = 0.5
    dynamic_texture_prob: float = 0.4
    camera_speed: float = 3.0  # pixels per frame, at most
    camera_motion: bool = True  # False: a fixed camera (tests)
    lighting: float = 0.15  # amplitude of the gain drift
    blur_prob: float = 0.3
    noise: float = 3.0  # std of Gaussian noise, grey levels
    photometric: bool = True  # lighting, blur and noise on the frames


@dataclasses.dataclass
class Video:
    frames: np.ndarray  # [T, H, W, 3] uint8 RGB
    masks: np.ndarray  # [T, H, W] bool, foreground objects
    flow: np.ndarray  # [T-1, H, W, 2] float32, t -> t+1
    moving: np.ndarray  # [T-1, H, W] bool, independently moving at t
    layers: np.ndarray  # [T, H, W] int16, index of the visible layer
    meta: dict


# === Geometry ===


def _translate(x, y):
    return np.array([[1, 0, x], [0, 1, y], [0, 0, 1]], np.float64)


def _rotate_scale(angle, scale):
    c, s = np.cos(angle) * scale, np.sin(angle) * scale
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]], np.float64)


def _star_polygon(radius, amplitudes, phases, points=72):
    theta = np.linspace(0, 2 * np.pi, points, endpoint=False)
    r = np.ones_like(theta)
    for k, (a, p) in enumerate(zip(amplitudes, phases, strict=True), start=2):
        r += a * np.cos(k * theta + p)
    r = radius * np.clip(r, 0.3, None)
    return np.stack([r * np.cos(theta), r * np.sin(theta)], -1)


def _schedule(rng, name, transitions) -> np.ndarray:
    """Boolean [T-1]: does the object move from frame t to t+1."""
    moving = np.ones(transitions, bool)
    if transitions < 3 or name == "always":
        return moving
    k = int(rng.integers(transitions // 4, max(transitions // 4 + 1, 3 * transitions // 4)))
    if name == "move_then_stop":
        moving[max(k, 1) :] = False
    elif name == "start_late":
        moving[: max(k, 1)] = False
    elif name == "stop_and_go":
        length = int(rng.integers(3, max(4, transitions // 2)))
        start = int(rng.integers(1, max(2, transitions - length)))
        moving[start : start + length] = False
    else:
        raise ValueError(f"unknown schedule {name!r}; choose from {SCHEDULES}")
    return moving


def static_frames(moving: np.ndarray) -> list[int]:
    """Frames where the object moves neither into nor out of the frame."""
    t = len(moving) + 1
    into = np.concatenate([[False], moving])
    out = np.concatenate([moving, [False]])
    return [i for i in range(t) if not into[i] and not out[i]]


class _Layer:
    """A textured canvas with an alpha mask and a per-frame canvas->frame homography."""

    def __init__(self, name, role, tex, alphas, transforms, moving=None):
        self.name, self.role = name, role
        self.tex = tex  # [h, w, 3] or a list per frame
        self.alphas = alphas  # [h, w] float or a list per frame
        self.transforms = transforms  # [T] 3x3
        self.moving = moving  # [T-1] bool or None

    def at(self, values, t):
        return values[t] if isinstance(values, list) else values


def render_video(rng: np.random.Generator, config: WorldConfig = WorldConfig()) -> Video:
    """Renders one video; see the module docstring."""
    h, w, t_len = config.height, config.width, config.frames
    if t_len < 1 or h < 16 or w < 16:
        raise ValueError(f"a video needs >= 1 frame of at least 16x16; got {t_len}x{h}x{w}")
    centre = _translate(w / 2, h / 2)
    # Camera: accumulated translation, zoom, rotation; depth d scales translation.
    velocity = rng.uniform(-1, 1, 2) * config.camera_speed * rng.uniform(0, 1)
    zoom_rate, rot_rate = rng.uniform(-0.006, 0.006), rng.uniform(-0.004, 0.004)
    shake = rng.normal(0, 0.3, (t_len, 2))
    if not config.camera_motion:
        velocity, zoom_rate, rot_rate, shake = np.zeros(2), 0.0, 0.0, np.zeros((t_len, 2))
    offsets = np.cumsum(np.vstack([[0, 0], np.tile(velocity, (t_len - 1, 1))]) + shake, 0)
    offsets -= offsets[0]

    def camera(t, depth):
        zoom = (1 + zoom_rate) ** (t * depth)
        return (
            centre
            @ _rotate_scale(rot_rate * t, zoom)
            @ np.linalg.inv(centre)
            @ _translate(*(depth * offsets[t]))
        )

    margin = int(np.abs(offsets).max() * 3.2 + 0.08 * max(h, w)) + 8
    layers: list[_Layer] = []
    bg = texture(rng, h + 2 * margin, w + 2 * margin)
    layers.append(
        _Layer(
            "background",
            "background",
            bg,
            np.ones(bg.shape[:2], np.float32),
            [camera(t, 1.0) @ _translate(-margin, -margin) for t in range(t_len)],
        )
    )
    meta: dict = {
        "size": [h, w],
        "frames": t_len,
        "camera_velocity": velocity.tolist(),
        "objects": [],
        "near_layers": 0,
        "dynamic_textures": 0,
    }

    if rng.random() < config.dynamic_texture_prob:  # changes in place, background plane
        size = (int(h * rng.uniform(0.3, 0.6)), int(w * rng.uniform(0.3, 0.6)))
        alpha = _blob_alpha(rng, size)
        big = texture(rng, size[0] * 2, size[1] * 2)
        step = rng.uniform(-3, 3, 2)
        frames_tex = []
        for t in range(t_len):
            dy, dx = (np.array([size[0], size[1]]) / 2 + step * t).astype(int) % np.array(size)
            patch = big[dy : dy + size[0], dx : dx + size[1]].astype(np.float32)
            patch *= 1 + 0.1 * np.sin(t * 1.3 + rng.uniform(0, 6))
            frames_tex.append(np.clip(patch, 0, 255).astype(np.uint8))
        y0, x0 = rng.integers(0, h - size[0]), rng.integers(0, w - size[1])
        layers.append(
            _Layer(
                "dynamic_texture",
                "dynamic",
                frames_tex,
                alpha,
                [camera(t, 1.0) @ _translate(x0, y0) for t in range(t_len)],
            )
        )
        meta["dynamic_textures"] = 1

    n_objects = int(rng.integers(1, config.max_objects + 1))
    n_distractors = int(rng.random() < config.distractor_prob)
    things = [("object", rng.choice(config.schedules)) for _ in range(n_objects)]
    things += [("distractor", None)] * n_distractors
    depths = rng.uniform(1.0, 1.5, len(things))
    for i in np.argsort(depths):  # far to near
        role, schedule = things[i]
        layers.extend(_make_object(rng, config, f"{role}{i}", role, schedule, depths[i], camera))
        meta["objects"].append(
            {
                "name": layers[-1].name,
                "role": "foreground" if role == "object" else "distractor",
                "schedule": str(schedule or "static"),
                "depth": float(depths[i]),
                "moving": layers[-1].moving.tolist(),
                "static_frames": static_frames(layers[-1].moving),
            }
        )

    if rng.random() < config.near_layer_prob:  # parallax: static but near the camera
        depth = rng.uniform(1.8, 3.0)
        if rng.random() < 0.5:  # a pole, taller than the frame
            size = (int(h * rng.uniform(1.2, 1.6)), int(w * rng.uniform(0.04, 0.1)))
            alpha = np.ones(size, np.float32)
            top = rng.uniform(h - size[0], 0)
        else:  # a bush near the bottom
            size = (int(h * rng.uniform(0.3, 0.5)), int(w * rng.uniform(0.2, 0.35)))
            alpha = _blob_alpha(rng, size)
            top = rng.uniform(0.4 * h, h - 0.6 * size[0])
        pos = (rng.uniform(0, w - size[1]), top)
        layers.append(
            _Layer(
                "near_layer",
                "near",
                texture(rng, *size),
                alpha,
                [camera(t, depth) @ _translate(*pos) for t in range(t_len)],
            )
        )
        meta["near_layers"] = 1

    return _composite(rng, config, layers, meta)


def _blob_alpha(rng, size):
    sh, sw = size
    canvas = np.zeros((sh, sw), np.uint8)
    poly = _star_polygon(1.0, rng.uniform(0, 0.25, 3), rng.uniform(0, 2 * np.pi, 3))
    pts = np.stack([(poly[:, 0] * 0.45 + 0.5) * sw, (poly[:, 1] * 0.45 + 0.5) * sh], -1)
    cv2.fillPoly(canvas, [np.round(pts * 16).astype(np.int32)], 255, cv2.LINE_AA, shift=4)
    return canvas.astype(np.float32) / 255


def _make_object(rng, config, name, role, schedule, depth, camera):
    h, w, t_len = config.height, config.width, config.frames
    area = rng.uniform(*config.object_area) * h * w
    radius = np.sqrt(area / np.pi)
    side = int(2 * radius * 1.8) + 4
    amplitudes = rng.uniform(0, 0.3, 3)
    phases = rng.uniform(0, 2 * np.pi, 3)
    wobble = rng.uniform(-0.25, 0.25, 3)
    moving = _schedule(rng, schedule, t_len - 1) if role == "object" else np.zeros(t_len - 1, bool)
    speed = rng.uniform(*config.object_speed)
    heading = rng.uniform(0, 2 * np.pi)
    vel = speed * np.array([np.cos(heading), np.sin(heading)])
    spin, grow = rng.uniform(-0.03, 0.03), rng.uniform(-0.01, 0.01)
    pos = np.array([rng.uniform(0.25, 0.75) * w, rng.uniform(0.25, 0.75) * h])
    angle, scale = rng.uniform(0, 2 * np.pi), 1.0
    outline_phases = phases
    transforms, alphas = [], []
    for t in range(t_len):
        canvas = np.zeros((side, side), np.uint8)
        poly = _star_polygon(radius, amplitudes, phases) + side / 2
        cv2.fillPoly(canvas, [np.round(poly * 16).astype(np.int32)], 255, cv2.LINE_AA, shift=4)
        alphas.append(canvas.astype(np.float32) / 255)
        pose = _translate(*pos) @ _rotate_scale(angle, scale) @ _translate(-side / 2, -side / 2)
        transforms.append(camera(t, depth) @ pose)
        if t < t_len - 1 and moving[t]:
            pos = pos + vel
            for axis, limit in ((0, w), (1, h)):  # bounce off the frame's inner 80%
                if not 0.1 * limit < pos[axis] < 0.9 * limit:
                    vel[axis] = -vel[axis]
                    pos[axis] = np.clip(pos[axis], 0.1 * limit, 0.9 * limit)
            angle += spin
            scale = float(np.clip(scale * (1 + grow), 0.7, 1.4))
            phases = phases + wobble  # non-rigid: the outline deforms while moving
    body = _Layer(name, role, texture(rng, side, side), alphas, transforms, moving)
    if not (config.articulated_prob > 0 and rng.random() < config.articulated_prob):
        return [body]
    return [*_limbs(rng, body, radius, side, amplitudes, outline_phases, role), body]


def _limbs(rng, body, radius, side, amplitudes, phases, role):
    """2-4 limb layers behind `body`, each hinged at a point inside the body's
    outline and swinging about it while the body moves (still while it stops).
    Each limb's homography is the body's composed with its own rotation about
    the hinge, so the ground-truth flow inside the object stays exact."""
    outline = _star_polygon(radius, amplitudes, phases) + side / 2
    t_len = len(body.transforms)
    clock = np.concatenate([[0], np.cumsum(body.moving)])  # the body's own moving time
    limbs = []
    for k in range(int(rng.integers(2, 5))):
        length = radius * rng.uniform(0.6, 1.3)
        width = max(3.0, radius * rng.uniform(0.15, 0.35))
        canvas = np.zeros((int(width) + 4, int(length + width) + 4), np.uint8)
        cy = canvas.shape[0] / 2
        cv2.ellipse(
            canvas,
            (int(16 * canvas.shape[1] / 2), int(16 * cy)),
            (int(16 * canvas.shape[1] / 2 - 32), int(16 * (width / 2))),
            0,
            0,
            360,
            255,
            -1,
            cv2.LINE_AA,
            shift=4,
        )
        hinge_point = outline[rng.integers(len(outline))]
        hinge = side / 2 + 0.75 * (hinge_point - side / 2)  # inside the outline
        base = np.arctan2(*(hinge_point - side / 2)[::-1])  # pointing outwards
        swing, rate = rng.uniform(0.3, 0.8), rng.uniform(0.25, 0.6)
        offset = rng.uniform(0, 2 * np.pi)
        root = _translate(width / 2 + 2, cy)  # the limb's end at the hinge
        transforms = [
            body.transforms[t]
            @ _translate(*hinge)
            @ _rotate_scale(base + swing * np.sin(offset + rate * clock[t]), 1.0)
            @ np.linalg.inv(root)
            for t in range(t_len)
        ]
        tex = body.tex if rng.random() < 0.5 else texture(rng, *canvas.shape)
        tex = cv2.resize(tex, canvas.shape[::-1], interpolation=cv2.INTER_AREA)
        alpha = canvas.astype(np.float32) / 255
        limbs.append(_Layer(f"{body.name}_limb{k}", role, tex, alpha, transforms, body.moving))
    return limbs


def _composite(rng, config, layers, meta) -> Video:
    h, w, t_len = config.height, config.width, config.frames
    frames = np.zeros((t_len, h, w, 3), np.float32)
    ids = np.zeros((t_len, h, w), np.int16)
    for t in range(t_len):
        for k, layer in enumerate(layers):
            m = layer.transforms[t]
            tex = cv2.warpPerspective(layer.at(layer.tex, t), m, (w, h), flags=cv2.INTER_LINEAR)
            alpha = cv2.warpPerspective(
                layer.at(layer.alphas, t), m, (w, h), flags=cv2.INTER_LINEAR
            )
            frames[t] = alpha[..., None] * tex + (1 - alpha[..., None]) * frames[t]
            ids[t][alpha > 0.5] = k
    fg = [k for k, layer in enumerate(layers) if layer.role == "object"]
    masks = np.isin(ids, fg)
    ys, xs = np.mgrid[:h, :w].astype(np.float64)
    grid = np.stack([xs, ys, np.ones_like(xs)], -1)  # [H, W, 3] homogeneous pixels
    flow = np.zeros((max(t_len - 1, 0), h, w, 2), np.float32)
    moving = np.zeros((max(t_len - 1, 0), h, w), bool)
    for t in range(t_len - 1):
        for k in np.unique(ids[t]):
            layer = layers[k]
            step = layer.transforms[t + 1] @ np.linalg.inv(layer.transforms[t])
            sel = ids[t] == k
            p = grid[sel] @ step.T
            flow[t][sel] = (p[:, :2] / p[:, 2:3] - grid[sel][:, :2]).astype(np.float32)
            if layer.moving is not None and layer.moving[t]:
                moving[t][sel] = True
    if config.photometric:
        gain = 1 + config.lighting * np.sin(
            rng.uniform(0, 6) + np.arange(t_len) * rng.uniform(0.05, 0.3)
        )
        frames *= gain[:, None, None, None] * rng.uniform(0.9, 1.1, 3)
        if rng.random() < config.blur_prob:
            sigma = rng.uniform(0.5, 1.2)
            frames = np.stack([cv2.GaussianBlur(f, (0, 0), sigma) for f in frames])
        frames += rng.normal(0, config.noise, frames.shape)
    meta["foreground_area"] = float(masks.mean())
    meta["layers"] = [{"name": layer.name, "role": layer.role} for layer in layers]
    clip_static = [
        t
        for t in range(t_len)
        if fg and all(t in o["static_frames"] for o in meta["objects"] if o["role"] == "foreground")
    ]
    meta["static_frames"] = clip_static
    return Video(np.clip(frames, 0, 255).astype(np.uint8), masks, flow, moving, ids, meta)


# === Writing the DAVIS layout ===


def sequence_name(index: int) -> str:
    return f"synth{index:05d}"


def write_video(root: str, name: str, video: Video, jpeg_quality: int = 90) -> None:
    """Writes one video in the DAVIS layout plus `Flow/<seq>/*.flo`,
    `Motion/480p/<seq>/*.png` (independently moving, 0/255) and
    `Meta/<seq>.json`, which is written last and marks the video complete."""
    folders = {
        k: os.path.join(root, *parts, name)
        for k, parts in {
            "frames": ("JPEGImages", "480p"),
            "masks": ("Annotations", "480p"),
            "motion": ("Motion", "480p"),
            "flow": ("Flow",),
        }.items()
    }
    for t, frame in enumerate(video.frames):
        stem = f"{t:05d}"
        io_utils.write_image(
            os.path.join(folders["frames"], stem + ".jpg"),
            frame[..., ::-1],
            [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality],
        )
        io_utils.write_image(
            os.path.join(folders["masks"], stem + ".png"), video.masks[t].astype(np.uint8) * 255
        )
        if t < len(video.flow):
            flow_lib.write_flo(os.path.join(folders["flow"], stem + ".flo"), video.flow[t])
            io_utils.write_image(
                os.path.join(folders["motion"], stem + ".png"),
                video.moving[t].astype(np.uint8) * 255,
            )
    io_utils.write_json(os.path.join(root, "Meta", name + ".json"), video.meta)


def is_complete(root: str, name: str) -> bool:
    return os.path.isfile(os.path.join(root, "Meta", name + ".json"))


def write_image_sets(root: str, names: list[str], frames: dict[str, int], val_names) -> None:
    """ImageSets/480p/{train,val}.txt in the DAVIS format."""
    val_names = set(val_names)
    for split in ("train", "val"):
        lines = [
            f"/JPEGImages/480p/{n}/{t:05d}.jpg /Annotations/480p/{n}/{t:05d}.png"
            for n in names
            if (n in val_names) == (split == "val")
            for t in range(frames[n])
        ]
        io_utils.write_text(
            os.path.join(root, "ImageSets", "480p", f"{split}.txt"),
            "\n".join(lines) + ("\n" if lines else ""),
        )


def video_rng(seed: int, index: int) -> np.random.Generator:
    return np.random.default_rng([seed, index])


STOP_AND_GO_WORLD = WorldConfig(
    max_objects=2,
    schedules=("move_then_stop", "start_late"),
    distractor_prob=1.0,
    dynamic_texture_prob=0.0,
)


def stop_and_go_video(seed: int, frames: int) -> Video:
    """The first video of `seed` (of `STOP_AND_GO_WORLD`) with an object that
    stops, one that starts late, a static distractor, and at least a fifth of
    its frames with every object still: the case motion alone cannot solve."""
    config = dataclasses.replace(STOP_AND_GO_WORLD, frames=frames)
    for k in range(200):
        video = render_video(video_rng(seed, k), config)
        schedules = {o["schedule"] for o in video.meta["objects"]}
        if {"move_then_stop", "start_late", "static"} <= schedules and len(
            video.meta["static_frames"]
        ) >= max(2, frames // 5):
            return video
    raise RuntimeError(f"no stop-and-go clip among 200 videos of seed {seed}")


def describe(meta: dict) -> str:
    return json.dumps({k: meta[k] for k in ("objects", "near_layers", "dynamic_textures")})

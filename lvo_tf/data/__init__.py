"""Data: readers (DAVIS, frames, video), optical flow, the synthetic world, input pipelines."""

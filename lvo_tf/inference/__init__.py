"""Inference: whole-video segmentation (windows, streaming), upsampling, dense CRF."""

"""lvo_tf: LVO video object segmentation with visual memory, in TensorFlow/Keras."""

__version__ = "0.1.0"

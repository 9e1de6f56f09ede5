"""Keras layers of LVO: the ConvGRU visual memory."""

from lvo_tf.layers.conv_gru import ConvGRU, ConvGRUCell

__all__ = ["ConvGRU", "ConvGRUCell"]

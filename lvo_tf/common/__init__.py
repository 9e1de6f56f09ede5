"""What every part of lvo_tf uses: how a binary ends on bad input (`cli`),
atomic file writes and output-folder checks (`io_utils`), and the values of
two-number flags (`flag_values`). Free of TensorFlow."""

"""Evaluation: the DAVIS-2016 J/F measures and their per-sequence statistics."""

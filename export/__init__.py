"""Serving: SavedModel (TF Serving layout) and ONNX export, and example clients."""

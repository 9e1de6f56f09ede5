"""Benchmarks of lvo_tf, one module per section of `python -m lvo_tf.benchmark`.

`timing` holds the helpers they share (medians, FLOP accounting, the
convolution and matmul ceilings, peak memory, fresh-process probes) and
`report` writes a section's JSON and Markdown. The `export` section lives in
`export/benchmark.py`, so that the library never imports `export`.
"""

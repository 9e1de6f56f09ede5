"""What the experiment binaries do: the demo (`demo.py`), the ablation study
(`ablation_study.py`; scoring one variant on cached features is
`lvo_tf/evaluation/ablation.py`) and packaging a shipped model from its
training runs (`packaging.py`). The binaries (`lvo_tf/demo.py`,
`lvo_tf/ablations.py`, `lvo_tf/package_default.py`) hold only their flags."""

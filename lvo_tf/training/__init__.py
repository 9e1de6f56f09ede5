"""Training: the visual memory on cached stream features (memory_trainer)."""

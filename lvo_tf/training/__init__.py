"""Training: the shared loop (loop), the memory on cached features (memory_trainer), MP-Net (mpnet_trainer)."""

"""Training: the shared loop, the memory on cached features, and MP-Net on flow."""

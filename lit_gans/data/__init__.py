"""Data modules and datasets (built-in synthetic data, image folders, latent files)."""

"""Evaluation metrics: FID/KID on Inception features, LPIPS diversity, and the protocols that produce them."""

"""Network architectures (no training logic)."""

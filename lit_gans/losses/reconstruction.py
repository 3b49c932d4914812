"""Reconstruction-type losses of StarGAN v2 (and friends): all mean absolute errors."""

from __future__ import annotations

import torch
from torch import Tensor


def style_reconstruction_loss(pred: Tensor, target: Tensor) -> Tensor:
    """L1 between the style re-encoded from a fake and the style it was generated with. Shapes ``(B, D)``."""
    return (pred - target).abs().mean()


def cycle_consistency_loss(rec: Tensor, orig: Tensor) -> Tensor:
    """L1 between the image (or latent) translated there and back, and the original. Any equal shapes."""
    return (rec - orig).abs().mean()


def identity_loss(out: Tensor, orig: Tensor) -> Tensor:
    """L1 between a translation with the source's own style (or into its own domain) and the source."""
    return (out - orig).abs().mean()


def diversity_sensitive_loss(fake_1: Tensor, fake_2: Tensor, margin: float | None = None) -> Tensor:
    """L1 distance between two fakes of the same content under two styles; larger is more diverse.

    The generator *maximises* it (its term enters ``g_loss`` with a minus sign). With ``margin`` set, the
    distance is clamped to at most ``margin``, so it stops pushing once outputs differ that much.
    """
    dist = (fake_1 - fake_2).abs().mean()
    if margin is not None:
        dist = torch.clamp(dist, max=margin)
    return dist

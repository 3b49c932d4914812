"""Turning data-space tensors into viewable RGB images in [0, 1]."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor


def latent_preview(x: Tensor) -> Tensor:
    """A normalised view of the first 3 channels of latents ``(B, C, h, w)``: each channel standardised over
    the batch and ±2.5 standard deviations mapped to [0, 1]. Shows structure when no VAE is configured."""
    x = x[:, :3].float()
    mean = x.mean(dim=(0, 2, 3), keepdim=True)
    std = x.std(dim=(0, 2, 3), keepdim=True).clamp_min(1e-6)
    return ((x - mean) / std / 5.0 + 0.5).clamp(0, 1)


def to_rgb01(x: Tensor, vae: Any | None = None) -> Tensor:
    """Data-space batch to RGB in [0, 1]: pixels in [-1, 1] are rescaled; latents (4 channels) are decoded by
    ``vae`` when given, else shown with :func:`latent_preview`; 1-channel maps are repeated to grey."""
    x = x.detach()
    if x.shape[1] == 3:
        return (x.float() * 0.5 + 0.5).clamp(0, 1)
    if x.shape[1] == 1:
        return x.float().clamp(0, 1).repeat(1, 3, 1, 1)
    if vae is not None:
        from lit_gans.latents.vae import decode_latents

        return (decode_latents(vae, x) * 0.5 + 0.5).clamp(0, 1).to(x.device)
    return latent_preview(x)


def same_size(images: list[Tensor]) -> list[Tensor]:
    """Resize (nearest) every batch to the largest spatial size among them, for one grid."""
    size = max(im.shape[-1] for im in images)
    return [im if im.shape[-1] == size else torch.nn.functional.interpolate(im, size=size, mode="nearest") for im in images]

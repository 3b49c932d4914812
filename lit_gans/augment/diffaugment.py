"""DiffAugment (Zhao et al., "Differentiable Augmentation for Data-Efficient GAN Training", NeurIPS 2020).

Every policy is applied to every image, with per-sample random parameters, and is differentiable with
respect to the image, so the generator is trained through the augmented fakes:

- ``color``: brightness ``x + (u - 0.5)``, saturation ``mean_c + (x - mean_c) * 2u``, contrast
  ``mean + (x - mean) * (u + 0.5)`` (u ~ U(0, 1) per sample; ``mean_c`` over channels, ``mean`` over C, H, W).
- ``translation``: an integer shift of up to 1/8 of the size per axis, zero-filled.
- ``cutout``: a zeroed square of half the size at a random position (which may overlap the border).

Written here rather than with kornia: these are a few tensor expressions, and kornia's augmentation classes
decide per batch on the host which samples to transform (a sync per call) and re-sample with ``grid_sample``
where DiffAugment's translation and cutout are exact integer index operations.
"""

from __future__ import annotations

import torch
from torch import Tensor

POLICIES = ("color", "translation", "cutout")
COLOR_POLICIES = ("color",)


def parse_policy(policy: str | list[str] | tuple[str, ...] | None) -> list[str]:
    """``"color,translation"`` (or a list) to ``["color", "translation"]``; ``""``/``None``: ``[]``."""
    if policy is None:
        return []
    names = policy.split(",") if isinstance(policy, str) else list(policy)
    names = [n.strip() for n in names if n and n.strip()]
    unknown = [n for n in names if n not in POLICIES]
    if unknown:
        from lit_gans.errors import ConfigError

        raise ConfigError(f"unknown DiffAugment policy {unknown[0]!r} in aug.policy: choose from {', '.join(POLICIES)}")
    return names


def _uniform(x: Tensor, *shape: int) -> Tensor:
    return torch.rand(x.shape[0], *shape, device=x.device, dtype=x.dtype)


def color(x: Tensor, groups: int = 1) -> Tensor:
    """Brightness, saturation, contrast (each per sample) on ``(B, C, H, W)`` images in [-1, 1].

    ``groups > 1``: the channels hold that many images (pix2pix's (source, target) pair): each gets the
    sample's same parameters, with its own channel and image means."""
    b, c, h, w = x.shape
    x = x.reshape(b, groups, c // groups, h, w)
    x = x + (_uniform(x, 1, 1, 1, 1) - 0.5)
    mean_c = x.mean(dim=2, keepdim=True)
    x = (x - mean_c) * (_uniform(x, 1, 1, 1, 1) * 2) + mean_c
    mean = x.mean(dim=(2, 3, 4), keepdim=True)
    return ((x - mean) * (_uniform(x, 1, 1, 1, 1) + 0.5) + mean).reshape(b, c, h, w)


def translation(x: Tensor, ratio: float = 0.125) -> Tensor:
    """Shift each sample by integers in ``[-ratio * size, ratio * size]`` per axis, filling with zeros."""
    b, _, h, w = x.shape
    sh, sw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    ty = torch.randint(-sh, sh + 1, (b, 1, 1), device=x.device)
    tx = torch.randint(-sw, sw + 1, (b, 1, 1), device=x.device)
    rows = torch.arange(h, device=x.device).view(1, h, 1) - ty  # source row of each output row
    cols = torch.arange(w, device=x.device).view(1, 1, w) - tx
    inside = ((rows >= 0) & (rows < h) & (cols >= 0) & (cols < w)).unsqueeze(1)
    index = (rows.clamp(0, h - 1) * w + cols.clamp(0, w - 1)).view(b, 1, h * w).expand(-1, x.shape[1], -1)
    shifted = x.flatten(2).gather(2, index).view_as(x)
    return shifted * inside.to(x.dtype)


def cutout(x: Tensor, ratio: float = 0.5) -> Tensor:
    """Zero a ``ratio * size`` square per sample, centred anywhere in the image."""
    b, _, h, w = x.shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    cy = torch.randint(0, h + (1 - ch % 2), (b, 1, 1), device=x.device)
    cx = torch.randint(0, w + (1 - cw % 2), (b, 1, 1), device=x.device)
    rows = torch.arange(h, device=x.device).view(1, h, 1)
    cols = torch.arange(w, device=x.device).view(1, 1, w)
    top, left = cy - ch // 2, cx - cw // 2
    hole = (rows >= top) & (rows < top + ch) & (cols >= left) & (cols < left + cw)
    return x * (~hole).unsqueeze(1).to(x.dtype)


def diff_augment(x: Tensor, policy: list[str], color_groups: int = 1) -> Tensor:
    """Apply the policies in order; ``policy == []`` returns ``x`` itself."""
    for name in policy:
        x = color(x, color_groups) if name == "color" else translation(x) if name == "translation" else cutout(x)
    return x

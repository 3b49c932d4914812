"""Sources derived from targets, for restoration-style tasks (Palette's colourisation and inpainting):
``condition(target, generator) -> source``. Targets are ``(C, H, W)`` in [-1, 1] (or latents)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from lit_gans.errors import ConfigError

Condition = Callable[[Tensor, torch.Generator], Tensor]


def grayscale(target: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Colourisation source: ITU-R 601 luma repeated on 3 channels (``(3, H, W)`` RGB only)."""
    if target.shape[0] != 3:
        raise ConfigError(f"data.condition=grayscale needs RGB data, got {target.shape[0]} channels")
    luma = 0.299 * target[0] + 0.587 * target[1] + 0.114 * target[2]
    return luma.expand(3, -1, -1).clone()


def inpaint(target: Tensor, generator: torch.Generator | None = None, fill: float = 0.0,
            min_frac: float = 0.25, max_frac: float = 0.5) -> Tensor:
    """Inpainting source: the target with a random rectangle (a quarter to a half of each side) set to
    ``fill`` (0: mid-gray for pixels, the mean for scaled latents)."""
    h, w = target.shape[-2:]
    u = torch.rand(4, generator=generator)
    rh = int(h * (min_frac + (max_frac - min_frac) * u[0]))
    rw = int(w * (min_frac + (max_frac - min_frac) * u[1]))
    top, left = int((h - rh) * u[2]), int((w - rw) * u[3])
    out = target.clone()
    out[..., top: top + rh, left: left + rw] = fill
    return out


CONDITIONS: dict[str, Condition | None] = {"none": None, "grayscale": grayscale, "inpaint": inpaint}


def get_condition(name: str | None) -> Condition | None:
    try:
        return CONDITIONS[name or "none"]
    except KeyError:
        raise ConfigError(f"unknown data.condition {name!r}: choose one of {', '.join(CONDITIONS)}") from None

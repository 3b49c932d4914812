"""Pixel and structure losses between a generated image and its target, with per-pixel loss maps.

* :func:`pixel_loss`: L1 or L2 on the values themselves (pix2pix's ``G_L1``; ``G_L2``).
* :func:`sobel_loss`: distance between the gradient magnitudes of the two images' grayscale (edges,
  large-scale structure).
* :func:`laplacian_loss`: distance between their Laplacians (fine texture and detail).

Every function takes ``fake`` and ``real`` of shape ``(B, C, H, W)`` (pixels in [-1, 1], or latents) and
returns the mean over all elements as a 0-dim tensor, or ``(value, map)`` with ``return_map=True``, where
``map`` is the per-pixel loss ``(B, 1, H, W)`` whose mean is ``value`` (for display; detached by the
objective). The map costs nothing extra: it is the loss before its final mean.

Sobel and Laplacian filters run in float32 with autocast off: they are three 3x3 convolutions on one
channel, and ``sqrt(g^2 + 1e-6)`` would lose its epsilon in bfloat16.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from lit_gans.errors import ConfigError
from lit_gans.utils.precision import float32_or_wider, wide_dtype

Metric = Literal["l1", "l2"]
METRICS = ("l1", "l2")
SOBEL_EPS = 1e-6

# Written out rather than taken from a library: these are the exact kernels the loss is defined with
# (torchvision/kornia normalise theirs).
SOBEL_X = ((-1.0, 0.0, 1.0), (-2.0, 0.0, 2.0), (-1.0, 0.0, 1.0))
SOBEL_Y = ((-1.0, -2.0, -1.0), (0.0, 0.0, 0.0), (1.0, 2.0, 1.0))
LAPLACIAN_4 = ((0.0, 1.0, 0.0), (1.0, -4.0, 1.0), (0.0, 1.0, 0.0))

# (name, device, dtype) -> (out_channels, 1, 3, 3) kernel; made once per device so that a training step
# never copies a kernel from the host (a pageable copy would wait for the device).
_KERNELS: dict[tuple[str, torch.device, torch.dtype], Tensor] = {}


def _kernel(name: str, device: torch.device, dtype: torch.dtype = torch.float32) -> Tensor:
    key = (name, device, dtype)
    if key not in _KERNELS:
        rows = {"sobel": (SOBEL_X, SOBEL_Y), "laplacian": (LAPLACIAN_4,)}[name]
        _KERNELS[key] = torch.tensor(rows, dtype=dtype).unsqueeze(1).to(device)
    return _KERNELS[key]


def _distance(a: Tensor, b: Tensor, metric: Metric) -> Tensor:
    if metric == "l1":
        return (a - b).abs()
    if metric == "l2":
        return (a - b).square()
    raise ConfigError(f"unknown loss metric {metric!r}: l1 or l2")


def _reduce(loss_map: Tensor, return_map: bool) -> Tensor | tuple[Tensor, Tensor]:
    value = loss_map.mean()
    return (value, loss_map) if return_map else value


def grayscale(x: Tensor) -> Tensor:
    """``(B, C, H, W)`` -> ``(B, 1, H, W)``: the mean over channels (so it also applies to latents)."""
    return x.mean(dim=1, keepdim=True)


def sobel_magnitude(x: Tensor) -> Tensor:
    """Gradient magnitude ``sqrt(gx^2 + gy^2 + 1e-6)`` of the grayscale of ``x``, ``(B, 1, H, W)`` float32.

    ``gx``, ``gy``: the 3x3 Sobel kernels, zero padding 1 (so the borders see an edge to 0)."""
    with torch.autocast(x.device.type, enabled=False):
        g = F.conv2d(grayscale(float32_or_wider(x)), _kernel("sobel", x.device, wide_dtype(x.dtype)), padding=1)
        return (g.square().sum(dim=1, keepdim=True) + SOBEL_EPS).sqrt()


def laplacian(x: Tensor) -> Tensor:
    """4-neighbour Laplacian ``[[0,1,0],[1,-4,1],[0,1,0]]`` of the grayscale of ``x`` (zero padding 1),
    ``(B, 1, H, W)`` float32."""
    with torch.autocast(x.device.type, enabled=False):
        return F.conv2d(grayscale(float32_or_wider(x)), _kernel("laplacian", x.device, wide_dtype(x.dtype)), padding=1)


def pixel_loss(fake: Tensor, real: Tensor, metric: Metric = "l1",
               return_map: bool = False) -> Tensor | tuple[Tensor, Tensor]:
    """Mean absolute (``l1``) or squared (``l2``) difference; the map is its mean over channels."""
    return _reduce(_distance(fake, real, metric).mean(dim=1, keepdim=True), return_map)


def sobel_loss(fake: Tensor, real: Tensor, metric: Metric = "l1",
               return_map: bool = False) -> Tensor | tuple[Tensor, Tensor]:
    """L1 (or L2) between the Sobel gradient magnitudes of ``fake`` and ``real`` (see :func:`sobel_magnitude`)."""
    mags = sobel_magnitude(torch.cat([fake, real]))
    mag_fake, mag_real = mags.chunk(2)
    return _reduce(_distance(mag_fake, mag_real, metric), return_map)


def laplacian_loss(fake: Tensor, real: Tensor, metric: Metric = "l1",
                   return_map: bool = False) -> Tensor | tuple[Tensor, Tensor]:
    """L1 (or L2) between the Laplacians of ``fake`` and ``real`` (see :func:`laplacian`)."""
    lap_fake, lap_real = laplacian(torch.cat([fake, real])).chunk(2)
    return _reduce(_distance(lap_fake, lap_real, metric), return_map)

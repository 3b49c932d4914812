"""Discriminators selectable by name in ``model.discriminators`` (JoliGEN's ``--D_netDs``).

Every one maps ``(B, C, H, W)`` images to a *list* of logit maps, one per scale, so that the losses treat
single- and multi-scale discriminators alike (the mean over scales; see
:func:`lit_gans.losses.unpaired_spec.mean_over_scales`):

- ``basic``: the 70x70 PatchGAN of pix2pix/CycleGAN/CUT (one scale).
- ``multiscale``: pix2pixHD's multi-scale discriminator: ``num_scales`` PatchGANs of the same architecture,
  each with its own weights, the k-th seeing the input down-sampled k times (3x3 average pooling, stride 2,
  padding not counted, as pix2pixHD).
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from lit_gans.nets.patchgan import PatchDiscriminator


class MultiScaleDiscriminator(nn.Module):
    """``num_scales`` PatchGANs on the input and its 2x, 4x ... down-sampled versions.

    Args:
        in_channels: image channels. ndf, n_layers, norm, antialias, init, init_gain: see
            :class:`PatchDiscriminator`.
        num_scales: 1 is the plain PatchGAN.
    """

    def __init__(self, in_channels: int = 3, ndf: int = 64, n_layers: int = 3, norm: str = "instance",
                 num_scales: int = 2, antialias: bool = False, init: str = "normal", init_gain: float = 0.02):
        super().__init__()
        if num_scales < 1:
            raise ValueError(f"num_scales must be >= 1, got {num_scales}")
        self.scales = nn.ModuleList(PatchDiscriminator(in_channels, ndf, n_layers, norm, antialias, init, init_gain)
                                    for _ in range(num_scales))

    def forward(self, x: Tensor) -> list[Tensor]:
        out = []
        for i, d in enumerate(self.scales):
            if i > 0:
                x = F.avg_pool2d(x, 3, stride=2, padding=1, count_include_pad=False)
            out.append(d(x))
        return out


DISCRIMINATORS = ("basic", "multiscale")
"""Names accepted in ``model.discriminators``."""


def build_discriminator(kind: str, in_channels: int = 3, ndf: int = 64, n_layers: int = 3, norm: str = "instance",
                        num_scales: int = 2, antialias: bool = False, init: str = "normal",
                        init_gain: float = 0.02) -> nn.Module:
    """A discriminator by name (see the module docstring)."""
    kw = {"antialias": antialias, "init": init, "init_gain": init_gain}
    if kind == "basic":
        return MultiScaleDiscriminator(in_channels, ndf, n_layers, norm, num_scales=1, **kw)
    if kind == "multiscale":
        return MultiScaleDiscriminator(in_channels, ndf, n_layers, norm, num_scales=num_scales, **kw)
    raise ValueError(f"unknown discriminator {kind!r}: choose from {', '.join(DISCRIMINATORS)}")

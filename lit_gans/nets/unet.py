"""pix2pix's U-Net generator (``UnetGenerator``): an encoder-decoder with a skip connection around every level.

``num_downs`` stride-2 levels take a ``2**num_downs`` image down to 1x1 (8 levels for UNet-256). Level ``i``
(0 outermost) has ``ngf * min(2**i, 8)`` channels; each decoder output is concatenated with its encoder input
on the way up. Down: LeakyReLU(0.2), conv 4x4/2, norm (no activation before the first conv, no norm after
the innermost one); up: ReLU, transposed conv 4x4/2, norm (``tanh`` at the top instead of norm). Dropout 0.5
follows the decoder blocks of the ``ngf * 8`` levels between the four outer levels and the innermost one
(three at 256 px), the paper's noise source. 54.414 M parameters at ``ngf=64``, 8 levels, batch norm.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from lit_gans.nets.patchgan import init_weights, make_norm


class UnetLevel(nn.Module):
    """One level: ``x -> cat(x, up(inner(down(x))))`` (the outermost level returns ``up(...)`` alone).

    Args:
        outer: channels of the level's input (and of its decoder output); in/out image channels at the top.
        inner: channels after its down-sampling conv.
        inner_level: the next level down (``None`` for the innermost).
        out_channels: the top level's output channels (``None`` below the top).
    """

    def __init__(self, outer: int, inner: int, inner_level: nn.Module | None, norm: str, dropout: float = 0.0,
                 out_channels: int | None = None):
        super().__init__()
        self.outermost = out_channels is not None
        innermost = inner_level is None
        bias = norm != "batch"  # a batch-norm's shift makes the conv bias redundant
        up_in = inner if innermost else inner * 2  # the level below returns cat(its input, its output)
        down: list[nn.Module] = [] if self.outermost else [nn.LeakyReLU(0.2, True)]
        down.append(nn.Conv2d(outer, inner, 4, 2, 1, bias=bias))
        if not (self.outermost or innermost):
            down.append(make_norm(norm, inner))
        up: list[nn.Module] = [nn.ReLU(True)]
        if self.outermost:
            up += [nn.ConvTranspose2d(up_in, out_channels, 4, 2, 1)]
        else:
            up += [nn.ConvTranspose2d(up_in, outer, 4, 2, 1, bias=bias), make_norm(norm, outer)]
            if dropout > 0:
                up.append(nn.Dropout(dropout))
        self.down = nn.Sequential(*down)
        self.inner = inner_level if inner_level is not None else nn.Identity()
        self.up = nn.Sequential(*up)

    def forward(self, x: Tensor) -> Tensor:
        y = self.up(self.inner(self.down(x)))
        return y if self.outermost else torch.cat([x, y], dim=1)


class UnetGenerator(nn.Module):
    """``(B, in_channels, H, W)`` -> ``(B, out_channels, H, W)``; ``H`` and ``W`` multiples of ``2**num_downs``.

    Args:
        in_channels, out_channels: 3 for RGB, 4 for SD-VAE latents.
        num_downs: levels (8 for 256 px; ``log2(size)`` reaches 1x1 at the bottleneck).
        ngf: channels of the outermost level.
        norm: ``batch`` (pix2pix), ``instance`` or ``none``.
        dropout: rate of the dropout blocks (0.5; 0 disables them).
        output_activation: ``tanh`` (pixels in [-1, 1]) or ``none`` (unbounded, e.g. latents).
    """

    def __init__(self, in_channels: int = 3, out_channels: int = 3, num_downs: int = 8, ngf: int = 64,
                 norm: str = "batch", dropout: float = 0.5, output_activation: str = "tanh"):
        super().__init__()
        if num_downs < 2:
            raise ValueError(f"num_downs must be at least 2, got {num_downs}")
        if output_activation not in ("tanh", "none"):
            raise ValueError(f"output_activation must be tanh or none, got {output_activation!r}")
        self.num_downs = num_downs
        width = [ngf * min(2**i, 8) for i in range(num_downs)]
        level: nn.Module | None = None
        for i in reversed(range(1, num_downs)):
            p = dropout if 4 <= i < num_downs - 1 else 0.0  # the middle ngf*8 levels, as the original
            level = UnetLevel(width[i - 1], width[i], level, norm, dropout=p)
        self.model = UnetLevel(in_channels, width[0], level, norm, out_channels=out_channels)
        self.activation = nn.Tanh() if output_activation == "tanh" else nn.Identity()
        init_weights(self)

    def forward(self, x: Tensor) -> Tensor:
        return self.activation(self.model(x))

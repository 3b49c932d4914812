"""Anti-aliased ("blur-pool") 2x down- and up-sampling of CUT (Park et al., 2020), after Zhang, "Making
convolutional networks shift-invariant again" (ICML 2019): a strided operation preceded (down) or followed (up)
by a fixed binomial low-pass filter. Official code: taesungp/contrastive-unpaired-translation,
``models/networks.py`` (``get_filter``, ``Downsample``, ``Upsample``). torchvision has no blur-pool, hence these.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def _binomial_filter(taps: Sequence[float], channels: int) -> Tensor:
    """Depthwise ``(channels, 1, k, k)`` outer product of ``taps`` normalised to sum 1."""
    a = torch.tensor(taps, dtype=torch.float32)
    k = torch.outer(a, a)
    return (k / k.sum()).expand(channels, 1, *k.shape).contiguous()


class BlurDownsample(nn.Module):
    """Anti-aliased 2x down-sampling: reflection pad 1, then a depthwise [1, 2, 1] x [1, 2, 1] / 16 blur with
    stride 2. ``(B, C, H, W) -> (B, C, ceil(H/2), ceil(W/2))``."""

    def __init__(self, channels: int):
        super().__init__()
        self.register_buffer("filt", _binomial_filter((1.0, 2.0, 1.0), channels), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        return F.conv2d(F.pad(x, (1, 1, 1, 1), mode="reflect"), self.filt.to(x.dtype), stride=2, groups=x.shape[1])


class BlurUpsample(nn.Module):
    """Anti-aliased 2x up-sampling: replicate pad 1, a depthwise transposed convolution with the
    [1, 3, 3, 1] x [1, 3, 3, 1] / 64 filter (times 4 to keep the mean), stride 2, then a 1-pixel crop on each
    side. ``(B, C, H, W) -> (B, C, 2H, 2W)``."""

    def __init__(self, channels: int):
        super().__init__()
        self.register_buffer("filt", 4.0 * _binomial_filter((1.0, 3.0, 3.0, 1.0), channels), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        y = F.conv_transpose2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), self.filt.to(x.dtype), stride=2, padding=2,
                               groups=x.shape[1])
        return y[:, :, 1:-1, 1:-1]

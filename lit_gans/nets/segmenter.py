"""A small U-Net segmenter: JoliGEN's ``f_s``, the network that learns the semantic masks of real images so
that the generator can be asked to keep them (``G_sem_mask_AB``)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lit_gans.nets.patchgan import init_weights


def _conv_block(c_in: int, c_out: int) -> nn.Sequential:
    # Group norm: independent of the batch size (CycleGAN-style batches of 1) and the same in train and eval.
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, 1, 1, bias=False), nn.GroupNorm(min(8, c_out), c_out), nn.ReLU(True),
        nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False), nn.GroupNorm(min(8, c_out), c_out), nn.ReLU(True),
    )


class UNetSegmenter(nn.Module):
    """``(B, in_channels, H, W) -> (B, num_classes, H, W)`` class logits; H and W multiples of ``2**depth``.

    Encoder: ``depth`` max-pooled levels of two 3x3 conv-norm-ReLU, widths ``width * 2**i`` (capped at
    ``8 * width``); decoder: bilinear up-sampling, concatenation with the encoder level, two convs; a 1x1
    convolution to the class logits.

    Args:
        in_channels: image channels. num_classes: mask classes (0 = background).
        width: channels of the first level (32: 1.95 M parameters at depth 3 for RGB and 2 classes).
        depth: number of 2x down-samplings.
    """

    def __init__(self, in_channels: int = 3, num_classes: int = 2, width: int = 32, depth: int = 3):
        super().__init__()
        widths = [min(width * 2**i, 8 * width) for i in range(depth + 1)]
        self.down = nn.ModuleList([_conv_block(in_channels, widths[0])]
                                  + [_conv_block(widths[i], widths[i + 1]) for i in range(depth)])
        self.up = nn.ModuleList(_conv_block(widths[i + 1] + widths[i], widths[i]) for i in reversed(range(depth)))
        self.head = nn.Conv2d(widths[0], num_classes, 1)
        init_weights(self)
        self.depth = depth

    def forward(self, x: Tensor) -> Tensor:
        skips = []
        for i, block in enumerate(self.down):
            x = block(x if i == 0 else F.max_pool2d(x, 2))
            skips.append(x)
        skips.pop()
        for block in self.up:
            skip = skips.pop()
            x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            x = block(torch.cat([x, skip], dim=1))
        return self.head(x)

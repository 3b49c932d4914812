"""A small domain classifier: the judge of translations (:mod:`lit_gans.metrics.judge`).

``(B, C, S, S)`` standardised images or latents -> ``(B, num_domains)`` logits, with the ``(B, width * 4)``
pooled features it classifies (the space of the judge's Fréchet distance). Four 3x3 convolution stages with
group norm, three of them down-sampling by 2, then global average pooling: about 0.3 M parameters at width 32,
fast to train on a CPU.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class DomainClassifier(nn.Module):
    def __init__(self, in_channels: int, num_domains: int, width: int = 32):
        super().__init__()
        widths = (width, 2 * width, 4 * width, 4 * width)
        layers: list[nn.Module] = []
        c = in_channels
        for i, w in enumerate(widths):
            layers += [nn.Conv2d(c, w, 3, 2 if i else 1, 1), nn.GroupNorm(8, w), nn.SiLU()]
            c = w
        self.body = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.Dropout(0.2), nn.Linear(c, num_domains))
        self.num_features = c

    def features(self, x: Tensor) -> Tensor:
        return torch.flatten(nn.functional.adaptive_avg_pool2d(self.body(x), 1), 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))

"""A small domain classifier: the judge of translations (:mod:`lit_gans.metrics.judge`).

``(B, C, S, S)`` standardised images or latents -> ``(B, num_domains)`` logits, with the ``(B, width * 4)``
pooled features it classifies (the space of the judge's Fréchet distance) and the style statistics of its first
stages (channel means and standard deviations of their activations, the style representation of AdaIN: Huang &
Belongie, ICCV 2017). Four 3x3 convolution stages with group norm, three of them down-sampling by 2, then global
average pooling: about 0.3 M parameters at width 32, fast to train on a CPU.
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

    def style_statistics(self, x: Tensor, stages: int = 2) -> Tensor:
        """``(B, 2 * (width + 2 * width))`` for ``stages=2``: each channel's mean and standard deviation over the
        positions of the first ``stages`` stages' activations. They describe colour and texture, not where things
        are, which is what a reference's style is in StarGAN v2."""
        out = []
        for i, layer in enumerate(self.body):
            x = layer(x)
            if i % 3 == 2:  # the end of a stage (conv, norm, activation)
                out += [x.mean(dim=(2, 3)), x.std(dim=(2, 3))]
                if len(out) == 2 * stages:
                    break
        return torch.cat(out, dim=1)

    def features(self, x: Tensor) -> Tensor:
        return torch.flatten(nn.functional.adaptive_avg_pool2d(self.body(x), 1), 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))

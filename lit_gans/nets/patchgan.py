"""PatchGAN discriminator (pix2pix/CycleGAN's ``NLayerDiscriminator``) and the normal(0, 0.02) init.

With ``n_layers=3`` each output logit sees a 70x70 patch. Parameter counts reproduce the originals:
3 input channels with instance norm (CycleGAN) 2.765 M; 6 input channels with batch norm (pix2pix) 2.769 M.
"""

from __future__ import annotations

from torch import Tensor, nn


def norm_layer(kind: str) -> type[nn.Module] | None:
    """``batch`` (affine), ``instance`` (no affine, no running stats, as CycleGAN) or ``none``."""
    if kind == "batch":
        return nn.BatchNorm2d
    if kind == "instance":
        return nn.InstanceNorm2d
    if kind == "none":
        return None
    raise ValueError(f"unknown norm {kind!r}: batch, instance or none")


def make_norm(kind: str, channels: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=False, track_running_stats=False)
    return nn.Identity()


def init_weights(net: nn.Module, gain: float = 0.02) -> nn.Module:
    """pix2pix/CycleGAN init: conv and linear weights ~ N(0, gain), biases 0; batch-norm scales ~ N(1, gain)."""
    for m in net.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, gain)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, gain)
            nn.init.zeros_(m.bias)
    return net


class PatchDiscriminator(nn.Module):
    """``(B, in_channels, H, W)`` -> ``(B, 1, H', W')`` logits, one per receptive-field patch.

    Args:
        in_channels: 3 (unconditional) or 6 (pix2pix: source and target concatenated).
        ndf: width of the first layer; n_layers: strided blocks (3: 70x70 patches).
        norm: ``batch`` (pix2pix), ``instance`` (CycleGAN/CUT) or ``none``.
    """

    def __init__(self, in_channels: int = 3, ndf: int = 64, n_layers: int = 3, norm: str = "instance"):
        super().__init__()
        use_bias = norm != "batch"  # a batch-norm's shift makes the conv bias redundant
        layers: list[nn.Module] = [nn.Conv2d(in_channels, ndf, 4, 2, 1), nn.LeakyReLU(0.2, True)]
        mult = 1
        for n in range(1, n_layers + 1):
            prev, mult = mult, min(2**n, 8)
            stride = 2 if n < n_layers else 1
            layers += [nn.Conv2d(ndf * prev, ndf * mult, 4, stride, 1, bias=use_bias), make_norm(norm, ndf * mult),
                       nn.LeakyReLU(0.2, True)]
        layers.append(nn.Conv2d(ndf * mult, 1, 4, 1, 1))
        self.model = nn.Sequential(*layers)
        init_weights(self)

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x)

"""PatchGAN discriminator (pix2pix/CycleGAN/CUT's ``NLayerDiscriminator``) and the networks' initialisation.

With ``n_layers=3`` each output logit sees a 70x70 patch. Parameter counts reproduce the originals:
3 input channels with instance norm (CycleGAN) 2.765 M; 6 input channels with batch norm (pix2pix) 2.769 M.
``antialias=True`` is CUT's default discriminator (official ``--netD basic`` without ``--no_antialias``):
each stride-2 convolution becomes a stride-1 convolution whose activation is blur-pooled
(:class:`~lit_gans.nets.antialias.BlurDownsample`); the parameter count does not change.
"""

from __future__ import annotations

from torch import Tensor, nn

from lit_gans.nets.antialias import BlurDownsample

INIT_TYPES = ("normal", "xavier", "kaiming", "orthogonal")


def make_norm(kind: str, channels: int) -> nn.Module:
    """``batch`` (affine), ``instance`` (no affine, no running stats, as CycleGAN) or ``none`` (identity)."""
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=False, track_running_stats=False)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"unknown norm {kind!r}: batch, instance or none")


def init_weights(net: nn.Module, gain: float = 0.02, kind: str = "normal") -> nn.Module:
    """The ``init_weights`` of pix2pix/CycleGAN/CUT (``models/networks.py``): conv and linear weights drawn by
    ``kind`` (``normal``: N(0, gain), pix2pix/CycleGAN; ``xavier``: Xavier-normal with ``gain``, CUT's default;
    ``kaiming``: Kaiming-normal, fan_in, gain ignored; ``orthogonal`` with ``gain``), their biases 0;
    batch-norm scales ~ N(1, gain) and shifts 0 whatever the kind."""
    if kind not in INIT_TYPES:
        raise ValueError(f"unknown init {kind!r}: choose from {', '.join(INIT_TYPES)}")
    for m in net.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            if kind == "normal":
                nn.init.normal_(m.weight, 0.0, gain)
            elif kind == "xavier":
                nn.init.xavier_normal_(m.weight, gain=gain)
            elif kind == "kaiming":
                nn.init.kaiming_normal_(m.weight, a=0, mode="fan_in")
            else:
                nn.init.orthogonal_(m.weight, gain=gain)
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
        antialias: blur-pooled instead of strided down-sampling (CUT; see the module docstring).
        init, init_gain: see :func:`init_weights`.
    """

    def __init__(self, in_channels: int = 3, ndf: int = 64, n_layers: int = 3, norm: str = "instance",
                 antialias: bool = False, init: str = "normal", init_gain: float = 0.02):
        super().__init__()
        use_bias = norm != "batch"  # a batch-norm's shift makes the conv bias redundant

        def down(c_in: int, c_out: int, norm_kind: str | None, bias: bool) -> list[nn.Module]:
            norm_layers = [] if norm_kind is None else [make_norm(norm_kind, c_out)]
            if antialias:
                return [nn.Conv2d(c_in, c_out, 4, 1, 1, bias=bias), *norm_layers, nn.LeakyReLU(0.2, True),
                        BlurDownsample(c_out)]
            return [nn.Conv2d(c_in, c_out, 4, 2, 1, bias=bias), *norm_layers, nn.LeakyReLU(0.2, True)]

        layers: list[nn.Module] = down(in_channels, ndf, None, True)
        mult = 1
        for n in range(1, n_layers):
            prev, mult = mult, min(2**n, 8)
            layers += down(ndf * prev, ndf * mult, norm, use_bias)
        prev, mult = mult, min(2**n_layers, 8)
        layers += [nn.Conv2d(ndf * prev, ndf * mult, 4, 1, 1, bias=use_bias), make_norm(norm, ndf * mult),
                   nn.LeakyReLU(0.2, True), nn.Conv2d(ndf * mult, 1, 4, 1, 1)]
        self.model = nn.Sequential(*layers)
        init_weights(self, init_gain, init)

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x)

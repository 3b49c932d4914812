"""The ResNet generator of CycleGAN (Zhu et al., 2017) and CUT (Park et al., 2020).

``c7s1-ngf, d(2ngf), d(4ngf), n_blocks x R(4ngf), u(2ngf), u(ngf), c7s1-out``: reflection padding, instance
norm without affine parameters (CycleGAN's ``--norm instance``), ReLU, and a tanh output for pixels in
[-1, 1]. With ngf 64 and 9 blocks it has 11.378 M parameters, the count CycleGAN prints for
``resnet_9blocks``; ``antialias`` does not change it (the blur filters are fixed buffers).

``antialias=True`` is CUT's default: each stride-2 convolution becomes a stride-1 convolution followed by a
[1, 2, 1] blur-pool, and each transposed convolution a [1, 3, 3, 1] blur-upsampling followed by a stride-1
convolution (Zhang, "Making convolutional networks shift-invariant again", 2019). ``antialias=False`` is
CycleGAN's generator.

All layers are one flat ``nn.Sequential`` indexed as CUT indexes its generator, so ``encode(x, (0, 4, 8, 12,
16))`` returns the features CUT's PatchNCE uses: with ``antialias`` the padded input (layer 0), the first
and second down-sampling convolutions (4: 2ngf at full resolution, 8: 4ngf at 1/2) and the outputs of the
first and fifth residual blocks (12, 16: 4ngf at 1/4).
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from lit_gans.nets.antialias import BlurDownsample, BlurUpsample
from lit_gans.nets.patchgan import init_weights, make_norm


class ResnetBlock(nn.Module):
    """``x + [pad, conv3x3, norm, ReLU, (dropout 0.5), pad, conv3x3, norm](x)`` with reflection padding."""

    def __init__(self, dim: int, norm: str = "instance", dropout: bool = False):
        super().__init__()
        bias = norm != "batch"
        layers: list[nn.Module] = [nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, bias=bias), make_norm(norm, dim),
                                   nn.ReLU(True)]
        if dropout:
            layers.append(nn.Dropout(0.5))
        layers += [nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, bias=bias), make_norm(norm, dim)]
        self.block = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.block(x)


def default_n_blocks(img_size: int) -> int:
    """CycleGAN's choice: ``resnet_9blocks`` at 256 px and above, ``resnet_6blocks`` below."""
    return 9 if img_size >= 256 else 6


class ResnetGenerator(nn.Module):
    """``(B, in_channels, H, W) -> (B, out_channels, H, W)``, H and W multiples of 4.

    Args:
        in_channels, out_channels: 3 for RGB, 4 for SD-VAE latents (``out_channels`` defaults to ``in_channels``).
        ngf: width of the first layer (64). n_blocks: residual blocks at 4 * ngf (9 at 256 px, 6 at 128).
        norm: ``instance`` (CycleGAN/CUT) or ``none``. Batch norm is not offered: the models batch several
            passes through a generator into one, which is exact only for per-sample normalisation.
        antialias: CUT's blur-pool down- and blur up-sampling (see the module docstring).
        dropout: dropout 0.5 inside the residual blocks (off in CycleGAN and CUT).
        output_activation: ``tanh`` for pixels in [-1, 1], ``none`` for latents.
        init, init_gain: see :func:`~lit_gans.nets.patchgan.init_weights` (CycleGAN: normal; CUT: xavier).
    """

    def __init__(self, in_channels: int = 3, out_channels: int | None = None, ngf: int = 64, n_blocks: int = 9,
                 norm: str = "instance", antialias: bool = False, dropout: bool = False, output_activation: str = "tanh",
                 init: str = "normal", init_gain: float = 0.02):
        super().__init__()
        if norm not in ("instance", "none"):
            raise ValueError(f"generator norm must be instance or none, got {norm!r}")
        if output_activation not in ("tanh", "none"):
            raise ValueError(f"output_activation must be tanh or none, got {output_activation!r}")
        out_channels = in_channels if out_channels is None else out_channels
        layers: list[nn.Module] = [nn.ReflectionPad2d(3), nn.Conv2d(in_channels, ngf, 7), make_norm(norm, ngf),
                                   nn.ReLU(True)]
        for i in range(2):  # down-sampling
            c = ngf * 2**i
            if antialias:
                layers += [nn.Conv2d(c, 2 * c, 3, 1, 1), make_norm(norm, 2 * c), nn.ReLU(True), BlurDownsample(2 * c)]
            else:
                layers += [nn.Conv2d(c, 2 * c, 3, 2, 1), make_norm(norm, 2 * c), nn.ReLU(True)]
        layers += [ResnetBlock(4 * ngf, norm, dropout) for _ in range(n_blocks)]
        for i in range(2):  # up-sampling
            c = ngf * 2 ** (2 - i)
            if antialias:
                layers += [BlurUpsample(c), nn.Conv2d(c, c // 2, 3, 1, 1)]
            else:
                layers += [nn.ConvTranspose2d(c, c // 2, 3, 2, 1, output_padding=1)]
            layers += [make_norm(norm, c // 2), nn.ReLU(True)]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, out_channels, 7)]
        if output_activation == "tanh":
            layers.append(nn.Tanh())
        self.model = nn.Sequential(*layers)
        init_weights(self, init_gain, init)

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x)

    def _check_layers(self, layers: Sequence[int]) -> None:
        if not layers or min(layers) < 0 or max(layers) >= len(self.model):
            raise ValueError(f"feature layers must be in [0, {len(self.model) - 1}], got {list(layers)}")

    def encode(self, x: Tensor, layers: Sequence[int]) -> list[Tensor]:
        """Outputs of the given layers of ``model`` (in increasing order), running only as far as the last."""
        self._check_layers(layers)
        wanted, last, feats = set(layers), max(layers), []
        for i, layer in enumerate(self.model):
            x = layer(x)
            if i in wanted:
                feats.append(x)
            if i == last:
                break
        return feats

    def forward_with_features(self, x: Tensor, layers: Sequence[int]) -> tuple[Tensor, list[Tensor]]:
        """The translation and the outputs of ``layers`` of the same pass (what :meth:`encode` gives for ``x``)."""
        self._check_layers(layers)
        wanted, feats = set(layers), []
        for i, layer in enumerate(self.model):
            x = layer(x)
            if i in wanted:
                feats.append(x)
        return x, feats

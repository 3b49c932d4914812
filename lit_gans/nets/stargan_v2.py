"""StarGAN v2 networks (Choi et al., CVPR 2020): generator, mapping network, style encoder, discriminator.

The layout follows the official implementation so that its parameter counts are reproduced exactly
(``official`` preset, 256 px, 2 domains, no high-pass filter): generator 33.89 M, mapping network 2.44 M,
style encoder 20.92 M, discriminator 20.85 M. Unlike it, the number of input channels (3 for pixels, 4 for
SD-VAE latents), the base width and the number of down-sampling blocks are arguments, so the same nets
train on 4x32x32 latents or on small CPU-sized images.

Shapes: images/latents ``(B, C, H, W)`` with ``H == W == img_size``; domain labels ``(B,)`` long;
styles ``(B, style_dim)``; latent codes ``(B, latent_dim)``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def official_dim(img_size: int) -> int:
    """Base width of the official nets: ``2**14 // img_size`` (64 at 256 px, 512 at 32 px)."""
    return max(1, 2**14 // img_size)


def _log2(img_size: int) -> int:
    n = int(math.log2(img_size))
    if 2**n != img_size or img_size < 8:
        raise ValueError(f"img_size must be a power of two >= 8, got {img_size}")
    return n


def he_init(module: nn.Module) -> None:
    """Kaiming-normal (fan_in, ReLU gain) weights and zero biases for convs and linears, as the original."""
    if isinstance(module, (nn.Conv2d, nn.Linear)):
        nn.init.kaiming_normal_(module.weight, mode="fan_in", nonlinearity="relu")
        if module.bias is not None:
            nn.init.zeros_(module.bias)


def select_domain(out: Tensor, y: Tensor) -> Tensor:
    """Pick each sample's own domain head: ``out[b, y[b]]`` for ``out`` of shape ``(B, num_domains, ...)``."""
    return out[torch.arange(out.shape[0], device=out.device), y]


class ResBlk(nn.Module):
    """Pre-activation residual block, optional instance norm and 2x average-pool down-sampling."""

    def __init__(self, dim_in: int, dim_out: int, normalize: bool = False, downsample: bool = False):
        super().__init__()
        self.normalize = normalize
        self.downsample = downsample
        self.actv = nn.LeakyReLU(0.2)
        self.conv1 = nn.Conv2d(dim_in, dim_in, 3, 1, 1)
        self.conv2 = nn.Conv2d(dim_in, dim_out, 3, 1, 1)
        if normalize:
            self.norm1 = nn.InstanceNorm2d(dim_in, affine=True)
            self.norm2 = nn.InstanceNorm2d(dim_in, affine=True)
        self.conv1x1 = nn.Conv2d(dim_in, dim_out, 1, 1, 0, bias=False) if dim_in != dim_out else None

    def _shortcut(self, x: Tensor) -> Tensor:
        if self.conv1x1 is not None:
            x = self.conv1x1(x)
        return F.avg_pool2d(x, 2) if self.downsample else x

    def _residual(self, x: Tensor) -> Tensor:
        if self.normalize:
            x = self.norm1(x)
        x = self.conv1(self.actv(x))
        if self.downsample:
            x = F.avg_pool2d(x, 2)
        if self.normalize:
            x = self.norm2(x)
        return self.conv2(self.actv(x))

    def forward(self, x: Tensor) -> Tensor:
        return (self._shortcut(x) + self._residual(x)) * (1 / math.sqrt(2))  # unit variance


class AdaIN(nn.Module):
    """Adaptive instance norm: ``(1 + gamma(s)) * IN(x) + beta(s)``."""

    def __init__(self, style_dim: int, num_features: int):
        super().__init__()
        self.norm = nn.InstanceNorm2d(num_features, affine=False)
        self.fc = nn.Linear(style_dim, num_features * 2)

    def forward(self, x: Tensor, s: Tensor) -> Tensor:
        gamma, beta = self.fc(s)[:, :, None, None].chunk(2, dim=1)
        return (1 + gamma) * self.norm(x) + beta


class AdainResBlk(nn.Module):
    """Residual block with AdaIN, optional 2x nearest up-sampling. With the high-pass filter (``w_hpf > 0``)
    the block has no identity path (the official ``AdainResBlk``): the generator's filtered skip connections
    carry the source's details instead."""

    def __init__(self, dim_in: int, dim_out: int, style_dim: int = 64, upsample: bool = False, w_hpf: float = 0.0):
        super().__init__()
        self.upsample = upsample
        self.w_hpf = w_hpf
        self.actv = nn.LeakyReLU(0.2)
        self.conv1 = nn.Conv2d(dim_in, dim_out, 3, 1, 1)
        self.conv2 = nn.Conv2d(dim_out, dim_out, 3, 1, 1)
        self.norm1 = AdaIN(style_dim, dim_in)
        self.norm2 = AdaIN(style_dim, dim_out)
        self.conv1x1 = nn.Conv2d(dim_in, dim_out, 1, 1, 0, bias=False) if dim_in != dim_out else None

    def _shortcut(self, x: Tensor) -> Tensor:
        if self.upsample:
            x = F.interpolate(x, scale_factor=2, mode="nearest")
        return self.conv1x1(x) if self.conv1x1 is not None else x

    def _residual(self, x: Tensor, s: Tensor) -> Tensor:
        x = self.actv(self.norm1(x, s))
        if self.upsample:
            x = F.interpolate(x, scale_factor=2, mode="nearest")
        x = self.conv1(x)
        x = self.actv(self.norm2(x, s))
        return self.conv2(x)

    def forward(self, x: Tensor, s: Tensor) -> Tensor:
        out = self._residual(x, s)
        if self.w_hpf > 0:
            return out
        return (out + self._shortcut(x)) * (1 / math.sqrt(2))


class HighPass(nn.Module):
    """A fixed 3x3 Laplacian-like high-pass filter ``[[-1,-1,-1],[-1,8,-1],[-1,-1,-1]] / w_hpf``, depthwise."""

    def __init__(self, w_hpf: float):
        super().__init__()
        kernel = torch.tensor([[-1.0, -1.0, -1.0], [-1.0, 8.0, -1.0], [-1.0, -1.0, -1.0]]) / w_hpf
        self.register_buffer("filter", kernel, persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        weight = self.filter.to(x.dtype).expand(x.shape[1], 1, 3, 3)
        return F.conv2d(x, weight, padding=1, groups=x.shape[1])


class Generator(nn.Module):
    """Encoder of down-sampling ResBlks with instance norm, decoder of AdaIN ResBlks driven by a style code.

    Args:
        img_size: spatial size of inputs (power of two).
        in_channels: 3 for RGB in [-1, 1], 4 for SD-VAE latents.
        dim: width after the stem; ``None`` for the official ``2**14 // img_size``.
        max_conv_dim: width cap.
        style_dim: style code size.
        n_down: number of 2x down/up-sampling blocks; ``None`` for the official ``log2(img_size) - 4``
            (at least 1).
        n_bottleneck: residual blocks at the lowest resolution (2 in the original).
        w_hpf: weight of the high-pass filter of the CelebA-HQ setting (0: off). When on, as the official
            code: one more down-sampling block by default, decoder blocks without identity paths, and skip
            connections from the encoder at ``img_size / 8, / 4, / 2`` (32, 64, 128 at 256 px), masked by the
            face masks that :meth:`forward` takes (:meth:`lit_gans.nets.fan.FAN.masks`) and high-pass filtered.
    """

    def __init__(self, img_size: int = 256, in_channels: int = 3, dim: int | None = None, max_conv_dim: int = 512,
                 style_dim: int = 64, n_down: int | None = None, n_bottleneck: int = 2, w_hpf: float = 0.0):
        super().__init__()
        dim_in = dim or official_dim(img_size)
        n_down = max(1, _log2(img_size) - 4) + (1 if w_hpf > 0 else 0) if n_down is None else n_down
        self.img_size, self.in_channels, self.style_dim = img_size, in_channels, style_dim
        self.skip_sizes = (img_size // 8, img_size // 4, img_size // 2) if w_hpf > 0 else ()
        self.from_rgb = nn.Conv2d(in_channels, dim_in, 3, 1, 1)
        self.encode = nn.ModuleList()
        self.decode = nn.ModuleList()
        self.to_rgb = nn.Sequential(
            nn.InstanceNorm2d(dim_in, affine=True), nn.LeakyReLU(0.2), nn.Conv2d(dim_in, in_channels, 1, 1, 0)
        )
        dim_out = dim_in
        for _ in range(n_down):
            dim_out = min(dim_in * 2, max_conv_dim)
            self.encode.append(ResBlk(dim_in, dim_out, normalize=True, downsample=True))
            self.decode.insert(0, AdainResBlk(dim_out, dim_in, style_dim, upsample=True, w_hpf=w_hpf))
            dim_in = dim_out
        for _ in range(n_bottleneck):
            self.encode.append(ResBlk(dim_out, dim_out, normalize=True))
            self.decode.insert(0, AdainResBlk(dim_out, dim_out, style_dim, w_hpf=w_hpf))
        self.hpf = HighPass(w_hpf) if w_hpf > 0 else None
        self.apply(he_init)

    def forward(self, x: Tensor, s: Tensor, masks: tuple[Tensor, Tensor] | None = None) -> Tensor:
        """``masks``: the two face masks ``(B, 1, h, w)`` of the high-pass filter (ignored without it)."""
        use_masks = masks is not None and self.hpf is not None
        x = self.from_rgb(x)
        cache: dict[int, Tensor] = {}
        for block in self.encode:
            if use_masks and x.shape[2] in self.skip_sizes:
                cache[x.shape[2]] = x
            x = block(x)
        for block in self.decode:
            x = block(x, s)
            if use_masks and x.shape[2] in cache:
                mask = masks[0] if x.shape[2] == self.skip_sizes[0] else masks[1]
                mask = F.interpolate(mask.to(x.dtype), size=x.shape[2], mode="bilinear")
                x = x + self.hpf(mask * cache[x.shape[2]])
        return self.to_rgb(x)


class MappingNetwork(nn.Module):
    """MLP from a random code ``z`` to one style per domain; returns the style of domain ``y``."""

    def __init__(self, latent_dim: int = 16, style_dim: int = 64, num_domains: int = 2, hidden_dim: int = 512):
        super().__init__()
        layers: list[nn.Module] = [nn.Linear(latent_dim, hidden_dim), nn.ReLU()]
        for _ in range(3):
            layers += [nn.Linear(hidden_dim, hidden_dim), nn.ReLU()]
        self.shared = nn.Sequential(*layers)
        self.unshared = nn.ModuleList()
        for _ in range(num_domains):
            head: list[nn.Module] = []
            for _ in range(3):
                head += [nn.Linear(hidden_dim, hidden_dim), nn.ReLU()]
            self.unshared.append(nn.Sequential(*head, nn.Linear(hidden_dim, style_dim)))
        self.latent_dim, self.num_domains = latent_dim, num_domains
        self.apply(he_init)

    def forward(self, z: Tensor, y: Tensor) -> Tensor:
        h = self.shared(z)
        return select_domain(torch.stack([head(h) for head in self.unshared], dim=1), y)


def _downsampling_trunk(img_size: int, in_channels: int, dim: int | None, max_conv_dim: int) -> tuple[list[nn.Module], int]:
    """Stem conv and ResBlks down to 4x4, then a 4x4 conv to 1x1 (shared by style encoder and discriminator)."""
    dim_in = dim or official_dim(img_size)
    blocks: list[nn.Module] = [nn.Conv2d(in_channels, dim_in, 3, 1, 1)]
    dim_out = dim_in
    for _ in range(_log2(img_size) - 2):
        dim_out = min(dim_in * 2, max_conv_dim)
        blocks.append(ResBlk(dim_in, dim_out, downsample=True))
        dim_in = dim_out
    blocks += [nn.LeakyReLU(0.2), nn.Conv2d(dim_out, dim_out, 4, 1, 0), nn.LeakyReLU(0.2)]
    return blocks, dim_out


class StyleEncoder(nn.Module):
    """Encodes an image into one style per domain; returns the style of domain ``y``."""

    def __init__(self, img_size: int = 256, in_channels: int = 3, dim: int | None = None, max_conv_dim: int = 512,
                 style_dim: int = 64, num_domains: int = 2):
        super().__init__()
        blocks, dim_out = _downsampling_trunk(img_size, in_channels, dim, max_conv_dim)
        self.shared = nn.Sequential(*blocks)
        self.unshared = nn.ModuleList(nn.Linear(dim_out, style_dim) for _ in range(num_domains))
        self.apply(he_init)

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        h = self.shared(x).flatten(1)
        return select_domain(torch.stack([head(h) for head in self.unshared], dim=1), y)


class Discriminator(nn.Module):
    """Multi-task discriminator: one real/fake logit per domain; returns the logit of domain ``y``, ``(B,)``."""

    def __init__(self, img_size: int = 256, in_channels: int = 3, dim: int | None = None, max_conv_dim: int = 512,
                 num_domains: int = 2):
        super().__init__()
        blocks, dim_out = _downsampling_trunk(img_size, in_channels, dim, max_conv_dim)
        self.main = nn.Sequential(*blocks, nn.Conv2d(dim_out, num_domains, 1, 1, 0))
        self.apply(he_init)

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        return select_domain(self.main(x).flatten(1), y)


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())

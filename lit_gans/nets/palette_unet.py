"""Palette's noise predictor: the ADM UNet (Dhariwal & Nichol, 2021) as Palette uses it (Saharia et al.,
2022), conditioned by concatenating the source image to the noisy target.

* sinusoidal timestep embedding -> 2-layer MLP (width ``4 * channels``);
* residual blocks: GroupNorm-SiLU-conv, the embedding as a scale and shift of the second GroupNorm
  (ADM's ``use_scale_shift_norm``), dropout, zero-initialised last conv (each block starts as the identity);
* multi-head self-attention (``F.scaled_dot_product_attention``: flash/memory-efficient kernels on GPU) at
  the feature sizes listed in ``attn_res`` and in the middle;
* ``num_res_blocks`` blocks per level, strided-conv down-sampling, nearest+conv up-sampling, one skip per
  encoder block; zero-initialised output conv (the untrained net predicts zero noise).

Activation checkpointing (``checkpointing=True``) recomputes each block in the backward pass instead of
keeping its activations (``torch.utils.checkpoint``, non-reentrant): about a third more compute for a
fraction of the activation memory.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from lit_gans.errors import ConfigError
from lit_gans.utils.precision import wide_dtype

log = logging.getLogger(__name__)


def timestep_embedding(t: Tensor, dim: int, max_period: float = 10000.0,
                       dtype: torch.dtype = torch.float32) -> Tensor:
    """Transformer-style sinusoidal embedding of timesteps ``t`` ``(B,)``: ``(B, dim)`` in ``dtype`` (float32;
    float64 in a float64 run), ``[cos(t * f_i), sin(t * f_i)]`` with frequencies ``f_i = max_period^(-i / (dim/2))``."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=dtype) / half)
    args = t.to(dtype)[:, None] * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=1)
    return F.pad(emb, (0, dim % 2))


def zero_(module: nn.Module) -> nn.Module:
    for p in module.parameters():
        nn.init.zeros_(p)
    return module


def group_norm(channels: int, groups: int) -> nn.GroupNorm:
    if channels % groups:
        raise ConfigError(f"model.norm_groups={groups} does not divide a UNet width of {channels} channels: "
                          "pick widths (model.channels x channel_mults) divisible by it")
    return nn.GroupNorm(groups, channels)


class ResBlock(nn.Module):
    """``x + conv(drop(silu(norm(conv(silu(norm(x)))) * (1 + scale) + shift)))`` with ``(scale, shift)`` from the
    timestep embedding; a 1x1 conv on the skip when the width changes."""

    def __init__(self, in_ch: int, out_ch: int, emb_dim: int, dropout: float = 0.0, groups: int = 32):
        super().__init__()
        self.norm1 = group_norm(in_ch, groups)
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, padding=1)
        self.emb = nn.Linear(emb_dim, 2 * out_ch)
        self.norm2 = group_norm(out_ch, groups)
        self.drop = nn.Dropout(dropout)
        self.conv2 = zero_(nn.Conv2d(out_ch, out_ch, 3, padding=1))
        self.skip = nn.Conv2d(in_ch, out_ch, 1) if in_ch != out_ch else nn.Identity()

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        scale, shift = self.emb(F.silu(emb))[:, :, None, None].chunk(2, dim=1)
        h = self.norm2(h) * (1 + scale) + shift
        return self.skip(x) + self.conv2(self.drop(F.silu(h)))


class AttentionBlock(nn.Module):
    """Multi-head self-attention over the ``H*W`` positions, residual, zero-initialised output projection."""

    def __init__(self, channels: int, num_heads: int, groups: int = 32):
        super().__init__()
        if channels % num_heads:
            raise ConfigError(f"{num_heads} attention heads do not divide {channels} channels: "
                              "change model.num_heads / model.num_head_channels")
        self.num_heads = num_heads
        self.norm = group_norm(channels, groups)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.proj = zero_(nn.Conv2d(channels, channels, 1))

    def forward(self, x: Tensor, emb: Tensor | None = None) -> Tensor:
        b, c, h, w = x.shape
        qkv = self.qkv(self.norm(x)).reshape(b, 3, self.num_heads, c // self.num_heads, h * w)
        q, k, v = qkv.transpose(-1, -2).unbind(1)  # each (B, heads, HW, d)
        out = F.scaled_dot_product_attention(q, k, v)
        return x + self.proj(out.transpose(-1, -2).reshape(b, c, h, w))


class Downsample(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2, padding=1)

    def forward(self, x: Tensor, emb: Tensor | None = None) -> Tensor:
        return self.conv(x)


class Upsample(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: Tensor, emb: Tensor | None = None) -> Tensor:
        return self.conv(F.interpolate(x, scale_factor=2, mode="nearest"))


class Block(nn.ModuleList):
    """A few layers applied in order, each as ``layer(x, emb)``: the unit of activation checkpointing."""

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:  # type: ignore[override]
        for layer in self:
            x = layer(x, emb)
        return x


class PaletteUNet(nn.Module):
    """Noise predictor ``eps_hat = unet(x_t, t, cond)``.

    Args:
        in_channels: channels of the target / noisy image (3 pixels, 4 SD latents); also the output's.
        cond_channels: channels of the source image concatenated to the input (default ``in_channels``).
        img_size: input height and width (a multiple of ``2 ** (len(channel_mults) - 1)``); places attention.
        channels: base width; level ``i`` has ``channels * channel_mults[i]``.
        channel_mults: width multiplier per resolution level (one down-sampling between levels).
        num_res_blocks: residual blocks per level (the decoder has one more, as ADM).
        attn_res: feature sizes (height) with self-attention after each residual block, e.g. ``(16,)``.
        num_heads: attention heads; or ``num_head_channels``: channels per head (heads = width / it).
        dropout: in every residual block.
        norm_groups: GroupNorm groups.
        checkpointing: recompute each block in the backward pass (memory for compute).

    Shapes: ``x_t`` ``(B, in_channels, H, W)``, ``t`` ``(B,)`` long, ``cond`` ``(B, cond_channels, H, W)``;
    returns ``(B, in_channels, H, W)``.
    """

    def __init__(self, in_channels: int = 3, cond_channels: int | None = None, img_size: int = 64, channels: int = 64,
                 channel_mults: Sequence[int] = (1, 2, 4, 4), num_res_blocks: int = 2, attn_res: Sequence[int] = (16,),
                 num_heads: int | None = None, num_head_channels: int | None = 32, dropout: float = 0.0,
                 norm_groups: int = 32, checkpointing: bool = False):
        super().__init__()
        cond_channels = in_channels if cond_channels is None else cond_channels
        levels = len(channel_mults)
        if img_size % 2 ** (levels - 1):
            raise ConfigError(f"model.img_size={img_size} is not divisible by 2^{levels - 1} "
                              f"({levels} levels in model.channel_mults): pick a multiple of {2 ** (levels - 1)}")
        if (num_heads is None) == (num_head_channels is None):
            raise ConfigError("set exactly one of model.num_heads and model.num_head_channels (the other null)")
        sizes = [img_size // 2**i for i in range(levels)]
        unused = sorted(set(attn_res) - set(sizes))
        if unused:
            log.warning("model.attn_res %s names no feature size of this UNet (its sizes are %s)", unused, sizes)
        self.in_channels, self.checkpointing = in_channels, checkpointing
        self.channels = channels
        emb_dim = 4 * channels

        def heads(width: int) -> int:
            if num_heads is not None:
                return num_heads
            if width % num_head_channels:
                raise ConfigError(f"model.num_head_channels={num_head_channels} does not divide a width of {width}")
            return width // num_head_channels

        def res(i: int, o: int) -> ResBlock:
            return ResBlock(i, o, emb_dim, dropout, norm_groups)

        self.time_embed = nn.Sequential(nn.Linear(channels, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        self.input = nn.Conv2d(in_channels + cond_channels, channels, 3, padding=1)
        self.down = nn.ModuleList()
        skips, ch = [channels], channels
        for level, mult in enumerate(channel_mults):
            for _ in range(num_res_blocks):
                layers: list[nn.Module] = [res(ch, channels * mult)]
                ch = channels * mult
                if sizes[level] in attn_res:
                    layers.append(AttentionBlock(ch, heads(ch), norm_groups))
                self.down.append(Block(layers))
                skips.append(ch)
            if level < levels - 1:
                self.down.append(Block([Downsample(ch)]))
                skips.append(ch)
        self.middle = Block([res(ch, ch), AttentionBlock(ch, heads(ch), norm_groups), res(ch, ch)])
        self.up = nn.ModuleList()
        for level, mult in reversed(list(enumerate(channel_mults))):
            for i in range(num_res_blocks + 1):
                layers = [res(ch + skips.pop(), channels * mult)]
                ch = channels * mult
                if sizes[level] in attn_res:
                    layers.append(AttentionBlock(ch, heads(ch), norm_groups))
                if level > 0 and i == num_res_blocks:
                    layers.append(Upsample(ch))
                self.up.append(Block(layers))
        self.out = nn.Sequential(group_norm(ch, norm_groups), nn.SiLU(), zero_(nn.Conv2d(ch, in_channels, 3, padding=1)))

    def _run(self, block: Block, x: Tensor, emb: Tensor) -> Tensor:
        if self.checkpointing and self.training and torch.is_grad_enabled():
            return checkpoint(block, x, emb, use_reentrant=False)
        return block(x, emb)

    def forward(self, x_t: Tensor, t: Tensor, cond: Tensor) -> Tensor:
        emb = self.time_embed(timestep_embedding(t, self.channels, dtype=wide_dtype(x_t.dtype)))
        h = self.input(torch.cat([cond, x_t], dim=1))
        hs = [h]
        for block in self.down:
            h = self._run(block, h, emb)
            hs.append(h)
        h = self._run(self.middle, h, emb)
        for block in self.up:
            h = self._run(block, torch.cat([h, hs.pop()], dim=1), emb)
        return self.out(h)

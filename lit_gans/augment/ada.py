"""The StyleGAN2-ADA augmentation pipeline (Karras et al., "Training Generative Adversarial Networks with
Limited Data", NeurIPS 2020), each op applied to each sample with probability ``p``.

Geometric ops are composed into one affine matrix per sample and applied with a single ``grid_sample``
(reflection padding, as ADA pads); colour ops into one 4x4 colour matrix per sample:

=========  ==========================================================================================
xflip      mirror left-right
rotate90   rotate by k * 90 degrees, k uniform in {0, 1, 2, 3}
xint       integer translation, uniform up to ``xint_max`` of the size per axis
scale      isotropic scaling by ``2 ** N(0, scale_std)``
rotate     rotation by an angle uniform in [-pi, pi] * ``rotate_max``
aniso      anisotropic scaling: x by ``2 ** N(0, aniso_std)``, y by its inverse
xfrac      fractional translation ``N(0, xfrac_std)`` of the size per axis
brightness add ``N(0, brightness_std)``
contrast   multiply by ``2 ** N(0, contrast_std)``
hue        rotate the colour around the grey axis by an angle uniform in [-pi, pi] * ``hue_max``
saturation scale the colour off the grey axis by ``2 ** N(0, saturation_std)``
cutout     zero a square of ``cutout_size`` of the size at a random position
=========  ==========================================================================================

Written here rather than with ``kornia.augmentation``: kornia draws the per-sample "apply" decisions on the host
and branches on them (``if to_apply.any()``, boolean indexing), which costs a host sync per op and call and
takes ``p`` as a Python float; here ``p`` is a device tensor (the schedule moves it without a sync) and every
op is a ``torch.where`` between the transform and the identity. Differences from the official pipeline: one
bilinear resampling instead of its wavelet-filtered 2x up/down-sampling (cheaper, slightly more aliasing), the
rotation applied once instead of twice with ``1 - sqrt(1 - p)``, and no luma flip (off in ADA's default too).
Images are assumed square (rotations act in normalised coordinates).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lit_gans.augment.diffaugment import cutout

GEOMETRIC_OPS = ("xflip", "rotate90", "xint", "scale", "rotate", "aniso", "xfrac")
COLOR_OPS = ("brightness", "contrast", "hue", "saturation")
ADA_OPS = (*GEOMETRIC_OPS, *COLOR_OPS, "cutout")
DEFAULT_OPS = (*GEOMETRIC_OPS, *COLOR_OPS)  # ADA's "bgc"


def _eye(b: int, n: int, device: torch.device) -> Tensor:
    return torch.eye(n, device=device).expand(b, n, n).clone()


def _rotation(angle: Tensor) -> Tensor:
    """``(B, 3, 3)`` homogeneous 2-D rotations."""
    m = _eye(angle.shape[0], 3, angle.device)
    c, s = angle.cos(), angle.sin()
    m[:, 0, 0], m[:, 0, 1], m[:, 1, 0], m[:, 1, 1] = c, -s, s, c
    return m


def _scaling(sx: Tensor, sy: Tensor) -> Tensor:
    m = _eye(sx.shape[0], 3, sx.device)
    m[:, 0, 0], m[:, 1, 1] = sx, sy
    return m


def _translation(tx: Tensor, ty: Tensor) -> Tensor:
    m = _eye(tx.shape[0], 3, tx.device)
    m[:, 0, 2], m[:, 1, 2] = tx, ty
    return m


class AdaptiveAugment(nn.Module):
    """ADA's ops on ``(B, C, H, W)`` images, ``forward(x, p)`` with ``p`` a 0-dim tensor in [0, 1].

    Args:
        ops: op names from :data:`ADA_OPS`, applied in this order (geometric ops compose into one resampling).
        color_groups: the channels hold this many RGB images (2 for pix2pix's (source, target) pair): colour
            ops give each the sample's same colour transform. Colour ops need ``channels == 3 * color_groups``.
        Other arguments: the strengths of the ops (StyleGAN2-ADA's defaults).
    """

    def __init__(self, ops: tuple[str, ...] | list[str] = DEFAULT_OPS, color_groups: int = 1, xint_max: float = 0.125,
                 scale_std: float = 0.2, rotate_max: float = 1.0, aniso_std: float = 0.2, xfrac_std: float = 0.125,
                 brightness_std: float = 0.2, contrast_std: float = 0.5, hue_max: float = 1.0,
                 saturation_std: float = 1.0, cutout_size: float = 0.5):
        super().__init__()
        unknown = [o for o in ops if o not in ADA_OPS]
        if unknown:
            from lit_gans.errors import ConfigError

            raise ConfigError(f"unknown ADA op {unknown[0]!r} in aug.ops: choose from {', '.join(ADA_OPS)}")
        self.ops = list(ops)
        self.color_groups = int(color_groups)
        self.strength = {"xint_max": xint_max, "scale_std": scale_std, "rotate_max": rotate_max,
                         "aniso_std": aniso_std, "xfrac_std": xfrac_std, "brightness_std": brightness_std,
                         "contrast_std": contrast_std, "hue_max": hue_max, "saturation_std": saturation_std,
                         "cutout_size": cutout_size}

    # ------------------------------------------------------------------ geometry
    def geometric_matrix(self, b: int, size: int, p: Tensor, device: torch.device) -> Tensor:
        """``(B, 3, 3)``: the product of the geometric ops, each drawn for each sample with probability ``p``
        (identity otherwise), mapping output to input coordinates in [-1, 1]."""
        k = self.strength
        m = _eye(b, 3, device)

        def coin() -> Tensor:
            return torch.rand(b, device=device) < p

        zeros, ones = torch.zeros(b, device=device), torch.ones(b, device=device)
        for op in self.ops:
            if op == "xflip":
                s = torch.where(coin(), 1.0 - 2.0 * torch.randint(0, 2, (b,), device=device), ones)
                t = _scaling(s, ones)
            elif op == "rotate90":
                t = _rotation(torch.where(coin(), torch.randint(0, 4, (b,), device=device) * (math.pi / 2), zeros))
            elif op == "xint":
                # whole pixels: 2 / size per pixel in normalised coordinates
                px = ((torch.rand(2, b, device=device) * 2 - 1) * k["xint_max"] * size).round() * (2.0 / size)
                apply = coin()
                t = _translation(torch.where(apply, px[0], zeros), torch.where(apply, px[1], zeros))
            elif op == "scale":
                s = torch.where(coin(), torch.exp2(torch.randn(b, device=device) * k["scale_std"]), ones)
                t = _scaling(s, s)
            elif op == "rotate":
                angle = (torch.rand(b, device=device) * 2 - 1) * math.pi * k["rotate_max"]
                t = _rotation(torch.where(coin(), angle, zeros))
            elif op == "aniso":
                s = torch.where(coin(), torch.exp2(torch.randn(b, device=device) * k["aniso_std"]), ones)
                t = _scaling(s, 1.0 / s)
            elif op == "xfrac":
                shift = torch.randn(2, b, device=device) * k["xfrac_std"] * 2.0
                apply = coin()
                t = _translation(torch.where(apply, shift[0], zeros), torch.where(apply, shift[1], zeros))
            else:
                continue
            m = m @ t
        return m

    # ------------------------------------------------------------------ colour
    def color_matrix(self, b: int, p: Tensor, device: torch.device) -> Tensor:
        """``(B, 4, 4)`` homogeneous colour transforms (identity for samples not drawn)."""
        k = self.strength
        m = _eye(b, 4, device)
        # The grey axis v = (1, 1, 1) / sqrt(3): its projector v v^T and cross-product matrix [v]_x.
        vv = torch.full((3, 3), 1.0 / 3.0, device=device)
        cross = torch.tensor([[0.0, -1.0, 1.0], [1.0, 0.0, -1.0], [-1.0, 1.0, 0.0]], device=device) / math.sqrt(3.0)
        for op in self.ops:
            apply = (torch.rand(b, device=device) < p).view(b, 1, 1)
            t = _eye(b, 4, device)
            if op == "brightness":
                t[:, :3, 3] = (torch.randn(b, 1, device=device) * k["brightness_std"]).expand(b, 3)
            elif op == "contrast":
                t[:, :3, :3] *= torch.exp2(torch.randn(b, 1, 1, device=device) * k["contrast_std"])
            elif op == "hue":
                angle = ((torch.rand(b, device=device) * 2 - 1) * math.pi * k["hue_max"]).view(b, 1, 1)
                t[:, :3, :3] = angle.cos() * torch.eye(3, device=device) + angle.sin() * cross + (1 - angle.cos()) * vv
            elif op == "saturation":
                s = torch.exp2(torch.randn(b, 1, 1, device=device) * k["saturation_std"])
                t[:, :3, :3] = vv + (torch.eye(3, device=device) - vv) * s
            else:
                continue
            m = torch.where(apply, t, _eye(b, 4, device)) @ m
        return m

    # ------------------------------------------------------------------ forward
    def forward(self, x: Tensor, p: Tensor) -> Tensor:
        """Augment ``x`` ``(B, C, H, W)``; differentiable in ``x``. Computed in float32, returned in x's dtype
        and memory format."""
        b, c, h, w = x.shape
        dtype, channels_last = x.dtype, x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()
        out = x.float()
        if any(op in GEOMETRIC_OPS for op in self.ops):
            theta = self.geometric_matrix(b, max(h, w), p, x.device)[:, :2, :]
            grid = F.affine_grid(theta, [b, c, h, w], align_corners=False)
            out = F.grid_sample(out, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
        if any(op in COLOR_OPS for op in self.ops):
            cm = self.color_matrix(b, p, x.device)
            g = self.color_groups
            rgb = out.reshape(b, g, 3, h * w)
            rgb = torch.einsum("bij,bgjn->bgin", cm[:, :3, :3], rgb) + cm[:, :3, 3].view(b, 1, 3, 1)
            out = rgb.reshape(b, c, h, w)
        if "cutout" in self.ops:
            apply = (torch.rand(b, device=x.device) < p).view(b, 1, 1, 1)
            out = torch.where(apply, cutout(out, self.strength["cutout_size"]), out)
        out = out.to(dtype)
        return out.contiguous(memory_format=torch.channels_last) if channels_last else out

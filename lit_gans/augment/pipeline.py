"""The discriminator's augmentation: one module per model that every image shown to a discriminator goes
through (reals, fakes, R1's reals), the adaptive probability ``p`` and the overfitting statistics it is
adjusted from.

``aug.kind``:

- ``none``: nothing (the model holds no pipeline).
- ``diffaugment``: the DiffAugment policies in ``aug.policy``, applied to every image.
- ``ada``: StyleGAN2-ADA's ops ``aug.ops``, each with probability ``p`` (plus ``aug.policy``, if any).
- ``apa``: adaptive pseudo augmentation (Jiang et al., NeurIPS 2021): each real image shown to the
  discriminator is replaced, with probability ``p``, by a (detached) generated one; ``aug.policy`` adds
  DiffAugment on top.

For ``ada`` and ``apa``, :class:`~lit_gans.callbacks.AdaptiveAugmentation` moves ``p`` from the overfitting
heuristic ``r_t = E[sign(D(real) - midpoint)]`` (:func:`adjust_probability`). The statistics are device
tensors accumulated in the training step; ``p`` is a buffer, so it is saved in checkpoints and restored on
resume.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from lit_gans.augment.ada import ADA_OPS, COLOR_OPS, DEFAULT_OPS, AdaptiveAugment
from lit_gans.augment.diffaugment import COLOR_POLICIES, diff_augment, parse_policy
from lit_gans.errors import ConfigError

KINDS = ("none", "diffaugment", "ada", "apa")
# What SD-VAE latents allow: geometric ops that keep a latent a latent (no resampling, no colour).
LATENT_OPS = ("xflip", "xint", "cutout")
LATENT_POLICIES = ("translation", "cutout")


def adjust_probability(p: Tensor, rt: Tensor, target: float, images: int, kimg: float) -> Tensor:
    """StyleGAN2-ADA's update: ``clamp(p + sign(rt - target) * images / (kimg * 1000), 0, 1)``.

    ``images`` is the number of real images the discriminator saw since the last update, so that ``p`` can
    go from 0 to 1 in ``kimg`` thousand images whatever the batch size and interval. Pure device arithmetic.
    """
    return (p + torch.sign(rt - target) * (images / (kimg * 1000.0))).clamp(0.0, 1.0)


class DiscriminatorAugment(nn.Module):
    """Args:
        kind: ``none`` | ``diffaugment`` | ``ada`` | ``apa``.
        policy: DiffAugment policies, comma-separated (``diffaugment``; optional with ``apa`` and ``ada``).
        ops: ADA's ops (``ada``).
        p: initial probability of the adaptive kinds.
        channels: channels of what the discriminator sees (6 for pix2pix's (source, target) pair of RGB).
        latent: the images are SD-VAE latents: only flips, integer translation and cutout are allowed.
        logit_midpoint: the discriminator output between "real" and "fake" (0; 0.5 for LSGAN's 0/1 targets).
        ada: strengths of ADA's ops (:class:`~lit_gans.augment.ada.AdaptiveAugment`'s keyword arguments).
    """

    def __init__(self, kind: str = "none", policy: str | Sequence[str] | None = "",
                 ops: Sequence[str] = DEFAULT_OPS, p: float = 0.0, channels: int = 3, latent: bool = False,
                 logit_midpoint: float = 0.0, ada: Mapping[str, float] | None = None):
        super().__init__()
        if kind not in KINDS:
            raise ConfigError(f"aug.kind={kind!r} is not one of {', '.join(KINDS)}")
        self.kind = kind
        self.policy = parse_policy(policy)
        ops = list(ops) if kind == "ada" else []
        self.latent = bool(latent) or channels % 3 != 0
        if self.latent:
            images = f"{channels}-channel latents" if latent or channels == 4 else f"{channels}-channel (non-RGB) images"
            bad = [o for o in self.policy if o not in LATENT_POLICIES] + [o for o in ops if o not in LATENT_OPS]
            bad.sort(key=lambda o: o not in COLOR_OPS and o not in COLOR_POLICIES)  # name a colour op first
            if bad:
                what = "a colour op" if bad[0] in COLOR_OPS or bad[0] in COLOR_POLICIES else "an op"
                raise ConfigError(
                    f"aug {bad[0]!r} is {what} that {images} do not allow: use only flips, "
                    f"translation and cutout (aug.ops=[{','.join(LATENT_OPS)}], aug.policy={','.join(LATENT_POLICIES)})")
        unknown = [o for o in ops if o not in ADA_OPS]
        if unknown:
            raise ConfigError(f"unknown ADA op {unknown[0]!r} in aug.ops: choose from {', '.join(ADA_OPS)}")
        self.color_groups = max(1, channels // 3)
        self.ada = AdaptiveAugment(ops, self.color_groups, **dict(ada or {})) if kind == "ada" else None
        self.logit_midpoint = float(logit_midpoint)
        self.register_buffer("p", torch.tensor(float(p)))
        # sum of sign(D(real) - midpoint) and number of logits since the last adjustment (not saved)
        self.register_buffer("sign_sum", torch.zeros(()), persistent=False)
        self.register_buffer("sign_count", torch.zeros(()), persistent=False)

    @property
    def adaptive(self) -> bool:
        """Whether ``p`` is used (and adjusted by the heuristic)."""
        return self.kind in ("ada", "apa")

    def forward(self, x: Tensor) -> Tensor:
        """Augment images on their way into a discriminator, ``(B, C, H, W)`` to the same; differentiable.
        Every sample draws its own parameters."""
        x = diff_augment(x, self.policy, self.color_groups)
        if self.ada is not None:
            x = self.ada(x, self.p)
        return x

    def pseudo_real(self, real: Tensor, fake: Tensor) -> Tensor:
        """APA: ``real`` with each sample replaced by ``fake`` (detached) with probability ``p``; other kinds
        return ``real`` itself. ``fake`` must have ``real``'s shape."""
        if self.kind != "apa":
            return real
        swap = (torch.rand(real.shape[0], device=real.device) < self.p).view(-1, *([1] * (real.dim() - 1)))
        return torch.where(swap, fake.detach().to(real.dtype), real)

    @torch.no_grad()
    def observe(self, real_logits: Tensor | Sequence[Tensor]) -> None:
        """Accumulate ``sign(D(real) - midpoint)`` of the logits the discriminator gave the images shown as
        real (a tensor, or a list for multi-scale discriminators). No host sync."""
        if not self.adaptive:
            return
        for logits in real_logits if isinstance(real_logits, (list, tuple)) else [real_logits]:
            self.sign_sum += (logits.detach().float() - self.logit_midpoint).sign().sum()
            self.sign_count += logits.numel()

    def reset_statistics(self) -> None:
        self.sign_sum.zero_()
        self.sign_count.zero_()

    def extra_repr(self) -> str:
        ops = self.ada.ops if self.ada is not None else []
        return f"kind={self.kind}, policy={self.policy}, ops={ops}, latent={self.latent}"


def build_augment(cfg: Mapping[str, Any] | None, channels: int, latent: bool = False,
                  logit_midpoint: float = 0.0) -> DiscriminatorAugment | None:
    """The pipeline an ``aug`` config block describes, or ``None`` for ``kind: none`` / no block."""
    cfg = dict(cfg or {})
    kind = cfg.get("kind", "none")
    if kind == "none":
        return None
    keys = {"policy", "ops", "p", "ada"}
    return DiscriminatorAugment(kind=kind, channels=channels, latent=latent, logit_midpoint=logit_midpoint,
                                **{k: v for k, v in cfg.items() if k in keys and v is not None})

"""Adversarial losses on discriminator logits.

Each mode is a pair: ``d(real_logits, fake_logits)`` for the discriminator and ``g(fake_logits)`` for the
generator. Logits have any shape (one per sample, or a PatchGAN map); every function returns the mean over
all elements as a 0-dim tensor. The discriminator losses are the *sum* of their real and fake parts, as in
StarGAN v2 and StyleGAN2; models that average the two halves (CycleGAN, CUT, pix2pix) do so with a weight of
0.5 on the term, not here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor


def d_hinge_loss(real: Tensor, fake: Tensor) -> Tensor:
    """Hinge loss of the discriminator: ``mean(relu(1 - real)) + mean(relu(1 + fake))``.

    About 2 when all logits are near 0 (the margin not yet left).
    """
    return F.relu(1.0 - real).mean() + F.relu(1.0 + fake).mean()


def g_adversarial_loss(fake: Tensor) -> Tensor:
    """Generator side of the hinge game: ``-mean(fake)`` (raise the discriminator's logits on fakes)."""
    return -fake.mean()


def d_nonsat_loss(real: Tensor, fake: Tensor) -> Tensor:
    """Logistic discriminator loss of the original GAN: ``mean(softplus(-real)) + mean(softplus(fake))``.

    softplus(-x) = -log(sigmoid(x)): the binary cross-entropy with target 1, written without a sigmoid.
    """
    return F.softplus(-real).mean() + F.softplus(fake).mean()


def g_nonsat_loss(fake: Tensor) -> Tensor:
    """Non-saturating generator loss (StarGAN v2 paper, StyleGAN): ``mean(softplus(-fake))`` = -log D(G(z))."""
    return F.softplus(-fake).mean()


def d_vanilla_loss(real: Tensor, fake: Tensor) -> Tensor:
    """BCE-with-logits discriminator loss as pix2pix/CycleGAN write it (target 1 for real, 0 for fake).

    The same objective as :func:`d_nonsat_loss`; both names are kept because both communities use theirs.
    """
    return F.binary_cross_entropy_with_logits(real, torch.ones_like(real)) + F.binary_cross_entropy_with_logits(
        fake, torch.zeros_like(fake)
    )


def g_vanilla_loss(fake: Tensor) -> Tensor:
    """BCE-with-logits generator loss with target 1 (pix2pix/CycleGAN ``gan_mode=vanilla``)."""
    return F.binary_cross_entropy_with_logits(fake, torch.ones_like(fake))


def d_lsgan_loss(real: Tensor, fake: Tensor) -> Tensor:
    """Least-squares discriminator loss: ``mean((real - 1)^2) + mean(fake^2)``."""
    return (real - 1.0).square().mean() + fake.square().mean()


def g_lsgan_loss(fake: Tensor) -> Tensor:
    """Least-squares generator loss: ``mean((fake - 1)^2)``."""
    return (fake - 1.0).square().mean()


class AdversarialLoss(NamedTuple):
    """A discriminator loss, its generator counterpart, and the discriminator loss's two halves
    (``d(real, fake) == real(real_logits) + fake(fake_logits)``) for models that log them apart."""

    d: Callable[[Tensor, Tensor], Tensor]
    g: Callable[[Tensor], Tensor]
    real: Callable[[Tensor], Tensor]
    fake: Callable[[Tensor], Tensor]


ADVERSARIAL_LOSSES: dict[str, AdversarialLoss] = {
    "hinge": AdversarialLoss(d_hinge_loss, g_adversarial_loss, lambda r: F.relu(1.0 - r).mean(),
                             lambda f: F.relu(1.0 + f).mean()),
    "nonsat": AdversarialLoss(d_nonsat_loss, g_nonsat_loss, lambda r: F.softplus(-r).mean(),
                              lambda f: F.softplus(f).mean()),
    "vanilla": AdversarialLoss(d_vanilla_loss, g_vanilla_loss,
                               lambda r: F.binary_cross_entropy_with_logits(r, torch.ones_like(r)),
                               lambda f: F.binary_cross_entropy_with_logits(f, torch.zeros_like(f))),
    "lsgan": AdversarialLoss(d_lsgan_loss, g_lsgan_loss, lambda r: (r - 1.0).square().mean(),
                             lambda f: f.square().mean()),
}


def adversarial_loss(mode: str) -> AdversarialLoss:
    """The ``(d, g)`` pair of an adversarial mode (``hinge``, ``nonsat``, ``vanilla``, ``lsgan``)."""
    from lit_gans.errors import ConfigError

    try:
        return ADVERSARIAL_LOSSES[mode]
    except KeyError:
        raise ConfigError(
            f"unknown adversarial loss {mode!r}: choose one of {', '.join(ADVERSARIAL_LOSSES)} "
            "(loss=hinge_r1|nonsat_r1|lsgan|vanilla|hinge|nonsat, or loss.adversarial=...)"
        ) from None

"""pix2pix's objective (Isola et al., CVPR 2017), with NectarGAN's sub-specs.

* ``basic``: the paper's ``G_GAN + lambda_l1 * G_L1`` for the generator and ``0.5 * (D_real + D_fake)`` for
  the discriminator.
* ``extended``: adds ``G_L2`` (mean squared error), ``G_SOBEL`` (edge structure) and ``G_LAP`` (Laplacian
  detail).
* ``basic+vgg`` / ``extended+vgg``: add ``G_VGG``, the VGG19 perceptual loss.

Terms are tagged ``G`` or ``D``; ``G_L1``, ``G_L2``, ``G_SOBEL`` and ``G_LAP`` produce per-pixel loss maps.
The generator terms are called as ``fn(fake_B, real_B)``, ``G_GAN`` as ``fn(D(A, fake_B))``, ``D_real`` as
``fn(D(A, real_B))`` and ``D_fake`` as ``fn(D(A, fake_B))``.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

from lit_gans.errors import ConfigError
from lit_gans.losses.adversarial import adversarial_loss
from lit_gans.losses.objective import LossTerm
from lit_gans.losses.perceptual import DEFAULT_LAYERS, VGGPerceptualLoss
from lit_gans.losses.structure import laplacian_loss, pixel_loss, sobel_loss

SUBSPECS = ("basic", "extended", "basic+vgg", "extended+vgg")
TOTALS = {"G": "G_tot", "D": "D_tot"}


def pix2pix(subspec: str = "basic", adversarial: str = "vanilla", lambda_gan: float = 1.0, lambda_l1: float = 100.0,
            lambda_l2: float = 0.0, lambda_sobel: float = 3.0, lambda_laplacian: float = 1.0,
            lambda_vgg: float = 10.0, structure_metric: str = "l1",
            vgg_layers: Sequence[str] = DEFAULT_LAYERS, vgg_layer_weights: Sequence[float] | None = None,
            vgg_weights: str | None = None) -> list[LossTerm]:
    """The pix2pix terms of ``subspec`` (see the module docstring).

    Args:
        adversarial: ``vanilla`` (the paper's BCE with logits), ``lsgan``, ``hinge`` or ``nonsat``.
        lambda_*: the terms' weights (``loss.lambda_l1`` ...).
        structure_metric: ``l1`` or ``l2`` distance of the Sobel and Laplacian terms.
        vgg_layers, vgg_layer_weights, vgg_weights: see :class:`~lit_gans.losses.perceptual.VGGPerceptualLoss`.
    """
    if subspec not in SUBSPECS:
        raise ConfigError(f"unknown loss.subspec {subspec!r} for pix2pix: choose one of {', '.join(SUBSPECS)}")
    if structure_metric not in ("l1", "l2"):
        raise ConfigError(f"loss.structure_metric must be l1 or l2, got {structure_metric!r}")
    adv = adversarial_loss(adversarial)
    half = 0.5  # pix2pix averages the discriminator's real and fake halves
    terms = [
        LossTerm("G_GAN", adv.g, "lambda_gan", "G"),
        LossTerm("G_L1", partial(pixel_loss, metric="l1", return_map=True), "lambda_l1", "G", returns_map=True),
        LossTerm("D_real", adv.real, half, "D"),
        LossTerm("D_fake", adv.fake, half, "D"),
    ]
    if subspec.startswith("extended"):
        terms += [
            LossTerm("G_L2", partial(pixel_loss, metric="l2", return_map=True), "lambda_l2", "G", returns_map=True),
            LossTerm("G_SOBEL", partial(sobel_loss, metric=structure_metric, return_map=True), "lambda_sobel", "G",
                     returns_map=True),
            LossTerm("G_LAP", partial(laplacian_loss, metric=structure_metric, return_map=True), "lambda_laplacian",
                     "G", returns_map=True),
        ]
    if subspec.endswith("+vgg"):
        terms.append(LossTerm("G_VGG", VGGPerceptualLoss(vgg_layers, vgg_layer_weights, vgg_weights), "lambda_vgg",
                              "G"))
    return terms

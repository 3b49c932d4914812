"""Differentiable discriminator augmentation for small datasets: DiffAugment, StyleGAN2-ADA, APA.

Pure ``nn.Module`` code (no Lightning): the models apply it, the
:class:`~lit_gans.callbacks.AdaptiveAugmentation` callback moves the adaptive probability."""

from lit_gans.augment.ada import ADA_OPS, COLOR_OPS, GEOMETRIC_OPS, AdaptiveAugment
from lit_gans.augment.diffaugment import POLICIES, diff_augment
from lit_gans.augment.pipeline import KINDS, DiscriminatorAugment, adjust_probability, build_augment

__all__ = ["ADA_OPS", "COLOR_OPS", "GEOMETRIC_OPS", "KINDS", "POLICIES", "AdaptiveAugment", "DiscriminatorAugment",
           "adjust_probability", "build_augment", "diff_augment"]

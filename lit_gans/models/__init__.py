"""LightningModules: one per model family; ``training_step`` is the paper's algorithm."""

from lit_gans.models.pix2pix import Pix2Pix
from lit_gans.models.stargan_v2 import StarGANv2

__all__ = ["Pix2Pix", "StarGANv2"]

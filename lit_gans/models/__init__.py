"""LightningModules: one per model family; ``training_step`` is the paper's algorithm."""

from lit_gans.models.palette import Palette
from lit_gans.models.stargan_v2 import StarGANv2

__all__ = ["Palette", "StarGANv2"]

"""LightningModules: one per model family; ``training_step`` is the paper's algorithm."""

from lit_gans.models.cut import CUT
from lit_gans.models.cyclegan import CycleGAN
from lit_gans.models.palette import Palette
from lit_gans.models.pix2pix import Pix2Pix
from lit_gans.models.stargan_v2 import StarGANv2

__all__ = ["CUT", "CycleGAN", "Palette", "Pix2Pix", "StarGANv2"]

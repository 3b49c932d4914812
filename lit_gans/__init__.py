"""lit_gans: image-to-image GANs and diffusion models in PyTorch Lightning + Hydra."""

__version__ = "0.1.0"

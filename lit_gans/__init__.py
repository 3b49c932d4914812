"""lit_gans: image-to-image GANs and diffusion models in PyTorch Lightning + Hydra."""

__version__ = "0.1.0"


def _register_resolvers() -> None:
    """The OmegaConf resolvers conf/ uses (``${run_suffix:...}``), registered on import so that every entry
    point and every composed config (tests, notebooks) can resolve them."""
    from lit_gans.cli import register_resolvers

    register_resolvers()


_register_resolvers()

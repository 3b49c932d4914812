"""Loading a Stable Diffusion VAE (``diffusers.AutoencoderKL``) from a local folder or the hub cache, and
moving between images and the *unscaled* latents this project stores.

Conventions: images are ``(B, 3, H, W)`` in [-1, 1]; latents are ``(B, 4, H/8, W/8)`` *unscaled* (the
posterior as the VAE gives it, before multiplying by ``scaling_factor``, e.g. 0.18215 for SD 1.x). Models
multiply by ``latent_scale`` themselves.
"""

from __future__ import annotations

import os
from typing import Any

import torch
from torch import Tensor

from lit_gans.errors import ConfigError

DOWNLOAD_ENV = "LIT_GANS_DOWNLOAD"


def downloads_allowed(download: bool | None = None) -> bool:
    """Whether weights may be fetched from the network: only when asked for, by the caller's ``download=true``
    or by ``LIT_GANS_DOWNLOAD=1`` in the environment. Nothing in lit_gans reaches the network otherwise."""
    if download is not None:
        return bool(download)
    return os.environ.get(DOWNLOAD_ENV, "").strip().lower() in ("1", "true", "yes")


def load_vae(path: str, subfolder: str | None = None, device: str | torch.device = "cpu",
             dtype: torch.dtype = torch.float32, download: bool | None = None) -> Any:
    """Load an ``AutoencoderKL`` from a local directory or a hub id.

    ``path`` may be a diffusers model folder (with ``config.json``), a pipeline folder with ``subfolder="vae"``,
    or a hub id such as ``stabilityai/sd-vae-ft-mse``. A hub id is read from the Hugging Face cache; it is
    downloaded only when :func:`downloads_allowed` (``download=True`` or ``LIT_GANS_DOWNLOAD=1``).
    """
    from diffusers import AutoencoderKL

    local = os.path.isdir(os.path.expanduser(path))
    online = not local and downloads_allowed(download)
    try:
        vae = AutoencoderKL.from_pretrained(
            os.path.expanduser(path) if local else path,
            subfolder=subfolder,
            torch_dtype=dtype,
            local_files_only=not online,
        )
    except (OSError, ValueError) as err:
        where = f"{path}/{subfolder}" if subfolder else path
        how = ("the download failed: check the id and the connection" if online else
               f"it is not a local folder nor in the Hugging Face cache, and downloading is off ({DOWNLOAD_ENV}=1 "
               "or --download allows it)")
        raise ConfigError(
            f"cannot load a diffusers AutoencoderKL from {where!r} ({type(err).__name__}): {how}; or pass a local "
            "folder holding config.json and the weights (a save_pretrained() output, or an SD pipeline folder "
            "with subfolder vae)"
        ) from None
    return vae.to(device).eval().requires_grad_(False)


def scaling_factor(vae: Any) -> float:
    return float(getattr(vae.config, "scaling_factor", 0.18215))


@torch.no_grad()
def encode_images(vae: Any, images: Tensor, sample: bool = False, generator: torch.Generator | None = None) -> Tensor:
    """Images in [-1, 1] to unscaled latents (posterior mean, or a sample when ``sample``)."""
    dist = vae.encode(images.to(vae.device, vae.dtype)).latent_dist
    return (dist.sample(generator) if sample else dist.mean).float()


@torch.no_grad()
def decode_latents(vae: Any, latents: Tensor) -> Tensor:
    """Unscaled latents to images in [-1, 1] (float32)."""
    return vae.decode(latents.to(vae.device, vae.dtype)).sample.float().clamp(-1, 1)

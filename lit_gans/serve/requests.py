"""Turning one ``POST /translate`` form into a :class:`Job`, or into a :class:`Rejection` that names what is wrong
in one line (and its HTTP status). Pure functions of the form and the model's description, testable without a
server.

Fields (multipart/form-data):

* ``image`` (all models): the source, an image file (PNG, JPEG, WebP, BMP, GIF, TIFF; converted to RGB and
  resized to the model's square size, as ``python -m lit_gans.translate`` does) or a NumPy ``.npy`` array in
  the model's data space of exactly the model's shape ``(C, H, W)`` (latent models: unscaled SD-VAE latents).
* StarGAN v2: ``domain`` (a domain name, or its index) and either ``seed`` (latent-guided: the style code
  ``torch.randn(latent_dim, generator=manual_seed(seed))``, the same as ``translate seeds=...``) or
  ``reference`` (reference-guided: the style of that image, same formats as ``image``).
* CycleGAN: ``direction`` (``AtoB``, the default, or ``BtoA``).
* Palette: ``seed`` (the starting noise), ``steps`` (DDIM steps, default the model's).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

IMAGE_FORMATS = "PNG, JPEG, WebP, BMP, GIF or TIFF"
NPY_MAGIC = b"\x93NUMPY"


@dataclass
class Rejection:
    """A request that cannot be served: ``status`` (4xx) and one line saying what is wrong and how to fix it."""

    status: int
    detail: str


class BadRequest(Exception):
    def __init__(self, detail: str, status: int = 400):
        super().__init__(detail)
        self.rejection = Rejection(status, detail)


@dataclass
class Job:
    """One valid request. ``x``/``ref``: ``(C, H, W)`` float32, in pixels [-1, 1] when ``*_pixels`` (to be
    encoded by the VAE for latent models) or else already in the model's data space."""

    x: Tensor
    x_pixels: bool
    domain: int | None = None
    seed: int = 0
    ref: Tensor | None = None
    ref_pixels: bool = False
    direction: str = "AtoB"
    steps: int | None = None


@dataclass
class ModelInfo:
    """What request parsing needs to know about the served model (picklable; sent to the inference worker)."""

    family: str
    domains: list[str]
    channels: int
    img_size: int  # the model's own side (latents: the latent side)
    pixel_size: int  # side of the images it takes (latents: img_size times the VAE's factor)
    latent: bool
    max_steps: int | None = None  # Palette: the number of timesteps T


@dataclass
class Limits:
    max_pixels: int = 4096 * 4096
    max_steps: int = 1000


FIELDS = {"stargan_v2": ("image", "domain", "seed", "reference"), "cyclegan": ("image", "direction"),
          "cut": ("image",), "pix2pix": ("image",), "palette": ("image", "seed", "steps")}


def _text(form: Any, name: str) -> str | None:
    value = form.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise BadRequest(f"field {name} must be a text value, not a file upload")
    return value.strip()


def _int(form: Any, name: str, low: int, high: int, default: int | None) -> int | None:
    text = _text(form, name)
    if text in (None, ""):
        return default
    try:
        value = int(text)
    except ValueError:
        raise BadRequest(f"field {name}={text[:40]!r} is not an integer: send e.g. {name}=0") from None
    if not low <= value <= high:
        raise BadRequest(f"field {name}={value} is out of range: send an integer from {low} to {high}")
    return value


def _file_bytes(form: Any, name: str, required: bool) -> bytes | None:
    value = form.get(name)
    if value is None:
        if required:
            raise BadRequest(f"missing field {name}: send the image as the multipart form field {name} "
                             "(e.g. curl -F image=@photo.png)")
        return None
    if isinstance(value, str):
        raise BadRequest(f"field {name} must be a file upload (multipart form data with a filename), not text")
    f = value.file
    f.seek(0)
    data = f.read()
    if not data:
        raise BadRequest(f"field {name} is an empty file: send an image ({IMAGE_FORMATS})")
    return data


def decode_image(data: bytes, name: str, size: int, limits: Limits) -> Tensor:
    """Image bytes -> ``(3, size, size)`` float32 in [-1, 1]: RGB (grayscale, palette, alpha and 16-bit
    converted), resized to a square as the validation transform of the training data."""
    from PIL import Image, UnidentifiedImageError

    from lit_gans.data.transforms import stargan_transform

    try:
        im = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError:  # PIL's own limit (~179 M pixels), above ours
        raise BadRequest(f"field {name} has far more pixels than the limit of {limits.max_pixels}: send a smaller "
                         "image", status=413) from None
    except (UnidentifiedImageError, OSError, ValueError):
        raise BadRequest(f"field {name} is not an image: send a {IMAGE_FORMATS} file") from None
    with im:
        w, h = im.size
        if w * h > limits.max_pixels:
            raise BadRequest(f"field {name} is {w}x{h} pixels, over the limit of {limits.max_pixels} pixels: send a "
                             "smaller image (the server's max_pixels)", status=413)
        try:
            im.load()
        except (OSError, ValueError, SyntaxError) as err:
            why = str(err).splitlines()[0][:80] if str(err) else type(err).__name__
            raise BadRequest(f"field {name} is a truncated or damaged image ({why}): send the complete file") from None
        if im.mode in ("I;16", "I;16B", "I;16L", "I"):
            arr = np.asarray(im, dtype=np.float64)
            arr = arr / (65535.0 if im.mode.startswith("I;16") else (im.getextrema()[1] or 1))
            rgb = np.repeat((arr * 255).clip(0, 255).astype(np.uint8)[..., None], 3, axis=2)
        else:
            rgb = np.asarray(im.convert("RGB"))
    pixels = torch.from_numpy(rgb.copy()).permute(2, 0, 1).contiguous()
    return stargan_transform(size, train=False)(pixels)


def decode_array(data: bytes, name: str, shape: tuple[int, int, int]) -> Tensor:
    """A ``.npy`` upload in the model's data space; it must have exactly the model's shape."""
    try:
        arr = np.load(io.BytesIO(data), allow_pickle=False)
    except Exception:  # noqa: BLE001 - numpy's header and data errors alike
        raise BadRequest(f"field {name} starts like a .npy file but cannot be read: send a complete .npy array "
                         f"of shape {shape}, or an image") from None
    if tuple(arr.shape) != shape:
        raise BadRequest(f"field {name} has shape {tuple(arr.shape)}, the model takes {shape} (channels, height, "
                         "width): send an array of that shape, or an image (resized for you)")
    if not np.issubdtype(arr.dtype, np.floating) or not np.isfinite(arr).all():
        raise BadRequest(f"field {name} must hold finite floating-point values (dtype {arr.dtype})")
    return torch.from_numpy(arr.astype(np.float32))


def read_source(data: bytes, name: str, info: ModelInfo, limits: Limits) -> tuple[Tensor, bool]:
    """``(tensor, is_pixels)`` of an uploaded image or array."""
    if data.startswith(NPY_MAGIC):
        return decode_array(data, name, (info.channels, info.img_size, info.img_size)), False
    return decode_image(data, name, info.pixel_size, limits), True


def domain_index(text: str | None, domains: list[str]) -> int:
    if text in (None, ""):
        raise BadRequest(f"missing field domain: send the target domain, one of {', '.join(domains)}")
    if text in domains:
        return domains.index(text)
    if text.isdigit() and int(text) < len(domains):
        return int(text)
    raise BadRequest(f"domain {text[:40]!r} is not a domain of this model: send one of {', '.join(domains)}")


def parse(form: Any, info: ModelInfo, limits: Limits) -> Job | Rejection:
    """The :class:`Job` of one form, or the :class:`Rejection` of its first problem."""
    try:
        allowed = FIELDS[info.family]
        unknown = sorted(k for k in form.keys() if k not in allowed)
        if unknown:
            raise BadRequest(f"unknown field {unknown[0]!r}: this {info.family} model takes the fields "
                             f"{', '.join(allowed)}")
        x, x_pixels = read_source(_file_bytes(form, "image", True), "image", info, limits)
        job = Job(x=x, x_pixels=x_pixels)
        if info.family == "stargan_v2":
            job.domain = domain_index(_text(form, "domain"), info.domains)
            ref = _file_bytes(form, "reference", False)
            if ref is not None:
                if _text(form, "seed") not in (None, ""):
                    raise BadRequest("send either seed (latent-guided) or reference (reference-guided), not both")
                job.ref, job.ref_pixels = read_source(ref, "reference", info, limits)
            else:
                job.seed = _int(form, "seed", 0, 2**63 - 1, 0)
        elif info.family == "cyclegan":
            direction = _text(form, "direction") or "AtoB"
            if direction not in ("AtoB", "BtoA"):
                raise BadRequest(f"direction={direction[:20]!r}: send AtoB (G_A) or BtoA (G_B)")
            job.direction = direction
        elif info.family == "palette":
            job.seed = _int(form, "seed", 0, 2**63 - 1, 0)
            job.steps = _int(form, "steps", 1, min(limits.max_steps, info.max_steps or limits.max_steps), None)
        return job
    except BadRequest as err:
        return err.rejection

"""Turning data-space tensors into viewable RGB images in [0, 1]."""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor


def latent_preview(x: Tensor) -> Tensor:
    """A normalised view of the first 3 channels of latents ``(B, C, h, w)``: each channel standardised over
    the batch and ±2.5 standard deviations mapped to [0, 1]. Shows structure when no VAE is configured."""
    x = x[:, :3].float()
    mean = x.mean(dim=(0, 2, 3), keepdim=True)
    std = x.std(dim=(0, 2, 3), keepdim=True).clamp_min(1e-6)
    return ((x - mean) / std / 5.0 + 0.5).clamp(0, 1)


def to_rgb01(x: Tensor, vae: Any | None = None) -> Tensor:
    """Data-space batch to RGB in [0, 1]: pixels in [-1, 1] are rescaled; latents (4 channels) are decoded by
    ``vae`` when given, else shown with :func:`latent_preview`; 1-channel maps are repeated to grey."""
    x = x.detach()
    if x.shape[1] == 3:
        return (x.float() * 0.5 + 0.5).clamp(0, 1)
    if x.shape[1] == 1:
        return x.float().clamp(0, 1).repeat(1, 3, 1, 1)
    if vae is not None:
        from lit_gans.latents.vae import decode_latents

        return (decode_latents(vae, x) * 0.5 + 0.5).clamp(0, 1).to(x.device)
    return latent_preview(x)


def same_size(images: list[Tensor]) -> list[Tensor]:
    """Resize (nearest) every batch to the largest spatial size among them, for one grid."""
    size = max(im.shape[-1] for im in images)
    return [im if im.shape[-1] == size else torch.nn.functional.interpolate(im, size=size, mode="nearest") for im in images]


def upscale(x: Tensor, min_tile: int) -> Tensor:
    """``(B, C, h, w)`` enlarged by the smallest integer factor that makes its shorter side at least ``min_tile``
    (nearest neighbour: every pixel becomes a crisp ``k x k`` square, nothing is blurred or invented); returned as
    it is when already that large or when ``min_tile`` is 0."""
    k = -(-min_tile // min(x.shape[-2:])) if min_tile > 0 else 1
    return x if k <= 1 else torch.nn.functional.interpolate(x, scale_factor=k, mode="nearest")


@functools.lru_cache(maxsize=16)
def _font(size: int) -> Any:
    """PIL's built-in font (no file, no download) at ``size`` px: scalable when Pillow has FreeType, else its
    fixed bitmap font."""
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except (ImportError, TypeError):  # Pillow without FreeType (or < 10.1): the bitmap font, one size
        return ImageFont.load_default()


def _fit(draw: Any, text: str, width: int, size: int) -> tuple[str, Any]:
    """``text`` and a font that fit in ``width`` px: the font shrinks to two thirds of ``size`` (at least 8 px),
    then the text is cut with ``...``."""
    smallest = max(8, 2 * size // 3)
    while size > smallest and draw.textlength(text, font=_font(size)) > width:
        size -= 1
    font = _font(size)
    if draw.textlength(text, font=font) <= width:
        return text, font
    while text and draw.textlength(text + "...", font=font) > width:
        text = text[:-1]
    return text + "...", font


def labelled_grid(columns: Mapping[str, Tensor], row_labels: Sequence[str] | None = None, *, row_title: str = "",
                  min_tile: int = 128, padding: int = 2) -> Tensor:
    """One picture of a table of images: a column per entry of ``columns``, titled with its key in a header row,
    a row per item, and optionally each row's label at its left (e.g. the target domain of a translation).

    Sample grids in training (:class:`lit_gans.callbacks.ImageGrid`: ``source | reference | ref_guided |
    latent_guided``, rows labelled with the target domain) and overview pictures of translations use it.

    Args:
        columns: ``{title: (B, C, h, w)}`` in [0, 1], ``C`` 1 (shown grey) or 3 (:func:`to_rgb01` makes them from
            data space); every column has the same ``B``. Columns of different sizes are resized (nearest) to
            the largest height and width among them.
        row_labels: ``B`` strings shown left of the rows, or ``None`` for no label column.
        row_title: the header of the label column (e.g. ``"target"``); only drawn with ``row_labels``.
        min_tile: tiles whose shorter side is smaller are enlarged by an integer factor (nearest neighbour, so a
            32 px image becomes a crisp 128 px tile; see :func:`upscale`); 0 keeps their size.
        padding: white pixels around and between the tiles (as ``torchvision.utils.make_grid``).

    Returns:
        ``(3, H, W)`` float32 in [0, 1] on the CPU, white background, black titles. The tiles form the bottom-right
        block, exactly ``torchvision.utils.make_grid(tiles, nrow=len(columns), padding=padding, pad_value=1)``
        (values rounded to 8 bits); the header row is above it and the label column left of it. Text uses PIL's
        built-in font, sized with the tiles and shrunk (then cut with ``...``) to fit its cell.
    """
    import numpy as np
    import torchvision
    from PIL import Image, ImageDraw

    if not columns:
        raise ValueError("labelled_grid needs at least one column")
    images = [c.detach().float().cpu() for c in columns.values()]
    images = [im.repeat(1, 3, 1, 1) if im.shape[1] == 1 else im[:, :3] for im in images]
    rows = images[0].shape[0]
    if any(im.shape[0] != rows for im in images):
        raise ValueError(f"every column needs the same number of rows, got {[im.shape[0] for im in images]}")
    if row_labels is not None and len(row_labels) != rows:
        raise ValueError(f"{len(row_labels)} row labels for {rows} rows")
    h, w = max(im.shape[-2] for im in images), max(im.shape[-1] for im in images)
    images = [im if im.shape[-2:] == (h, w) else torch.nn.functional.interpolate(im, size=(h, w), mode="nearest")
              for im in images]
    tiles = torch.stack([upscale(im, min_tile) for im in images], dim=1).flatten(0, 1)
    th, tw = tiles.shape[-2:]
    body = torchvision.utils.make_grid(tiles.clamp(0, 1), nrow=len(images), padding=padding, pad_value=1.0)
    body_u8 = body.mul(255).add_(0.5).clamp_(0, 255).to(torch.uint8).permute(1, 2, 0).numpy()

    size = max(10, min(24, min(th, tw) // 9))
    font = _font(size)
    margin = max(2, size // 3)
    scratch = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    ascent, descent = font.getmetrics() if hasattr(font, "getmetrics") else (size, 0)
    header_h = ascent + descent + 2 * margin
    label_w = 0
    if row_labels is not None:
        texts = [str(t) for t in row_labels] + [row_title]
        label_w = int(max(scratch.textlength(t, font=font) for t in texts)) + 2 * margin
        label_w = min(label_w, max(tw, 4 * size))  # a long label is shrunk, not given a wide column

    canvas = Image.new("RGB", (label_w + body_u8.shape[1], header_h + body_u8.shape[0]), "white")
    canvas.paste(Image.fromarray(np.ascontiguousarray(body_u8)), (label_w, header_h))
    draw = ImageDraw.Draw(canvas)

    def put(text: str, left: int, top: int, width: int, height: int, centred: bool) -> None:
        text, f = _fit(draw, text, width - 2 * margin, size)
        x = left + (width - int(draw.textlength(text, font=f))) // 2 if centred else left + margin
        a, d = f.getmetrics() if hasattr(f, "getmetrics") else (ascent, descent)
        draw.text((x, top + (height - a - d) // 2), text, fill="black", font=f)  # same baseline for every title

    for c, title in enumerate(columns):
        put(str(title), label_w + padding + c * (tw + padding), 0, tw, header_h, centred=True)
    if row_labels is not None:
        put(row_title, 0, 0, label_w, header_h, centred=False)
        for r, text in enumerate(row_labels):
            put(str(text), 0, header_h + padding + r * (th + padding), label_w, th, centred=False)
    return torch.from_numpy(np.asarray(canvas).copy()).permute(2, 0, 1).float().div_(255)

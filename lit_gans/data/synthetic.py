"""Built-in data, generated in code (no download): coloured shapes on a tinted background.

* **Domain** decides *what* is drawn: a circle, a square, a triangle, a diamond, a cross or a ring.
* **Style** decides *how*: the shape's colour and its size.
* **Content** is *where*: the shape's position, which a good translation keeps.

So a StarGAN v2 that works turns a red small circle at the top left into, say, a triangle at the top left
painted in the reference's colour and size, and that is visible in the sample grids after a few minutes of
CPU training.

Pixel variant: RGB in [-1, 1]. Latent-like variant: the same scenes at the latent resolution mixed into 4
channels by a fixed linear map and scaled so that their standard deviation is ``1 / 0.18215`` like unscaled
SD-VAE latents: multiplied by ``latent_scale = 0.18215`` they have about unit variance.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from lit_gans.data.conditions import get_condition
from lit_gans.data.datamodule import BaseDataModule, MultiDomainDataModule
from lit_gans.data.domain_items import MultiDomainItems
from lit_gans.data.pair_items import PairedItems, UnpairedItems
from lit_gans.data.sampling import item_generator
from lit_gans.errors import ConfigError

SHAPES = ("circle", "square", "triangle", "diamond", "cross", "ring")
SD_LATENT_SCALE = 0.18215


def _sdf(shape: str, px: Tensor, py: Tensor, r: Tensor) -> Tensor:
    """Signed distance (positive inside) of a shape of radius ``r`` centred at the origin."""
    if shape == "circle":
        return r - torch.sqrt(px**2 + py**2)
    if shape == "square":
        return 0.8 * r - torch.maximum(px.abs(), py.abs())
    if shape == "triangle":  # equilateral, apex up (y grows downwards in images)
        h = 0.6 * r
        d = torch.maximum(py, torch.maximum(-0.866 * px - 0.5 * py, 0.866 * px - 0.5 * py))
        return h - d
    if shape == "diamond":
        return (1.1 * r - (px.abs() + py.abs())) / math.sqrt(2)
    if shape == "cross":
        arm = r / 3
        return torch.maximum(torch.minimum(r - px.abs(), arm - py.abs()), torch.minimum(arm - px.abs(), r - py.abs()))
    if shape == "ring":
        return 0.3 * r - (torch.sqrt(px**2 + py**2) - 0.7 * r).abs()
    raise ValueError(f"unknown shape {shape!r}")


def _hsv_to_rgb(h: Tensor, s: Tensor, v: Tensor) -> Tensor:
    """``(N,)`` hue/saturation/value in [0, 1] to ``(N, 3)`` RGB in [0, 1]."""
    k = torch.stack([(5 + h * 6) % 6, (3 + h * 6) % 6, (1 + h * 6) % 6], dim=1)
    return v[:, None] - v[:, None] * s[:, None] * torch.clamp(torch.minimum(k, 4 - k), 0, 1)


def render_scenes(domains: Tensor, centers: Tensor, radii: Tensor, fg: Tensor, bg: Tensor, size: int,
                  return_alpha: bool = False) -> Tensor | tuple[Tensor, Tensor]:
    """Render ``N`` scenes.

    Args:
        domains: ``(N,)`` shape index into :data:`SHAPES` (modulo its length).
        centers: ``(N, 2)`` shape centres, x and y in [-1, 1].
        radii: ``(N,)`` shape radii in the same units.
        fg, bg: ``(N, 3)`` foreground / background colours in [0, 1].
        size: output height and width.

    Returns:
        ``(N, 3, size, size)`` in [-1, 1].
    """
    coords = torch.linspace(-1, 1, size)
    ys, xs = torch.meshgrid(coords, coords, indexing="ij")
    px = xs[None] - centers[:, 0, None, None]
    py = ys[None] - centers[:, 1, None, None]
    r = radii[:, None, None]
    alpha = torch.empty(len(domains), size, size)
    for k, shape in enumerate(SHAPES):
        sel = (domains % len(SHAPES)) == k
        if sel.any():
            alpha[sel] = torch.sigmoid(_sdf(shape, px[sel], py[sel], r[sel]) * (size / 2.0))
    shade = 0.85 + 0.15 * ys[None]  # a soft vertical gradient in the background
    img = bg[:, :, None, None] * shade[:, None] * (1 - alpha[:, None]) + fg[:, :, None, None] * alpha[:, None]
    return (img * 2 - 1, alpha) if return_alpha else img * 2 - 1


def sample_scenes(num_domains: int, per_domain: int, size: int, seed: int) -> tuple[Tensor, Tensor]:
    """Draw ``per_domain`` random scenes of each of ``num_domains`` shapes: ``(images (N,3,H,W), labels (N,))``."""
    if not 2 <= num_domains <= len(SHAPES):
        raise ConfigError(
            f"the built-in shapes data has 2 to {len(SHAPES)} domains, got {num_domains}: "
            "set data.num_domains in that range"
        )
    g = torch.Generator().manual_seed(seed)
    n = num_domains * per_domain
    labels = torch.arange(num_domains).repeat_interleave(per_domain)
    centers = (torch.rand(n, 2, generator=g) * 2 - 1) * 0.45
    radii = 0.28 + 0.22 * torch.rand(n, generator=g)
    fg = _hsv_to_rgb(torch.rand(n, generator=g), 0.6 + 0.4 * torch.rand(n, generator=g), 0.75 + 0.25 * torch.rand(n, generator=g))
    bg = torch.tensor([0.16, 0.18, 0.24]).expand(n, 3)  # one background for all: only shape, colour, size vary
    return render_scenes(labels, centers, radii, fg, bg, size), labels


def latent_like(images: Tensor, seed: int = 1234) -> Tensor:
    """Map ``(N, 3, H, W)`` scenes in [-1, 1] to 4 channels with the magnitude of unscaled SD-VAE latents.

    A fixed linear colour mix (the same for every dataset) followed by a global scale so that the result's
    standard deviation is ``1 / 0.18215``.
    """
    g = torch.Generator().manual_seed(seed)
    mix = torch.randn(4, 3, generator=g)
    bias = 0.3 * torch.randn(4, generator=g)
    lat = torch.einsum("oc,nchw->nohw", mix, images)
    lat = (lat - lat.mean()) / lat.std() + bias[None, :, None, None]
    return lat * (1.0 / (SD_LATENT_SCALE * lat.std()))


def synthetic_domains(num_domains: int = 3, per_domain: int = 256, img_size: int = 64, channels: int = 3,
                      seed: int = 0) -> tuple[Tensor, Tensor]:
    """The built-in multi-domain dataset: ``(data (N, channels, img_size, img_size), labels (N,))``.

    ``channels=3``: RGB pixels in [-1, 1]. ``channels=4``: latent-like tensors (see :func:`latent_like`).
    """
    images, labels = sample_scenes(num_domains, per_domain, img_size, seed)
    if channels == 3:
        return images, labels
    if channels == 4:
        return latent_like(images), labels
    raise ConfigError(
        f"the built-in data has 3 (pixels) or 4 (latent-like) channels, got {channels} (model.in_channels)"
    )


class SyntheticDomainsDataModule(MultiDomainDataModule):
    """The built-in shapes data as a StarGAN v2 data module (``data=synthetic`` / ``data=synthetic_latents``).

    Args:
        num_domains: 2 to 6 shapes.
        img_size: height and width.
        channels: 3 (pixels in [-1, 1]) or 4 (latent-like, see :func:`latent_like`).
        per_domain: training items per domain; ``val_per_domain`` for the fixed grid batch.
        data_seed: seed of the scenes themselves (``seed`` drives sampling).
    """

    layout = "domains"

    def __init__(self, num_domains: int = 3, img_size: int = 64, channels: int = 3, per_domain: int = 256,
                 val_per_domain: int = 8, data_seed: int = 0, **kwargs):
        super().__init__(**kwargs)
        self.save_hyperparameters(logger=False)
        self.domain_names = list(SHAPES[:num_domains])
        self.channels, self.img_size = channels, img_size
        self._num_domains, self.per_domain, self.val_per_domain, self.data_seed = (
            num_domains, per_domain, val_per_domain, data_seed)

    def data_spec(self) -> dict:
        spec = super().data_spec()
        if self.channels == 4:
            spec["scaling_factor"] = SD_LATENT_SCALE  # latent-like data is scaled like SD 1.x latents
        return spec

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        for split, per_domain, seed in (("train", self.per_domain, self.data_seed),
                                        ("val", self.val_per_domain, self.data_seed + 1)):
            data, labels = synthetic_domains(self._num_domains, per_domain, self.img_size, self.channels, seed)
            items = MultiDomainItems(data.__getitem__, labels, self._num_domains, self.latent_dim,
                                     with_ref2=self.with_ref2)
            setattr(self, f"{split}_set", items)


def _scene_params(n: int, g: torch.Generator) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    centers = (torch.rand(n, 2, generator=g) * 2 - 1) * 0.45
    radii = 0.28 + 0.22 * torch.rand(n, generator=g)
    fg = _hsv_to_rgb(torch.rand(n, generator=g), 0.6 + 0.4 * torch.rand(n, generator=g),
                     0.75 + 0.25 * torch.rand(n, generator=g))
    bg = _hsv_to_rgb(torch.rand(n, generator=g), 0.3 + 0.3 * torch.rand(n, generator=g),
                     0.15 + 0.25 * torch.rand(n, generator=g))
    return centers, radii, fg, bg


def synthetic_unpaired(n: int, img_size: int = 64, seed: int = 0) -> dict[str, Tensor]:
    """Two unpaired domains with semantic masks: A = circles, B = squares, each with its own colour, size,
    position and background tint. Masks ``(N, H, W)`` long: 1 on the shape, 0 on the background (which a
    mask-conserving translation keeps)."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for side, shape in (("A", 0), ("B", 1)):
        centers, radii, fg, bg = _scene_params(n, g)
        img, alpha = render_scenes(torch.full((n,), shape), centers, radii, fg, bg, img_size, return_alpha=True)
        out[side], out[f"{side}_mask"] = img, (alpha > 0.5).long()
    return out


PAIRED_TASKS = ("labels", "colorize", "inpaint")


def synthetic_paired(n: int, img_size: int = 64, task: str = "labels", seed: int = 0) -> tuple[Tensor, Tensor]:
    """Aligned ``(source, target)`` pairs of shape scenes, ``(N, 3, H, W)`` each:

    * ``labels`` (pix2pix's labels-to-photo): the source is a flat label map (each shape kind and the
      background in a fixed colour); the target is the scene whose colours follow from the shape kind,
      with shading, so the mapping is learnable exactly.
    * ``colorize`` / ``inpaint``: the target is a freely coloured scene; the source is its grayscale, or the
      scene with a hole (see :mod:`lit_gans.data.conditions`).
    """
    if task not in PAIRED_TASKS:
        raise ConfigError(f"unknown data.task {task!r} for the built-in paired data: {', '.join(PAIRED_TASKS)}")
    g = torch.Generator().manual_seed(seed)
    kinds = torch.randint(len(SHAPES), (n,), generator=g)
    centers, radii, fg, bg = _scene_params(n, g)
    if task == "labels":
        palette = _hsv_to_rgb(torch.arange(len(SHAPES)) / len(SHAPES), torch.full((len(SHAPES),), 0.8),
                              torch.full((len(SHAPES),), 0.9))
        fg, bg = palette[kinds], torch.tensor([0.2, 0.25, 0.35]).expand(n, 3)
    target, alpha = render_scenes(kinds, centers, radii, fg, bg, img_size, return_alpha=True)
    if task == "labels":
        label_bg = torch.full((n, 3), 0.5)
        label_fg = torch.eye(3)[kinds % 3] * 0.5 + 0.25 + 0.25 * (kinds >= 3).float()[:, None]
        source = (label_bg[:, :, None, None] * (1 - (alpha[:, None] > 0.5).float())
                  + label_fg[:, :, None, None] * (alpha[:, None] > 0.5).float()) * 2 - 1
        return source, target
    cond = get_condition("grayscale" if task == "colorize" else "inpaint")
    source = torch.stack([cond(t, item_generator(seed * 7919 + i)) for i, t in enumerate(target)])
    return source, target


class SyntheticUnpairedDataModule(BaseDataModule):
    """Built-in unpaired data (``data=synthetic_unpaired``): circles (A) to squares (B) with masks.

    Args:
        img_size: height and width; ``size``: items per domain; ``val_size``: the fixed grid batch.
        channels: 3 (pixels) or 4 (latent-like; masks still at the latent resolution).
        masks: include ``A_mask``/``B_mask`` (2 classes: background, shape).
    """

    layout = "unpaired"

    def __init__(self, img_size: int = 64, channels: int = 3, size: int = 256, val_size: int = 8, masks: bool = True,
                 data_seed: int = 0, batch_size: int = 1, **kwargs):
        super().__init__(batch_size=batch_size, **kwargs)
        self.save_hyperparameters(logger=False)
        self.img_size, self.channels, self.size, self.val_size = img_size, channels, size, val_size
        self.masks, self.data_seed = masks, data_seed
        if channels not in (3, 4):
            raise ConfigError(f"the built-in data has 3 (pixels) or 4 (latent-like) channels, got {channels}")

    def data_spec(self) -> dict:
        spec = {**super().data_spec(), "masks_a": self.masks, "masks_b": self.masks}
        if self.masks:
            spec["num_classes"] = 2
        if self.channels == 4:
            spec["scaling_factor"] = SD_LATENT_SCALE
        return spec

    def _items(self, n: int, seed: int) -> UnpairedItems:
        d = synthetic_unpaired(n, self.img_size, seed)
        if self.channels == 4:
            d["A"], d["B"] = latent_like(d["A"]), latent_like(d["B"])

        def side(key: str):
            def get(i: int) -> dict[str, Tensor]:
                item = {"": d[key][i]}
                if self.masks:
                    item["_mask"] = d[f"{key}_mask"][i]
                return item

            return get

        return UnpairedItems(side("A"), n, side("B"), n)

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is None:
            self.train_set = self._items(self.size, self.data_seed)
            self.val_set = self._items(self.val_size, self.data_seed + 1)


class SyntheticPairedDataModule(BaseDataModule):
    """Built-in paired data (``data=synthetic_paired``); see :func:`synthetic_paired` for the ``task``s.

    Args:
        channels: 3 (pixels) or 4 (both sides mapped to latent-like tensors).
        flip: random horizontal flips of training pairs (both sides together).
    """

    layout = "paired"

    def __init__(self, img_size: int = 64, channels: int = 3, task: str = "labels", size: int = 512,
                 val_size: int = 8, flip: bool = True, data_seed: int = 0, batch_size: int = 1, **kwargs):
        super().__init__(batch_size=batch_size, **kwargs)
        self.save_hyperparameters(logger=False)
        self.img_size, self.channels, self.task, self.size, self.val_size = img_size, channels, task, size, val_size
        self.flip, self.data_seed = flip, data_seed
        if channels not in (3, 4):
            raise ConfigError(f"the built-in data has 3 (pixels) or 4 (latent-like) channels, got {channels}")

    def data_spec(self) -> dict:
        spec = {**super().data_spec(), "task": self.task}
        if self.channels == 4:
            spec["scaling_factor"] = SD_LATENT_SCALE
        return spec

    def _items(self, n: int, seed: int, train: bool) -> PairedItems:
        a, b = synthetic_paired(n, self.img_size, self.task, seed)
        if self.channels == 4:
            a, b = latent_like(a), latent_like(b)
        flip = self.flip and train

        def pair(i: int) -> tuple[Tensor, Tensor]:
            if flip and bool(torch.rand(()) < 0.5):
                return a[i].flip(-1), b[i].flip(-1)
            return a[i], b[i]

        return PairedItems(pair, n)

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is None:
            self.train_set = self._items(self.size, self.data_seed, train=True)
            self.val_set = self._items(self.val_size, self.data_seed + 1, train=False)

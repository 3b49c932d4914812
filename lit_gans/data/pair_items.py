"""Datasets of image pairs: unpaired (CycleGAN/CUT: an A and an independent B) and paired (pix2pix: a source
and its target). Items are ``{"A": (C,H,W), "B": (C,H,W)}`` plus ``"A_mask"``/``"B_mask"`` ``(H,W)`` long when
there are semantic masks."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from torch import Tensor
from torch.utils.data import Dataset
from torchvision import tv_tensors

from lit_gans.data.file_images import FileImages
from lit_gans.data.images import read_mask
from lit_gans.data.sampling import ItemKey, item_generator, pinned_cpu_rng, split_key

Side = Callable[[int], dict[str, Tensor]]
"""``side(i) -> {"": image, "_mask": mask?}``: one transformed item of one domain."""


class UnpairedItems(Dataset):
    """``len = max(len_A, len_B)``; item ``i`` is ``A[i % len_A]`` and a B drawn at random (from the item's
    seed), so every A is seen each epoch whichever domain is larger, as CycleGAN does."""

    def __init__(self, side_a: Side, len_a: int, side_b: Side, len_b: int):
        self.side_a, self.len_a, self.side_b, self.len_b = side_a, len_a, side_b, len_b

    def __len__(self) -> int:
        return max(self.len_a, self.len_b)

    def __getitem__(self, key: int | ItemKey) -> dict[str, Tensor]:
        index, seed = split_key(key)
        ib = int(torch.randint(self.len_b, (), generator=item_generator(seed)))
        with pinned_cpu_rng(seed):
            a, b = self.side_a(index % self.len_a), self.side_b(ib)
        return {**{f"A{k}": v for k, v in a.items()}, **{f"B{k}": v for k, v in b.items()}}


class PairedItems(Dataset):
    """Item ``i`` is ``{"A": source_i, "B": target_i}``."""

    def __init__(self, pair: Callable[[int], tuple[Tensor, Tensor]], length: int):
        self.pair, self.length = pair, length

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, key: int | ItemKey) -> dict[str, Tensor]:
        index, seed = split_key(key)
        with pinned_cpu_rng(seed):
            a, b = self.pair(index)
        return {"A": a, "B": b}


class FileSide:
    """One domain of unpaired files, with optional masks sharing the image's random crop and flip."""

    def __init__(self, paths: Sequence[Path], transform: Callable[..., object], masks: Sequence[Path] | None = None,
                 min_size: int = 0):
        self.images = FileImages(paths, lambda x: x, min_size=min_size)
        self.masks = list(masks) if masks is not None else None
        self.transform = transform

    def __call__(self, i: int) -> dict[str, Tensor]:
        img = tv_tensors.Image(self.images.raw(i))
        if self.masks is None:
            return {"": self.transform(img)}
        mask = tv_tensors.Mask(read_mask(self.masks[i]))
        if mask.shape[-2:] != img.shape[-2:]:
            mask = tv_tensors.Mask(torch.nn.functional.interpolate(mask[None, None].float(), size=img.shape[-2:],
                                                                   mode="nearest")[0, 0].long())
        img, mask = self.transform(img, mask)
        return {"": img, "_mask": mask.as_subclass(Tensor)}


class FilePairs:
    """Paired files: two matched lists, or side-by-side ``A|B`` images (left half A). Both halves get the
    same random crop and flip. ``direction="BtoA"`` swaps source and target."""

    def __init__(self, paths_a: Sequence[Path], paths_b: Sequence[Path] | None, transform: Callable[..., object],
                 direction: str = "AtoB", min_size: int = 0):
        if direction not in ("AtoB", "BtoA"):
            from lit_gans.errors import ConfigError

            raise ConfigError(f"data.direction must be AtoB or BtoA, got {direction!r}")
        self.a = FileImages(paths_a, lambda x: x, min_size=min_size)
        self.b = FileImages(paths_b, lambda x: x, min_size=min_size) if paths_b is not None else None
        self.transform, self.swap = transform, direction == "BtoA"

    def __len__(self) -> int:
        return len(self.a)

    def __call__(self, i: int) -> tuple[Tensor, Tensor]:
        if self.b is None:
            ab = self.a.raw(i)
            half = ab.shape[-1] // 2
            a, b = ab[..., :half], ab[..., half: 2 * half]
        else:
            a, b = self.a.raw(i), self.b.raw(i)
            if b.shape[-2:] != a.shape[-2:]:
                b = torch.nn.functional.interpolate(b[None].float(), size=a.shape[-2:], mode="bilinear",
                                                    antialias=True)[0].round().clamp(0, 255).to(torch.uint8)
        a, b = self.transform(tv_tensors.Image(a), tv_tensors.Image(b))
        a, b = a.as_subclass(Tensor), b.as_subclass(Tensor)
        return (b, a) if self.swap else (a, b)

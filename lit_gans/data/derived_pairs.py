"""Restoration data from plain image folders: each image is a *target* and its source is derived from it
(``data.condition=grayscale|inpaint``, see :mod:`lit_gans.data.conditions`), as Palette trains colourisation
and inpainting on any photo collection."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from torch import Tensor
from torchvision import tv_tensors

from lit_gans.data.conditions import Condition
from lit_gans.data.file_images import FileImages
from lit_gans.data.images import list_images
from lit_gans.data.layouts import EXTS, existing_root, screen
from lit_gans.errors import DataError

TARGETS_HINT = "a folder of target images (ROOT/train/*.jpg or ROOT/*.jpg, sub-folders included), or A/ B/ pairs"
SPLITS = ("train", "val", "test")


def find_targets(root: str | Path, split: str = "train", direction: str = "AtoB", verify: bool | str = "auto",
                 strict: bool = False, workers: int = 4) -> list[Path]:
    """Target images of a split: every image under ``ROOT/<split>`` (or ``ROOT`` itself for ``train`` when
    there is no ``train/``, other split folders left out), or only its ``B/`` folder (``A/`` with
    ``direction=BtoA``) when the folder holds ``A/`` ``B/`` pairs: the stored sources are then ignored."""
    base_root = existing_root(root, TARGETS_HINT)
    base = base_root / split if (base_root / split).is_dir() else base_root
    if split != "train" and base == base_root:
        raise DataError(f"{base_root} has no {split}/ folder")
    if (base / "A").is_dir() or (base / "B").is_dir():
        base = base / ("B" if direction == "AtoB" else "A")
        if not base.is_dir():
            raise DataError(f"{base} does not exist: the targets of A/ B/ pairs are in B/ (A/ with data.direction=BtoA)")
        files = list_images(base)
    else:
        files = [p for p in list_images(base) if base != base_root or p.relative_to(base).parts[0] not in SPLITS]
    if not files:
        raise DataError(f"{base} has no images ({EXTS}): data.condition expects {TARGETS_HINT}")
    files = screen(files, verify, strict, workers)
    if not files:
        raise DataError(f"every image in {base} is unreadable: replace them")
    return files


class DerivedPairs:
    """``pairs(i) -> (condition(target_i), target_i)`` with ``target_i`` the transformed file ``i`` (``(3, H, W)``
    in [-1, 1]). Random conditions (inpainting holes) draw from torch's CPU generator, which the paired
    datasets pin per item."""

    def __init__(self, paths: Sequence[Path], transform: Callable[..., object], condition: Condition,
                 min_size: int = 0):
        self.images = FileImages(paths, lambda x: x, min_size=min_size)
        self.transform, self.condition = transform, condition

    def __len__(self) -> int:
        return len(self.images)

    def __call__(self, i: int) -> tuple[Tensor, Tensor]:
        target = self.transform(tv_tensors.Image(self.images.raw(i))).as_subclass(Tensor)
        return self.condition(target, None), target

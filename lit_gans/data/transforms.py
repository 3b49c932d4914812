"""Image transforms (``torchvision.transforms.v2``): random ones for training, deterministic ones for
validation. They take ``uint8`` images (cheap to resize and crop) and end in float32 in [-1, 1]; masks
(``tv_tensors.Mask``) get the same geometric changes and stay integer."""

from __future__ import annotations

import logging
from collections.abc import Callable

import torch
from torch import Tensor
from torchvision import tv_tensors
from torchvision.transforms import v2

log = logging.getLogger(__name__)

_NORMALIZE = v2.Normalize(mean=[0.5, 0.5, 0.5], std=[0.5, 0.5, 0.5])
# Plain tensors are images here; in joint calls images are tv_tensors.Image and masks tv_tensors.Mask
# (masks keep their integer class ids).
_TO_FLOAT_IMAGE = v2.ToDtype(torch.float32, scale=True)
_TO_FLOAT_IMAGES_ONLY = v2.ToDtype({tv_tensors.Image: torch.float32, "others": None}, scale=True)


def stargan_transform(img_size: int, train: bool, crop_prob: float = 0.5, crop_scale: tuple[float, float] = (0.8, 1.0),
                      crop_ratio: tuple[float, float] = (0.9, 1.1), flip: bool = True) -> Callable[[Tensor], Tensor]:
    """The original StarGAN v2 pipeline: with probability ``crop_prob`` a random resized crop (scale 0.8-1,
    aspect 0.9-1.1), then a resize to ``img_size`` square and a random horizontal flip. Validation: resize."""
    steps: list[Callable] = []
    if train and crop_prob > 0:
        steps.append(v2.RandomApply([v2.RandomResizedCrop(img_size, scale=crop_scale, ratio=crop_ratio, antialias=True)],
                                    p=crop_prob))
    steps.append(v2.Resize((img_size, img_size), antialias=True))
    if train and flip:
        steps.append(v2.RandomHorizontalFlip())
    return v2.Compose([*steps, _TO_FLOAT_IMAGE, _NORMALIZE])


def crop_transform(load_size: int, crop_size: int, train: bool, flip: bool = True) -> Callable[..., object]:
    """CycleGAN/pix2pix ``resize_and_crop``: resize to ``load_size`` square, random crop ``crop_size``, random
    flip; validation crops the centre. Called on several inputs at once (an image and its mask, or A and B
    of a pair) it applies the same random parameters to all of them: pass images as ``tv_tensors.Image``
    and masks as ``tv_tensors.Mask``."""
    if load_size < crop_size:
        raise ValueError(f"data.load_size ({load_size}) must be at least data.crop_size ({crop_size})")
    steps: list[Callable] = [v2.Resize((load_size, load_size), antialias=True)]
    steps.append(v2.RandomCrop(crop_size) if train else v2.CenterCrop(crop_size))
    if train and flip:
        steps.append(v2.RandomHorizontalFlip())
    return v2.Compose([*steps, _TO_FLOAT_IMAGES_ONLY, _NORMALIZE])


def warn_if_small(img: Tensor, size: int, path: object, seen: set[str]) -> None:
    """Log once per file that an image smaller than the training size is being upscaled."""
    h, w = img.shape[-2:]
    if min(h, w) < size and str(path) not in seen:
        seen.add(str(path))
        log.warning("image %s (%dx%d) is smaller than %d px and is upscaled; larger images train better", path, w, h, size)

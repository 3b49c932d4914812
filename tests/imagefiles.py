"""Small real image files made at test time (no binary fixtures in git)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def rgb(size: tuple[int, int] = (40, 32), seed: int = 0, value: int | None = None) -> Image.Image:
    """A random (or flat) RGB image of ``size`` (width, height)."""
    if value is not None:
        return Image.new("RGB", size, (value, value, value))
    arr = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    return Image.fromarray(arr)


def write_domains(root: Path, domains: dict[str, int], size=(40, 32), ext: str = "png", seed: int = 0) -> Path:
    """``root/<domain>/<i>.<ext>`` with ``domains[name]`` images each."""
    for d, (name, n) in enumerate(domains.items()):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            rgb(size, seed=seed * 1000 + d * 100 + i).save(root / name / f"{i:03d}.{ext}")
    return root


def write_folder(folder: Path, n: int, size=(40, 32), ext: str = "png", seed: int = 0, prefix: str = "") -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(n):
        p = folder / f"{prefix}{i:03d}.{ext}"
        rgb(size, seed=seed + i).save(p)
        out.append(p)
    return out


def pixels(image) -> np.ndarray:
    """An image file (path, bytes or PIL image) as an ``int`` array, to compare 8-bit images by levels."""
    import io

    if isinstance(image, bytes):
        image = io.BytesIO(image)
    return np.asarray(image if isinstance(image, Image.Image) else Image.open(image), dtype=np.int64)


def max_level_difference(a, b) -> int:
    """The largest difference, in 8-bit levels, between two images of the same size.

    An image written from a model's float output is equal to within one level, not byte for byte, across batch
    sizes, thread counts and CPUs: another convolution kernel rounds a float the other way and a value at
    ``k + 0.5`` levels lands on the other side (seen: 1 pixel of 3,072 on an AMD EPYC between a batch of one and
    a batch of two)."""
    pa, pb = pixels(a), pixels(b)
    assert pa.shape == pb.shape, (pa.shape, pb.shape)
    return int(np.abs(pa - pb).max())

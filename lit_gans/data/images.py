"""Finding and decoding image files: torchvision's decoders (JPEG, PNG incl. 16-bit, WebP, GIF) with
PIL as the fallback for the formats torchvision cannot decode (BMP, TIFF). Everything comes out as
``uint8`` ``(3, H, W)`` RGB (grayscale, palette and RGBA are converted), or ``int64 (H, W)`` for masks."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch
from torch import Tensor
from torchvision.io import ImageReadMode, decode_image

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff")
_MAGIC = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF87a", b"GIF89a", b"BM", b"II*\x00", b"MM\x00*")


def is_image_file(path: str | os.PathLike) -> bool:
    return str(path).lower().endswith(IMAGE_EXTENSIONS)


def list_images(folder: str | os.PathLike) -> list[Path]:
    """Image files under ``folder`` (recursively), sorted; hidden files and folders are skipped."""
    out = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        out += [Path(dirpath) / f for f in filenames if not f.startswith(".") and is_image_file(f)]
    return sorted(out)


def _looks_like_image(head: bytes) -> bool:
    return head.startswith(_MAGIC) or (head[:4] == b"RIFF" and head[8:12] == b"WEBP")


def read_image(path: str | os.PathLike) -> Tensor:
    """Decode an image file to ``uint8 (3, H, W)`` RGB."""
    data = torch.frombuffer(bytearray(Path(path).read_bytes()), dtype=torch.uint8)
    try:
        img = decode_image(data, mode=ImageReadMode.RGB)
    except RuntimeError:
        img = _read_with_pil(path)
    if img.dtype == torch.uint16:  # 16-bit PNG: keep the 8 high bits
        img = (img.to(torch.int32) >> 8).to(torch.uint8)
    elif img.dtype != torch.uint8:
        img = img.to(torch.uint8)
    return img


def read_mask(path: str | os.PathLike) -> Tensor:
    """Decode a label map (PNG of class ids) to ``int64 (H, W)``; RGB masks use their first channel."""
    data = torch.frombuffer(bytearray(Path(path).read_bytes()), dtype=torch.uint8)
    try:
        m = decode_image(data, mode=ImageReadMode.UNCHANGED)
    except RuntimeError:
        import numpy as np
        from PIL import Image

        with Image.open(path) as im:
            m = torch.from_numpy(np.array(im)).reshape(im.size[1], im.size[0], -1).permute(2, 0, 1)
    return m[0].long()


def _read_with_pil(path: str | os.PathLike) -> Tensor:
    import numpy as np
    from PIL import Image

    with Image.open(path) as im:
        if im.mode in ("I;16", "I;16B", "I"):
            arr = (np.array(im, dtype=np.float64) / (65535.0 if im.mode.startswith("I;16") else im.getextrema()[1] or 1))
            arr = (arr * 255).clip(0, 255).astype(np.uint8)
            return torch.from_numpy(arr)[None].repeat(3, 1, 1)
        arr = np.array(im.convert("RGB"))
    return torch.from_numpy(arr).permute(2, 0, 1).contiguous()


def check_image(path: Path, decode: bool) -> str | None:
    """Why ``path`` cannot be used (``None`` when it can): empty, not an image, or (``decode``) undecodable."""
    try:
        with open(path, "rb") as f:
            head = f.read(16)
        if not head:
            return "empty file"
        if not _looks_like_image(head):
            return "not an image file"
        if decode:
            img = read_image(path)
            if img.numel() == 0:
                return "no pixels"
    except Exception as err:  # noqa: BLE001 - any decoder failure makes the file unusable
        return f"{type(err).__name__}: {str(err).splitlines()[0][:120] if str(err) else 'unreadable'}"
    return None


def find_unreadable(paths: Sequence[Path], decode: bool, workers: int = 4) -> list[tuple[Path, str]]:
    """``[(path, reason)]`` for the files that cannot be used; decodes them all when ``decode``."""
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        reasons = list(pool.map(lambda p: check_image(p, decode), paths))
    return [(p, r) for p, r in zip(paths, reasons, strict=True) if r is not None]


def describe_paths(paths: Iterable[Path], limit: int = 8) -> str:
    paths = list(paths)
    shown = ", ".join(str(p) for p in paths[:limit])
    return shown + (f" and {len(paths) - limit} more" if len(paths) > limit else "")

"""The latent file: what ``python -m lit_gans.latents encode`` writes and ``data=latents`` reads.

One ``torch.save`` file (loadable with ``weights_only=True``, memory-mappable) holding::

    format: "lit_gans.latents", version: 1
    layout: "domains" | "unpaired" | "paired"
    latents:   (N, C, h, w) float16/float32, UNSCALED (the VAE posterior before * scaling_factor)
    latents_b: (N, C, h, w) the targets of a paired layout (else absent)
    labels:    (N,) int64 domain index (unpaired: 0 = A, 1 = B; paired: 0)
    split:     (N,) int64, 0 = train, 1 = val/test
    domain_names, files (relative to the image root), vae, subfolder, scaling_factor, image_size, sample
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from lit_gans.errors import DataError, LitGansError
from lit_gans.utils.safe_load import load_data

FORMAT = "lit_gans.latents"
VERSION = 1
LAYOUTS = ("domains", "unpaired", "paired")
MMAP_BYTES = 4 << 30  # files larger than this stay memory-mapped instead of being read into memory


@dataclass
class LatentSet:
    latents: Tensor
    labels: Tensor
    split: Tensor
    layout: str = "domains"
    domain_names: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    latents_b: Tensor | None = None
    vae: str = ""
    subfolder: str | None = None
    scaling_factor: float = 0.18215
    image_size: int = 0
    sample: bool = False

    @property
    def channels(self) -> int:
        return int(self.latents.shape[1])

    @property
    def size(self) -> int:
        return int(self.latents.shape[-1])

    def to_dict(self) -> dict[str, Any]:
        d = {"format": FORMAT, "version": VERSION, "layout": self.layout, "latents": self.latents,
             "labels": self.labels, "split": self.split, "domain_names": list(self.domain_names),
             "files": list(self.files), "vae": self.vae, "subfolder": self.subfolder,
             "scaling_factor": float(self.scaling_factor), "image_size": int(self.image_size), "sample": bool(self.sample)}
        if self.latents_b is not None:
            d["latents_b"] = self.latents_b
        return d


def atomic_save(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save`` to a temporary file beside ``path``, then rename: a crash never leaves a truncated
    file in place of a good one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def save_latents(data: LatentSet, path: str | os.PathLike) -> None:
    validate(data, str(path))
    atomic_save(data.to_dict(), path)


HOW_TO_MAKE = "write one with: python -m lit_gans.latents encode --images DIR --vae PATH_OR_HUB_ID --out FILE"


def load_latents(path: str | os.PathLike, mmap: bool | str = "auto", check_finite: bool = True) -> LatentSet:
    """Read and check a latent file. ``mmap="auto"`` keeps files over 4 GiB memory-mapped."""
    p = Path(str(path)).expanduser()
    if not p.is_file():
        raise DataError(f"latent file {p} does not exist: {HOW_TO_MAKE}")
    try:
        raw = load_data(p, "latent file", HOW_TO_MAKE, mmap=True)
    except LitGansError:
        raise
    except Exception:  # noqa: BLE001 - any other reading failure means "not our format"
        raise DataError(f"{p} is not a latent file (torch.load cannot read it): {HOW_TO_MAKE}") from None
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        raise DataError(f"{p} is not a lit_gans latent file (no format={FORMAT!r} entry): {HOW_TO_MAKE}")
    if int(raw.get("version", 0)) > VERSION:
        raise DataError(f"{p} was written by a newer lit_gans (format version {raw['version']} > {VERSION}): upgrade")
    missing = [k for k in ("latents", "labels", "split", "layout", "domain_names") if k not in raw]
    if missing:
        raise DataError(f"{p} lacks {', '.join(missing)}: it is incomplete; re-encode it")
    for key in ("latents", "labels", "split", "latents_b"):
        if key in raw and not isinstance(raw[key], Tensor):
            raise DataError(f"{p}: {key} is a {type(raw[key]).__name__}, expected a tensor: write the file with "
                            "python -m lit_gans.latents encode (or torch.stack the latents into one tensor)")
    for key in ("labels", "split"):
        if raw[key].is_floating_point() or raw[key].dtype == torch.bool or raw[key].is_complex():
            raise DataError(f"{p}: {key} have dtype {str(raw[key].dtype).replace('torch.', '')}, expected integers "
                            "(a float label would be truncated): store them as torch.long")
    keep_mmap = mmap is True or (mmap == "auto" and p.stat().st_size > MMAP_BYTES)
    tensors = {k: raw[k] if keep_mmap else raw[k].clone() for k in ("latents", "labels", "split", "latents_b") if k in raw}
    data = LatentSet(
        latents=tensors["latents"], labels=tensors["labels"].long(), split=tensors["split"].long(),
        latents_b=tensors.get("latents_b"), layout=raw["layout"], domain_names=list(raw["domain_names"]),
        files=list(raw.get("files", [])), vae=str(raw.get("vae", "")), subfolder=raw.get("subfolder"),
        scaling_factor=float(raw.get("scaling_factor", 0.18215)), image_size=int(raw.get("image_size", 0)),
        sample=bool(raw.get("sample", False)),
    )
    validate(data, str(p), check_finite=check_finite)
    return data


def validate(data: LatentSet, name: str, check_finite: bool = True) -> None:
    """One-line errors for malformed latent sets: shapes, dtypes, square latents, a training split, labels
    within the domain names, and (``check_finite``) no NaN/Inf."""
    lat = data.latents
    if data.layout not in LAYOUTS:
        raise DataError(f"{name}: unknown layout {data.layout!r} (expected one of {', '.join(LAYOUTS)})")
    if lat.dim() != 4:
        raise DataError(f"{name}: latents have shape {tuple(lat.shape)}, expected (N, channels, h, w)")
    for key, t in (("latents", lat), ("latents_b", data.latents_b)):
        if t is not None and not t.is_floating_point():
            raise DataError(f"{name}: {key} have dtype {str(t.dtype).replace('torch.', '')}, expected floating point "
                            "(float32, float16 or bfloat16 VAE latents): re-encode, or convert with .float()")
    n = lat.shape[0]
    if n == 0:
        raise DataError(f"{name}: holds no latents")
    if lat.shape[-2] != lat.shape[-1]:
        raise DataError(f"{name}: latents are {lat.shape[-2]}x{lat.shape[-1]} (height x width); the networks here "
                        "take square latents: encode square images (python -m lit_gans.latents encode --size N "
                        "resizes and centre-crops them)")
    for key in ("labels", "split"):
        t = getattr(data, key)
        if t.shape != (n,):
            raise DataError(f"{name}: {key} has shape {tuple(t.shape)} but there are {n} latents")
    if data.latents_b is not None and data.latents_b.shape != lat.shape:
        raise DataError(f"{name}: paired targets have shape {tuple(data.latents_b.shape)}, sources {tuple(lat.shape)}")
    if data.layout == "paired" and data.latents_b is None:
        raise DataError(f"{name}: a paired latent file needs latents_b (the targets)")
    if not bool((data.split == 0).any()):
        raise DataError(f"{name}: no latent is in the training split (split == 0 for none of {n}): re-encode with "
                        "training images, or set split to 0 for the items to train on")
    if int(data.labels.max()) >= len(data.domain_names) or int(data.labels.min()) < 0:
        raise DataError(f"{name}: labels go up to {int(data.labels.max())} but there are "
                        f"{len(data.domain_names)} domain names")
    if check_finite:
        for key, t in (("latents", lat), ("latents_b", data.latents_b)):
            if t is None:
                continue
            bad = first_non_finite(t)
            if bad is not None:
                raise DataError(f"{name}: {key}[{bad}] contains NaN or Inf: re-encode those images "
                                "(in float32 if they were encoded in float16)")


def first_non_finite(t: Tensor, chunk: int = 4096) -> int | None:
    for start in range(0, t.shape[0], chunk):
        ok = torch.isfinite(t[start: start + chunk].float()).flatten(1).all(1)
        if not bool(ok.all()):
            return start + int((~ok).nonzero()[0])
    return None

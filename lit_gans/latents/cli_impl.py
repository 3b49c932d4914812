"""The work behind ``python -m lit_gans.latents`` (kept apart so ``--help`` stays fast)."""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import v2
from tqdm import tqdm

from lit_gans.data.datamodule import resolve_workers
from lit_gans.data.images import read_image
from lit_gans.data.layouts import existing_root, find_domains, find_paired, find_unpaired
from lit_gans.errors import ConfigError, DataError
from lit_gans.latents.store import LatentSet, atomic_save, first_non_finite, load_latents, save_latents
from lit_gans.latents.vae import decode_latents, encode_images, load_vae, scaling_factor
from lit_gans.utils.safe_load import load_data

log = logging.getLogger("lit_gans.latents")
DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


@dataclass
class Entry:
    path: Path
    path_b: Path | None  # paired: the target file; None for side-by-side pairs and other layouts
    label: int
    split: int
    name: str


def detect_layout(root: Path) -> str:
    if (root / "trainA").is_dir():
        return "unpaired"
    if any((root / s / "A").is_dir() for s in ("", "train")):
        return "paired"
    return "domains"


def discover(root_arg: str, layout: str) -> tuple[str, list[str], list[Entry]]:
    """The files to encode, in a fixed order: train split first, then val/test."""
    root = existing_root(root_arg, "an image folder in the domains, unpaired or paired layout")
    layout = detect_layout(root) if layout == "auto" else layout
    entries: list[Entry] = []
    if layout == "domains":
        train = find_domains(root, "train")
        names = train.domain_names
        splits = [(0, train)]
        if (root / "val").is_dir():
            splits.append((1, find_domains(root, "val", domain_names=names)))
        for split, files in splits:
            entries += [Entry(p, None, y, split, str(p.relative_to(root))) for p, y in zip(files.paths, files.labels, strict=True)]
        return layout, names, entries
    if layout == "unpaired":
        for split, name in ((0, "train"), (1, "test")):
            if split == 1 and not (root / "testA").is_dir():
                continue
            files = find_unpaired(root, name)
            entries += [Entry(p, None, 0, split, str(p.relative_to(root))) for p in files.paths_a]
            entries += [Entry(p, None, 1, split, str(p.relative_to(root))) for p in files.paths_b]
        return layout, ["A", "B"], entries
    for split, name in ((0, "train"), (1, "val"), (1, "test")):
        try:
            files = find_paired(root, name)
        except DataError:
            if split == 0:
                raise
            continue
        pb = files.paths_b or [None] * len(files.paths_a)
        entries += [Entry(a, b, 0, split, str(a.relative_to(root))) for a, b in zip(files.paths_a, pb, strict=True)]
        if split == 1:
            break
    return "paired", ["A"], entries


class _Images(Dataset):
    """Entries to ``(3, size, size)`` float images in [-1, 1] (a pair for paired layouts)."""

    def __init__(self, entries: list[Entry], size: int, paired: bool):
        self.entries, self.paired = entries, paired
        self.tf = v2.Compose([v2.Resize(size, antialias=True), v2.CenterCrop(size),
                              v2.ToDtype(torch.float32, scale=True), v2.Normalize([0.5] * 3, [0.5] * 3)])

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor]:
        e = self.entries[i]
        img = read_image(e.path)
        if not self.paired:
            return self.tf(img), torch.zeros(0)
        if e.path_b is None:  # side-by-side A|B
            half = img.shape[-1] // 2
            return self.tf(img[..., :half]), self.tf(img[..., half: 2 * half])
        return self.tf(img), self.tf(read_image(e.path_b))


def _device(arg: str) -> torch.device:
    if arg == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(arg)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"--device {arg}: CUDA is not available here; use --device cpu or auto")
    return dev


def encode(args) -> None:
    out = Path(args.out).expanduser()
    layout, domain_names, entries = discover(args.images, args.layout)
    paired = layout == "paired"
    device = _device(args.device)
    dtype = DTYPES[args.dtype]
    store_dtype = DTYPES[args.store_dtype]
    signature = hashlib.sha256(json.dumps(
        [layout, [e.name for e in entries], args.vae, args.subfolder, args.size, args.sample, args.seed, args.dtype,
         args.store_dtype]).encode()).hexdigest()
    partial = out.with_name(out.name + ".partial")
    manifest = partial / "manifest.json"
    if partial.is_dir():
        try:
            same = json.loads(manifest.read_text()).get("signature") == signature
        except (OSError, ValueError):
            same = False
        if not same:
            log.warning("discarding %s: it belongs to an encoding with other inputs or settings", partial)
            shutil.rmtree(partial)
    partial.mkdir(parents=True, exist_ok=True)
    manifest.write_text(json.dumps({"signature": signature, "count": len(entries), "shard_size": args.shard_size}))

    shards = [entries[i: i + args.shard_size] for i in range(0, len(entries), args.shard_size)]
    done = [i for i in range(len(shards)) if (partial / f"shard_{i:05d}.pt").is_file()]
    todo = [i for i in range(len(shards)) if i not in done]
    if done:
        log.info("resuming: %d of %d shards already encoded in %s", len(done), len(shards), partial)
    vae = load_vae(args.vae, args.subfolder, device=device, dtype=dtype, download=args.download) if todo else None
    workers = resolve_workers(args.workers)
    with tqdm(total=len(entries), initial=sum(len(shards[i]) for i in done), unit="img", desc="encode") as bar:
        for i in todo:
            loader = DataLoader(_Images(shards[i], args.size, paired), batch_size=args.batch_size,
                                num_workers=workers, pin_memory=device.type == "cuda")
            gen = torch.Generator(device).manual_seed(args.seed * 100_003 + i) if args.sample else None
            parts_a, parts_b = [], []
            for a, b in loader:
                parts_a.append(encode_images(vae, a, sample=args.sample, generator=gen).to(store_dtype).cpu())
                if paired:
                    parts_b.append(encode_images(vae, b, sample=args.sample, generator=gen).to(store_dtype).cpu())
                bar.update(a.shape[0])
            shard = {"latents": torch.cat(parts_a)}
            if paired:
                shard["latents_b"] = torch.cat(parts_b)
            atomic_save(shard, partial / f"shard_{i:05d}.pt")

    pieces = [load_data(partial / f"shard_{i:05d}.pt", "encoding shard", f"delete {partial} to encode again")
              for i in range(len(shards))]
    data = LatentSet(
        latents=torch.cat([p["latents"] for p in pieces]),
        latents_b=torch.cat([p["latents_b"] for p in pieces]) if paired else None,
        labels=torch.tensor([e.label for e in entries]), split=torch.tensor([e.split for e in entries]),
        layout=layout, domain_names=domain_names, files=[e.name for e in entries], vae=args.vae,
        subfolder=args.subfolder, scaling_factor=scaling_factor(vae) if vae is not None else _factor_of(args),
        image_size=args.size, sample=args.sample,
    )
    save_latents(data, out)
    shutil.rmtree(partial)
    print(f"wrote {out}: {len(entries)} latents {tuple(data.latents.shape[1:])} ({layout}; "
          f"domains {', '.join(domain_names)}; scaling_factor {data.scaling_factor})")


def _factor_of(args) -> float:
    return scaling_factor(load_vae(args.vae, args.subfolder, download=getattr(args, "download", None)))


def decode(args) -> None:
    import torchvision

    data = load_latents(args.latents, check_finite=False)
    device = _device(args.device)
    vae = load_vae(args.vae, args.subfolder, device=device, download=args.download)
    out = Path(args.out).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    n = len(data.latents) if args.limit is None else min(args.limit, len(data.latents))
    for start in tqdm(range(0, n, args.batch_size), unit="batch", desc="decode"):
        stop = min(n, start + args.batch_size)
        images = decode_latents(vae, data.latents[start:stop].float()) * 0.5 + 0.5
        for k, img in enumerate(images.cpu()):
            i = start + k
            stem = Path(data.files[i]).stem if i < len(data.files) else "latent"
            torchvision.utils.save_image(img, out / f"{i:06d}_{stem}.png")
    print(f"wrote {n} images to {out}")


def info(path: str) -> int:
    """Print what a latent file holds; exit status 1 (and say where) when it has NaN/Inf values."""
    d = load_latents(path, check_finite=False)
    counts = torch.bincount(d.labels, minlength=len(d.domain_names)).tolist()
    print(f"{path}: {len(d.latents)} latents {tuple(d.latents.shape[1:])} {d.latents.dtype}, layout {d.layout}")
    print("domains: " + ", ".join(f"{n} ({c})" for n, c in zip(d.domain_names, counts, strict=True)))
    print(f"train {int((d.split == 0).sum())}, val/test {int((d.split == 1).sum())}; image size {d.image_size}; "
          f"vae {d.vae}{'/' + d.subfolder if d.subfolder else ''}; scaling_factor {d.scaling_factor}; "
          f"{'sampled' if d.sample else 'posterior mean'}")
    bad = {key: first_non_finite(t) for key, t in (("latents", d.latents), ("latents_b", d.latents_b)) if t is not None}
    bad = {k: v for k, v in bad.items() if v is not None}
    if bad:
        where = ", ".join(f"{k}[{v}]" for k, v in bad.items())
        print(f"unhealthy: NaN or Inf values (first at {where}): training on this file stops with an error; "
              "re-encode those images (in float32 if they were encoded in float16)")
        return 1
    print("healthy: all values finite")
    return 0

"""Throughput of the ``data=domains`` loader: ``python -m lit_gans.bench.loader --root DIR --workers 2``.

Counts decoded images per second (each StarGAN v2 item decodes a source and one or two references) over
whole batches as the training loop receives them. ``--make N`` first writes N 256 px JPEG files per domain
into ``--root`` (smooth colour fields with noise, about the size of AFHQ files) when it has none.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch


def make_jpegs(root: Path, per_domain: int, size: int = 256, domains: int = 2, seed: int = 0) -> None:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    for d in range(domains):
        folder = root / f"domain{d}"
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_domain):
            a, b, c = rng.uniform(0, 6, 3)
            base = np.stack([np.sin(a * xx + b * yy + k * c) for k in range(3)], -1) * 80 + 128
            img = np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)
            Image.fromarray(img).save(folder / f"{i:05d}.jpg", quality=90)


def measure(root: str, workers: int = 2, batch_size: int = 8, img_size: int = 256, seconds: float = 10.0,
            with_ref2: bool = True) -> dict[str, float]:
    from lit_gans.data.domains import DomainsDataModule

    dm = DomainsDataModule(root, img_size=img_size, num_workers=workers, batch_size=batch_size, with_ref2=with_ref2,
                           verify=False)
    dm.setup()
    loader = dm.train_dataloader()
    per_item = 3 if with_ref2 else 2
    it = iter(loader)
    next(it)  # start the workers
    items, start, epoch = 0, time.perf_counter(), 1
    while time.perf_counter() - start < seconds:
        try:
            batch = next(it)
        except StopIteration:
            loader.sampler.set_epoch(epoch)
            epoch += 1
            it = iter(loader)
            continue
        items += batch["x_src"].shape[0]
    elapsed = time.perf_counter() - start
    return {"items_per_s": items / elapsed, "images_per_s": items * per_item / elapsed, "workers": workers,
            "batch_size": batch_size, "img_size": img_size, "seconds": elapsed, "torch_threads": torch.get_num_threads()}


def measure_latents(path: str, batch_size: int = 32, seconds: float = 5.0) -> dict[str, float]:
    """Items per second of ``data=latents`` (in-memory, main process) as the training loop receives them."""
    from lit_gans.data.latents import LatentDataModule

    dm = LatentDataModule(path, batch_size=batch_size)
    dm.setup()
    loader = dm.train_dataloader()
    items, start, epoch = 0, time.perf_counter(), 0
    while time.perf_counter() - start < seconds:
        loader.sampler.set_epoch(epoch)
        epoch += 1
        for batch in loader:
            items += batch["x_src"].shape[0]
            if time.perf_counter() - start >= seconds:
                break
    elapsed = time.perf_counter() - start
    return {"items_per_s": items / elapsed, "batch_size": batch_size, "seconds": elapsed}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m lit_gans.bench.loader", description=__doc__)
    p.add_argument("--root", default=None, help="a domains image folder")
    p.add_argument("--latents", default=None, help="a latent file (measures data=latents instead)")
    p.add_argument("--make", type=int, default=0, help="write this many 256 px JPEGs per domain first (if empty)")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--img-size", type=int, default=256)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--no-ref2", action="store_true", help="items without the second reference")
    p.add_argument("--json", default=None, help="also write the result here")
    a = p.parse_args(argv)
    if a.latents:
        r = measure_latents(a.latents, a.batch_size, a.seconds)
        print(f"latents loader: {r['items_per_s']:.0f} items/s, batch {a.batch_size}, main process")
        return
    if not a.root:
        p.error("--root or --latents is required")
    root = Path(a.root)
    if a.make and not any(root.rglob("*.jpg")):
        make_jpegs(root, a.make, a.img_size)
    r = measure(str(root), a.workers, a.batch_size, a.img_size, a.seconds, with_ref2=not a.no_ref2)
    print(f"domains loader: {r['images_per_s']:.0f} images/s ({r['items_per_s']:.0f} items/s), "
          f"{a.workers} workers, batch {a.batch_size}, {a.img_size} px")
    if a.json:
        Path(a.json).write_text(json.dumps(r, indent=2))


if __name__ == "__main__":
    main()

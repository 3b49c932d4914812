"""A small real multi-domain image set with no download: random crops of the colour photographs that scikit-image
ships inside its package (``skimage.data``), one domain per photograph.

    python scripts/photo_crops.py data/photo_crops            # needs scikit-image: pip install -e '.[photos]'
    python train.py experiment=stargan_small_data              # reads data/photo_crops

Writes ``OUT/train/<domain>/*.png`` (``--per-domain`` crops each) and ``OUT/val/<domain>/*.png`` (``--val`` each,
from other random crops), ``--size`` pixels square. A crop's side is drawn between ``--min-frac`` and the photo's
shorter side, at a random position, flipped half of the time, then resized (antialiased): the domain is which
photograph the crop comes from (its subject, palette and textures), the style what a crop shows of it (colours,
scale, texture), the content its layout. The same seed writes the same files.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image

DOMAINS = {"cat": "chelsea", "coffee": "coffee", "astronaut": "astronaut"}  # domain name: skimage.data loader


def crops(photo: np.ndarray, n: int, size: int, min_frac: float, rng: np.random.Generator) -> list[Image.Image]:
    img = Image.fromarray(photo[..., :3])
    h, w = photo.shape[:2]
    short = min(h, w)
    out = []
    for _ in range(n):
        side = int(rng.uniform(min_frac, 1.0) * short)
        top, left = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
        crop = img.crop((left, top, left + side, top + side)).resize((size, size), Image.Resampling.LANCZOS)
        out.append(crop.transpose(Image.Transpose.FLIP_LEFT_RIGHT) if rng.random() < 0.5 else crop)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("out", help="output folder (train/ and val/ inside)")
    p.add_argument("--per-domain", type=int, default=300)
    p.add_argument("--val", type=int, default=16)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--min-frac", type=float, default=0.35, help="smallest crop side, as a fraction of the photo's")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    try:
        from skimage import data
    except ImportError:
        print("error: scikit-image is needed for its bundled photographs: pip install -e '.[photos]'", file=sys.stderr)
        return 2
    rng = np.random.default_rng(args.seed)
    for name, loader in DOMAINS.items():
        photo = getattr(data, loader)()
        for split, n in (("train", args.per_domain), ("val", args.val)):
            folder = Path(args.out) / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i, crop in enumerate(crops(photo, n, args.size, args.min_frac, rng)):
                crop.save(folder / f"{name}_{i:04d}.png")
    print(f"{args.out}: {len(DOMAINS)} domains ({', '.join(DOMAINS)}), {args.per_domain} training and {args.val} "
          f"validation crops each, {args.size} px")
    return 0


if __name__ == "__main__":
    sys.exit(main())

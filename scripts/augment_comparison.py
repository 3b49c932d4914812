"""Discriminator augmentation compared on a small real multi-domain dataset, judged by the judge.

Data: scikit-learn's bundled handwritten digits (``sklearn.datasets.load_digits``: 1,797 real 8x8 grey scans
from the UCI "Optical Recognition of Handwritten Digits" set, shipped inside the scikit-learn wheel, no
download). Domains are the digit classes given by ``--digits`` (default 0, 1, 7: about 180 images each); each
image is scaled to ``--size`` px (nearest, then grey -> RGB) and written once as PNG folders
``<out>/data/{train,val}/<digit>/`` (val: 15 per class), which ``data=domains`` reads like any user's folders.

For every ``aug`` x ``seed``: ``python train.py model=stargan data=domains ...`` with the same network sizes,
batch size and number of epochs (the same CPU budget per run), then ``python -m lit_gans.evaluate`` of its
``last.ckpt`` (the judge only: no Inception weights needed). Writes ``results.json`` and a markdown table of mean
and standard deviation over seeds (``table.md``) into ``--out``.

    pip install -e '.[eval]'     # scikit-learn
    python scripts/augment_comparison.py --out outputs/augment_comparison --epochs 30 --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
AUGS = ("none", "diffaugment", "ada", "apa")


def write_digits(folder: str, digits: list[int], size: int, val_per_class: int = 15) -> dict[str, int]:
    """PNG folders of the chosen digit classes; returns the number of training images per class."""
    import numpy as np
    from PIL import Image
    from sklearn.datasets import load_digits

    data = load_digits()
    counts = {}
    for d in digits:
        images = data.images[data.target == d]  # (N, 8, 8) in 0..16
        for i, img in enumerate(images):
            split = "val" if i < val_per_class else "train"
            path = os.path.join(folder, split, str(d))
            os.makedirs(path, exist_ok=True)
            arr = (255 - img / 16.0 * 255).round().astype(np.uint8)  # dark ink on white, as scanned
            Image.fromarray(arr).resize((size, size), Image.NEAREST).convert("RGB").save(os.path.join(path, f"{i:04d}.png"))
        counts[str(d)] = len(images) - val_per_class
    return counts


def sd(values: list[float]) -> float:
    return statistics.stdev(values) if len(values) > 1 else 0.0


def run(cmd: list[str], log: str) -> float:
    started = time.monotonic()
    with open(log, "w") as f:
        p = subprocess.run(cmd, cwd=ROOT, stdout=f, stderr=subprocess.STDOUT)
    if p.returncode != 0:
        raise SystemExit(f"error: {' '.join(cmd)} failed (rc {p.returncode}): see {log}")
    return time.monotonic() - started


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="outputs/augment_comparison")
    ap.add_argument("--digits", type=int, nargs="+", default=[0, 1, 7])
    ap.add_argument("--size", type=int, default=16)
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--augs", nargs="+", default=list(AUGS))
    args = ap.parse_args(argv)
    out = os.path.abspath(args.out)
    data = os.path.join(out, "data")
    counts = write_digits(data, args.digits, args.size) if not os.path.isdir(data) else None
    common = ["model=stargan", "data=domains", f"data.root={data}", f"model.img_size={args.size}", "model.dim=16",
              "model.max_conv_dim=64", "model.mapping_dim=64", "model.style_dim=16", "model.latent_dim=8",
              "model.optimizer.lr=1e-3", "model.mapping_lr=1e-5", "data.batch_size=16", "data.num_workers=0",
              f"trainer.max_epochs={args.epochs}", "trainer.limit_val_batches=0", "trainer.enable_progress_bar=false",
              "callbacks.judge.every_n_epochs=0", "callbacks.judge.at_end=false", "callbacks.image_grid.every_n_epochs=0",
              "callbacks.model_checkpoint.every_n_epochs=1000"]
    results = []
    for aug in args.augs:
        for seed in args.seeds:
            run_dir = os.path.join(out, "runs", f"{aug}_seed{seed}")
            train_s = run([sys.executable, "train.py", *common, f"aug={aug}", f"seed={seed}",
                           f"hydra.run.dir={run_dir}"], os.path.join(out, f"train_{aug}_{seed}.log"))
            report = os.path.join(run_dir, "judge.json")
            run([sys.executable, "-m", "lit_gans.evaluate", f"ckpt={run_dir}/checkpoints/last.ckpt", "data=domains",
                 f"data.root={data}", "metrics.num_styles=4", "progress=false", f"output={report}",
                 f"hydra.run.dir={run_dir}/evaluate"], os.path.join(out, f"eval_{aug}_{seed}.log"))
            judge = json.load(open(report))["metrics"]["judge"]
            results.append({"aug": aug, "seed": seed, "train_s": round(train_s, 1), **{
                k: judge[k] for k in ("judge_accuracy", "judge_fd", "judge_real_accuracy")}})
            print(json.dumps(results[-1]), flush=True)
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump({"digits": args.digits, "size": args.size, "epochs": args.epochs, "train_counts": counts,
                   "overrides": common, "runs": results}, f, indent=2)
    lines = ["| aug | judge_accuracy (mean ± sd) | judge_fd (mean ± sd) | train s / run |", "|---|---|---|---|"]
    for aug in args.augs:
        rows = [r for r in results if r["aug"] == aug]
        acc, fd = [r["judge_accuracy"] for r in rows], [r["judge_fd"] for r in rows]
        lines.append(f"| `{aug}` | {statistics.mean(acc):.3f} ± {sd(acc):.3f} | {statistics.mean(fd):.2f} ± {sd(fd):.2f} "
                     f"| {statistics.mean(r['train_s'] for r in rows):.0f} |")
    table = "\n".join(lines)
    open(os.path.join(out, "table.md"), "w").write(table + "\n")
    print(table)


if __name__ == "__main__":
    main()

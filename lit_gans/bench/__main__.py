"""Training throughput: ``python -m lit_gans.bench model=<m> [Hydra overrides] [--steps N] [--warmup N]
[--compare-plain] [--out FILE]``.

Composes the same config as ``train.py`` (so any model/data/net/precision/batch override works), then trains
``--steps`` batches after ``--warmup`` on synthetic batches already on the device (built once from the
configured data module), and reports images/s, s/step, peak memory, FLOPs per step counted with
``torch.utils.flop_counter`` and the achieved TFLOP/s, and the share of wall time spent outside the
training step (data fetching and Lightning's per-batch work). ``--compare-plain`` also times a plain
PyTorch loop that runs the very same ``training_step`` without the Trainer. Results go to a JSON file.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile

from lit_gans.bench.runner import run_benchmark


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="python -m lit_gans.bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=20, help="timed batches")
    parser.add_argument("--warmup", type=int, default=3, help="untimed batches first (compilation, autotuning)")
    parser.add_argument("--compare-plain", action="store_true", help="also time a plain loop without the Trainer")
    parser.add_argument("--out", default="bench.json", help="JSON results file")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. model=stargan_latent data.batch_size=32")
    args = parser.parse_args(argv)
    from lit_gans.cli import user_errors

    with user_errors(), tempfile.TemporaryDirectory(prefix="lit_gans_bench_") as tmp:
        result = run_benchmark(args.overrides, steps=args.steps, warmup=args.warmup,
                               compare_plain=args.compare_plain, output_dir=tmp)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=2)
    print(format_result(result))
    print(f"results: {args.out}")
    return 0


def format_result(r: dict) -> str:
    lines = [
        f"{r['model']} on {r['device']} ({r['precision']}, batch {r['batch_size']}, torch {r['torch']}):",
        f"  lightning: {r['img_per_s']:.1f} img/s, {r['s_per_step'] * 1e3:.1f} ms/step, "
        f"{r['achieved_tflops']:.3f} TFLOP/s ({r['tflop_per_step']:.4f} TFLOP/step), peak memory {r['peak_memory_gb']:.2f} GB, "
        f"{100 * r['outside_step_share']:.1f}% of the time outside the training step",
    ]
    if r.get("compile_s") is not None:
        lines.append(f"  warm-up (incl. torch.compile): {r['compile_s']:.1f} s")
    if "plain" in r:
        p = r["plain"]
        lines.append(f"  plain loop: {p['img_per_s']:.1f} img/s, {p['s_per_step'] * 1e3:.1f} ms/step (timed before and "
                     f"after: {p['s_per_step_before'] * 1e3:.1f}, {p['s_per_step_after'] * 1e3:.1f}); "
                     f"Lightning overhead {r['lightning_overhead_pct']:+.1f}%")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())

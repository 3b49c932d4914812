"""``python -m lit_gans.curves RUN_DIR... [--out DIR] [--explain] [--html] [--tags PATTERN...] [--band minmax]``

RUN_DIR: a training output directory (the TensorBoard logs are found anywhere below it, so a multirun
directory compares all its jobs), or a log directory itself. Several RUN_DIRs are overlaid in every plot.
Writes one PNG per curve group (D.png, G.png ...) to --out (default: RUN_DIR/curves for one run, ./curves for
several); --html adds index.html; --explain prints what each curve means and patterns worth a look.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from lit_gans.cli import user_errors


def main(argv: list[str] | None = None) -> int:
    from lit_gans.curves.plotting import BANDS

    parser = argparse.ArgumentParser(prog="python -m lit_gans.curves", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", metavar="RUN_DIR", help="run or log directories")
    parser.add_argument("--out", default=None, help="folder for the PNGs (and index.html)")
    parser.add_argument("--explain", action="store_true", help="print what each curve is and flag patterns")
    parser.add_argument("--html", action="store_true", help="also write index.html showing every plot")
    parser.add_argument("--tags", nargs="+", default=None, metavar="PATTERN",
                        help="only these curves: groups (D), names (d_loss, 'G/*'), shell patterns")
    parser.add_argument("--band", choices=tuple(BANDS), default="minmax",
                        help="spread of the per-step values shown around each epoch mean")
    args = parser.parse_args(argv)
    with user_errors():
        from lit_gans.curves.reading import load_runs, select
        from lit_gans.curves.report import explain_runs, plot_runs
        from lit_gans.errors import DataError

        runs = load_runs(args.runs)
        if args.tags and not any(select(r.curves.values(), args.tags) for r in runs):
            names = sorted({c.name for r in runs for c in r.curves.values()})
            raise DataError(f"no curve matches --tags {' '.join(args.tags)}; the runs have: {', '.join(names)}")
        out = Path(args.out) if args.out else (Path(args.runs[0]) / "curves" if len(args.runs) == 1 else Path("curves"))
        text = explain_runs(runs, args.tags) if args.explain else ""
        images = plot_runs(runs, out, tags=args.tags, band=args.band, html=args.html, explanations=text)
        if text:
            print(text)
            print()
        for r in runs:
            print(f"read {r.label}: {len(r.curves)} curves from {r.source} ({r.log_dir})")
        print(f"wrote {len(images)} plots to {out}: {', '.join(p.name for p in images.values())}"
              + (", index.html" if args.html else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Plots of past runs: one PNG per curve group (``D``, ``G`` ...), one panel per curve, runs overlaid.

Each panel shows the epoch means as a line and, where per-step values were logged, their per-epoch spread
as a band (min-max by default). Matplotlib's object API without pyplot: figures are rendered by the Agg
canvas whatever the session's backend (a notebook's inline backend stays as it is), and no display is needed.
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Sequence
from pathlib import Path

from lit_gans.curves.explain import curve_order
from lit_gans.curves.reading import Curve, Run

BANDS = {"minmax": (0.0, 1.0), "iqr": (0.25, 0.75), "p10": (0.1, 0.9), "none": None}


def file_stem(group: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", group) or "other"


def groups(runs: Sequence[Run], curves_of: dict[str, list[Curve]]) -> dict[str, list[str]]:
    """``{group: [curve names]}`` over all runs, in first-seen order, from ``{run label: selected curves}``."""
    out: dict[str, list[str]] = {}
    for r in runs:
        for c in curves_of[r.label]:
            names = out.setdefault(c.group, [])
            if c.name not in names:
                names.append(c.name)
    return {g: sorted(names, key=curve_order) for g, names in out.items()}


def plot_group(group: str, names: Sequence[str], runs: Sequence[Run], out: Path, band: str = "minmax",
               dpi: int = 100, ncols: int = 3) -> Path:
    """Write ``<out>/<group>.png``: one panel per curve name, every run that has it overlaid."""
    import matplotlib
    from matplotlib.figure import Figure

    ncols = min(ncols, len(names))
    nrows = math.ceil(len(names) / ncols)
    fig = Figure(figsize=(4.2 * ncols, 2.9 * nrows))
    axes = fig.subplots(nrows, ncols, squeeze=False)
    colors = matplotlib.rcParams["axes.prop_cycle"].by_key()["color"]
    q = BANDS[band]
    for ax, name in zip(axes.flat, names, strict=False):
        for i, run in enumerate(runs):
            c = run.curves.get(name)
            if c is None:
                continue
            color = colors[i % len(colors)]
            if q is not None and c.values.size:
                e, lo, hi = c.band(*q)
                if e.size > 1:
                    ax.fill_between(e, lo, hi, color=color, alpha=0.2, linewidth=0)
                elif e.size == 1:
                    ax.vlines(e, lo, hi, color=color, alpha=0.4, linewidth=6)
            ax.plot(c.epochs, c.means, color=color, marker="o" if c.epochs.size < 30 else None, markersize=3,
                    linewidth=1.5, label=run.label)
        ax.set_title(name.split("/", 1)[-1], fontsize=10)
        ax.set_xlabel("epoch", fontsize=8)
        ax.tick_params(labelsize=8)
        ax.grid(alpha=0.3)
        ax.xaxis.get_major_locator().set_params(integer=True)
    for ax in list(axes.flat)[len(names):]:
        ax.set_visible(False)
    spread = {"minmax": "min-max", "iqr": "25-75 %", "p10": "10-90 %"}.get(band)
    title = f"{group}: epoch means" + (f", band: per-step {spread} within each epoch" if spread else "")
    fig.suptitle(title, fontsize=10)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    if len(runs) > 1 or labels:
        fig.legend(handles, labels, loc="lower center", ncol=min(4, len(labels)), fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.06 if labels else 0, 1, 0.95))
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{file_stem(group)}.png"
    fig.savefig(path, dpi=dpi)
    return path


def write_html(out: Path, images: dict[str, Path], runs: Sequence[Run], explanations: str = "") -> Path:
    """``<out>/index.html``: the runs, every group's plot (relative links) and the explanations, if any."""
    parts = ["<!doctype html><meta charset='utf-8'><title>lit_gans curves</title>",
             "<style>body{font-family:sans-serif;max-width:1300px;margin:auto}img{max-width:100%}"
             "pre{white-space:pre-wrap;background:#f6f6f6;padding:1em}</style>",
             "<h1>Curves</h1><ul>"]
    parts += [f"<li>{html.escape(r.label)}: {html.escape(str(r.log_dir))} ({r.source})</li>" for r in runs]
    parts.append("</ul>")
    for group, path in images.items():
        parts.append(f"<h2>{html.escape(group)}</h2><img src='{html.escape(path.name)}' alt='{html.escape(group)}'>")
    if explanations:
        parts.append(f"<h2>How to read them</h2><pre>{html.escape(explanations)}</pre>")
    path = out / "index.html"
    path.write_text("\n".join(parts) + "\n", encoding="utf-8")
    return path

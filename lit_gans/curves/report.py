"""What the command does with loaded runs: plots per group, and the explanation text with findings."""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from pathlib import Path

from lit_gans.curves.explain import EPOCH_MEAN, curve_order, explain_curve, is_diffusion, run_settings
from lit_gans.curves.plotting import groups, plot_group, write_html
from lit_gans.curves.reading import Curve, Run, select
from lit_gans.curves.rules import RULES, check_run


def plot_runs(runs: Sequence[Run], out: str | Path, tags: Sequence[str] | None = None, band: str = "minmax",
              html: bool = False, explanations: str = "") -> dict[str, Path]:
    """Write one PNG per curve group of ``runs`` under ``out`` (and ``index.html`` with ``html``):
    ``{group: png path}``. ``tags`` selects curves (see :func:`~lit_gans.curves.reading.select`)."""
    out = Path(out)
    chosen = {r.label: select(r.curves.values(), tags) for r in runs}
    images = {g: plot_group(g, names, runs, out, band=band) for g, names in groups(runs, chosen).items()}
    if html:
        write_html(out, images, runs, explanations)
    return images


def _summary(c: Curve) -> str:
    if not c.epochs.size:
        return "no epoch mean"
    first, last = c.means[0], c.means[-1]
    if c.epochs.size == 1:
        return f"{first:.4g} (epoch {c.epochs[0]})"
    return f"{first:.4g} (epoch {c.epochs[0]}) -> {last:.4g} (epoch {c.epochs[-1]})"


def explain_runs(runs: Sequence[Run], tags: Sequence[str] | None = None, width: int = 100) -> str:
    """For each curve present (once over all runs): what it is and how to read it, with each run's first and
    last epoch mean; then each run's findings from :data:`~lit_gans.curves.rules.RULES`."""
    wrap = textwrap.TextWrapper(width=width, initial_indent="    ", subsequent_indent="    ")
    lines = [EPOCH_MEAN, ""]
    for r in runs:
        settings = run_settings(r)
        lines.append(f"run {r.label} ({r.source}: {r.log_dir})" + (f"\n    settings: {settings}" if settings else ""))
    lines.append("")
    seen: dict[str, Curve] = {}
    for r in runs:
        for c in select(r.curves.values(), tags):
            seen.setdefault(c.name, c)
    diffusion = any(is_diffusion(r) for r in runs)
    for name, c in sorted(seen.items(), key=lambda kv: curve_order(kv[0])):
        e = explain_curve(c.short, c.group, diffusion=diffusion)
        lines.append(f"{name} [{e.kind}]")
        lines += wrap.wrap(e.what) + wrap.wrap("How to read: " + e.read)
        for r in runs:
            rc = r.curves.get(name)
            if rc is not None:
                lines.append(f"    {r.label}: {_summary(rc)}")
        lines.append("")
    findings = [f for r in runs for f in check_run(r, RULES)]
    lines.append(f"Patterns worth a look ({len(RULES)} rules checked): " + ("none found" if not findings else ""))
    lines += [f"  {f}" for f in findings]
    return "\n".join(lines)

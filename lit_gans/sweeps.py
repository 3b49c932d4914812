"""The table a ``-m`` sweep ends with: one line per job with its overrides, its ``optimized_metric`` (or the epoch
means of the totals) and its folder. Read from the jobs' folders (``.hydra/overrides.yaml`` and the
``final_metrics.json`` that ``lit_gans.train`` writes), so it works with any launcher, SLURM's included."""

from __future__ import annotations

import json
import os
from typing import Any

import yaml
from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from lit_gans.cli import RUN_KEYS, _key

TOTALS = ("D/d_loss_epoch", "G/g_loss_epoch", "G/G_tot_epoch", "D/D_tot_epoch")


def sweep_rows(sweep_dir: str, metric: str | None = None) -> list[dict[str, Any]]:
    """One row per job folder of ``sweep_dir`` that has a Hydra record: job, overrides, value(s), folder."""
    rows = []
    if not os.path.isdir(sweep_dir):
        return rows
    for name in sorted(os.listdir(sweep_dir), key=lambda n: (len(n.split("_")[0]), n)):
        job = os.path.join(sweep_dir, name)
        record = os.path.join(job, ".hydra", "overrides.yaml")
        if not os.path.isfile(record):
            continue
        with open(record, encoding="utf-8") as f:
            overrides = [o for o in (yaml.safe_load(f) or []) if _key(str(o)) not in RUN_KEYS]
        final = os.path.join(job, "final_metrics.json")
        metrics = json.load(open(final, encoding="utf-8")) if os.path.isfile(final) else None
        if metrics is None:
            values = "did not finish"
        elif metric:
            value = metrics.get(metric)
            values = f"{metric} {value:.6g}" if isinstance(value, float) else f"{metric} not logged"
        else:
            values = ", ".join(f"{k.removesuffix('_epoch')} {metrics[k]:.4g}" for k in TOTALS
                               if isinstance(metrics.get(k), float)) or "no totals"
        rows.append({"job": name.split("_")[0], "overrides": " ".join(map(str, overrides)), "result": values,
                     "dir": job})
    return rows


def format_table(rows: list[dict[str, Any]]) -> str:
    """The rows as aligned columns; overrides that every job shares are said once, above the table."""
    if not rows:
        return "sweep: no job folder found"
    split = [r["overrides"].split(" ") for r in rows]
    common = [o for o in split[0] if all(o in s for s in split[1:])] if len(rows) > 1 else []
    rows = [{**r, "overrides": " ".join(o for o in s if o not in common) or "-"} for r, s in zip(rows, split, strict=True)]
    cols = ("job", "overrides", "result", "dir")
    widths = {c: max(len(c), *(len(str(r[c])) for r in rows)) for c in cols}
    lines = [f"sweep of {len(rows)} jobs" + (f" (all with {' '.join(common)})" if common else ""),
             "  ".join(c.ljust(widths[c]) for c in cols)]
    lines += ["  ".join(str(r[c]).ljust(widths[c]) for c in cols) for r in rows]
    return "\n".join(lines)


class SweepTable(Callback):
    """Hydra callback (``hydra.callbacks.sweep_table``): prints :func:`format_table` at the end of a multirun."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        metric = config.get("optimized_metric")
        print(format_table(sweep_rows(str(config.hydra.sweep.dir), metric)), flush=True)

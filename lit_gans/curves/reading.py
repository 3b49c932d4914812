"""Finding and reading the loss logs of past runs: TensorBoard event files, or ``loss_history.jsonl``.

The project's :class:`~lit_gans.callbacks.LossLogger` writes each curve ``<tag>/<name>`` twice: the value of
every logged batch as ``<tag>/<name>_step`` and the epoch mean as ``<tag>/<name>_epoch`` (logged at the
epoch's last batch); Lightning adds an ``epoch`` scalar (0-based) at every logging step. The history file holds
the epoch means only. A :class:`Curve` joins both views: epoch means, and the per-step values of each epoch.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lit_gans.errors import DataError

log = logging.getLogger(__name__)
HISTORY_FILE = "loss_history.jsonl"
EVENTS_PREFIX = "events.out.tfevents."
# Scalars that Lightning or TensorBoard log besides the curves.
NOT_CURVES = {"epoch", "hp_metric"}
# Groups of scalars derived from the curves (the per-epoch min/max band of LossLogger's ``spread``).
NOT_CURVE_GROUPS = ("spread/",)


@dataclass
class Curve:
    """One logged quantity of one run, e.g. ``D/d_loss``.

    ``epochs`` (1-based) and ``means`` are the epoch means; ``step_epochs``, ``steps`` and ``values`` are the
    per-step values (every ``log_every_n_steps`` batches; empty when only the history file was read). Non-finite
    values are kept as NaN/Inf so that rules can see them.
    """

    name: str
    epochs: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    means: np.ndarray = field(default_factory=lambda: np.zeros(0))
    steps: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    step_epochs: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    values: np.ndarray = field(default_factory=lambda: np.zeros(0))

    @property
    def group(self) -> str:
        """The TensorBoard group: the part before the first ``/`` (``D``, ``G``, ``f_s``), else ``other``."""
        return self.name.split("/", 1)[0] if "/" in self.name else "other"

    @property
    def short(self) -> str:
        """The name without its group: ``d_loss`` for ``D/d_loss``."""
        return self.name.split("/", 1)[1] if "/" in self.name else self.name

    def band(self, low: float = 0.0, high: float = 1.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per-epoch quantiles ``low``/``high`` of the finite step values: ``(epochs, lo, hi)`` (0 and 1: min/max)."""
        epochs, lo, hi = [], [], []
        for e in np.unique(self.step_epochs):
            v = self.values[(self.step_epochs == e) & np.isfinite(self.values)]
            if v.size:
                epochs.append(e)
                lo.append(np.quantile(v, low))
                hi.append(np.quantile(v, high))
        return np.asarray(epochs, dtype=np.int64), np.asarray(lo), np.asarray(hi)


@dataclass
class Run:
    """The curves of one run (one log directory). ``config`` is the run's composed Hydra config when found
    (``.hydra/config.yaml`` above the logs), ``source`` is ``tensorboard`` or ``history``."""

    label: str
    log_dir: Path
    source: str
    curves: dict[str, Curve]
    config: dict[str, Any] = field(default_factory=dict)

    def find(self, *short_names: str) -> Curve | None:
        """The first curve whose name (without group) is one of ``short_names``, in that order of preference."""
        for s in short_names:
            for c in self.curves.values():
                if c.short == s:
                    return c
        return None

    def loss_option(self, key: str, default: Any = None) -> Any:
        loss = self.config.get("loss") if isinstance(self.config, dict) else None
        return loss.get(key, default) if isinstance(loss, dict) else default


def find_log_dirs(root: Path) -> list[tuple[Path, str]]:
    """Directories under ``root`` (itself included) holding TensorBoard event files, else a history file:
    ``[(dir, "tensorboard" | "history")]``, sorted. A directory with both is read from its event files."""
    found: dict[Path, str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in {"checkpoints", "samples", "__pycache__"})
        if any(f.startswith(EVENTS_PREFIX) for f in filenames):
            found[Path(dirpath)] = "tensorboard"
        elif HISTORY_FILE in filenames:
            found[Path(dirpath)] = "history"
    return sorted(found.items())


def load_runs(paths: Sequence[str | os.PathLike]) -> list[Run]:
    """Read every run below each of ``paths`` (a Hydra output dir, a multirun dir, a TensorBoard log dir...).

    Raises:
        DataError: a path that does not exist or holds no logs, or logs without any scalar.
    """
    runs: list[Run] = []
    for p in paths:
        root = Path(p)
        if not root.exists():
            raise DataError(f"{root} does not exist: give a run directory (e.g. outputs/<date>/<time>)")
        if not root.is_dir():
            raise DataError(f"{root} is not a directory: give the run's directory, not a file in it")
        dirs = find_log_dirs(root)
        if not dirs:
            raise DataError(f"no TensorBoard event files ({EVENTS_PREFIX}*) or {HISTORY_FILE} under {root}: "
                            "is it a training output directory?")
        for log_dir, source in dirs:
            curves = read_events(log_dir) if source == "tensorboard" else read_history(log_dir / HISTORY_FILE)
            if not curves:
                raise DataError(f"the logs in {log_dir} hold no scalar curve (did the run train a single step?)")
            runs.append(Run(label=_label(root, log_dir), log_dir=log_dir, source=source, curves=curves,
                            config=read_run_config(log_dir, root)))
    _unique_labels(runs)
    return runs


def _label(root: Path, log_dir: Path) -> str:
    """A run's name in legends: the given directory's name, plus the path below it when that is not the
    usual ``tensorboard`` folder (a multirun's job number, a logger version)."""
    rel = log_dir.relative_to(root)
    parts = [q for q in rel.parts if q not in {"tensorboard", "lightning_logs"}]
    name = root.resolve().name or str(root)
    return "/".join([name, *parts])


def _unique_labels(runs: list[Run]) -> None:
    seen: dict[str, int] = {}
    for r in runs:
        n = seen.get(r.label, 0)
        seen[r.label] = n + 1
        if n:
            r.label = f"{r.label} ({n + 1})"


def read_run_config(log_dir: Path, root: Path) -> dict[str, Any]:
    """The run's Hydra config (``.hydra/config.yaml`` in the log dir or a parent up to ``root``), unresolved,
    as plain containers; ``{}`` when there is none or it cannot be read."""
    from omegaconf import OmegaConf

    root = root.resolve()
    d = log_dir.resolve()
    while True:
        f = d / ".hydra" / "config.yaml"
        if f.is_file():
            try:
                cfg = OmegaConf.to_container(OmegaConf.load(f), resolve=False)
            except Exception:  # a damaged or foreign file: explanations just lose the run's settings
                return {}
            return cfg if isinstance(cfg, dict) else {}
        if d == root or d.parent == d:
            return {}
        d = d.parent


def read_events(log_dir: Path) -> dict[str, Curve]:
    """The curves of the event files in ``log_dir`` (all of them: a resumed run appends files; TensorBoard's
    reader drops the steps a restart rewrote)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(log_dir), size_guidance={"scalars": 0})
    acc.Reload()
    series = {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags().get("scalars", [])}
    return curves_from_series(series)


def curves_from_series(series: dict[str, list[tuple[int, float]]]) -> dict[str, Curve]:
    """Build curves from scalar series ``{tag: [(step, value)]}`` with the LossLogger's ``_step``/``_epoch``
    suffixes. Tags without a suffix count as per-step values. Steps are batches; epoch-mean values sit at
    their epoch's last step, so a step value belongs to the first epoch whose mean is logged at or after it."""
    epoch_tag = dict(sorted(series.get("epoch", [])))
    means: dict[str, list[tuple[int, float]]] = {}
    per_step: dict[str, list[tuple[int, float]]] = {}
    for tag, pts in series.items():
        if tag in NOT_CURVES or tag.startswith(NOT_CURVE_GROUPS):
            continue
        if tag.endswith("_epoch"):
            means[tag[: -len("_epoch")]] = sorted(pts)
        elif tag.endswith("_step"):
            per_step[tag[: -len("_step")]] = sorted(pts)
        else:
            per_step[tag] = sorted(pts)
    # Epoch boundaries: the steps at which epoch means were logged (any curve's; they are logged together).
    ends = sorted({s for pts in means.values() for s, _ in pts})

    def epoch_of_mean(step: int, index: int) -> int:
        return int(epoch_tag[step]) + 1 if step in epoch_tag else index + 1

    def epoch_of_step(step: int) -> int:
        if step in epoch_tag:
            return int(epoch_tag[step]) + 1
        i = int(np.searchsorted(ends, step, side="left"))
        return epoch_of_mean(ends[i], i) if i < len(ends) else (epoch_of_mean(ends[-1], len(ends) - 1) + 1 if ends else 1)

    curves: dict[str, Curve] = {}
    for name in sorted(set(means) | set(per_step)):
        c = Curve(name)
        if name in per_step:
            c.steps = np.asarray([s for s, _ in per_step[name]], dtype=np.int64)
            c.values = np.asarray([v for _, v in per_step[name]], dtype=np.float64)
            c.step_epochs = np.asarray([epoch_of_step(s) for s in c.steps], dtype=np.int64)
        if name in means:
            c.epochs = np.asarray([epoch_of_mean(s, i) for i, (s, _) in enumerate(means[name])], dtype=np.int64)
            c.means = np.asarray([v for _, v in means[name]], dtype=np.float64)
        else:  # only per-step values: their plain mean per epoch, as the LossLogger computes it
            c.epochs = np.unique(c.step_epochs)
            c.means = np.asarray([c.values[c.step_epochs == e].mean() for e in c.epochs])
        curves[name] = c
    return curves


def read_history(path: Path) -> dict[str, Curve]:
    """Epoch means from a ``loss_history.jsonl`` (one JSON record per epoch; ``null`` = a non-finite mean)."""
    records: dict[int, dict[str, Any]] = {}
    with open(path, encoding="utf-8", errors="replace") as f:
        lines = [(n, line) for n, line in enumerate(f, 1) if line.strip()]
    for k, (n, line) in enumerate(lines):
        try:
            rec = json.loads(line)
            records[int(rec["epoch"])] = rec["losses"]  # a resumed run may rewrite an epoch: last wins
        except (ValueError, KeyError, TypeError):
            if k == len(lines) - 1 and not line.endswith("\n"):
                # the record a killed run was writing: the earlier epochs are whole
                log.warning("%s, line %d: skipped an incomplete last record (the run was stopped while writing it)",
                            path, n)
                continue
            raise DataError(f"{path}, line {n}: not a loss-history record "
                            '({"epoch": N, "losses": {...}})') from None
    names = sorted({k for losses in records.values() for k in losses})
    curves = {}
    for name in names:
        pts = [(e, losses[name]) for e, losses in sorted(records.items()) if name in losses]
        curves[name] = Curve(name, epochs=np.asarray([e for e, _ in pts], dtype=np.int64),
                             means=np.asarray([math.nan if v is None else float(v) for _, v in pts]))
    return curves


def select(curves: Iterable[Curve], patterns: Sequence[str] | None) -> list[Curve]:
    """Curves whose full name (``D/d_loss``), short name (``d_loss``) or group (``D``) matches one of the
    shell-style ``patterns``; all when ``patterns`` is empty."""
    from fnmatch import fnmatchcase

    out = []
    for c in curves:
        if not patterns or any(fnmatchcase(c.name, p) or fnmatchcase(c.short, p) or c.group == p for p in patterns):
            out.append(c)
    return out

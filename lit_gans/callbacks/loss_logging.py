"""Per-tag loss logging through Lightning's own ``self.log``, the per-step band of each epoch for TensorBoard's
Custom Scalars tab, and the per-epoch loss history file."""

from __future__ import annotations

import json
import math
import os
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import TensorBoardLogger
from torch import Tensor

HISTORY_FILE = "loss_history.jsonl"


SPREAD = "spread"  # group of the per-epoch min/max of the step values (the band of the Custom Scalars charts)


def log_step_and_epoch(pl_module: L.LightningModule, name: str, value: Tensor | float,
                       step_value: Tensor | float | None = None) -> None:
    """Log ``<name>_step`` (this batch, or ``step_value``) and ``<name>_epoch`` (the mean of the epoch's batch
    values).

    Each batch counts once in the epoch mean (``batch_size=1``), the plain average of the step values, as
    the seed's curves are made. Under DDP only the epoch value is reduced across processes, once per epoch;
    step values stay local so that no step waits for a collective.
    """
    if pl_module._trainer is None:  # a step run outside a Trainer (the benchmark's plain loop)
        return
    pl_module.log(f"{name}_step", value if step_value is None else step_value, on_step=True, on_epoch=False,
                  batch_size=1)
    pl_module.log(f"{name}_epoch", value, on_step=False, on_epoch=True, batch_size=1,
                  sync_dist=pl_module.trainer.world_size > 1)


class LossLogger(Callback):
    """Logs every term of the model's objective and each tag's total, as ``<tag>/<name>``, per step and as
    the epoch mean (TensorBoard groups curves by tag: ``D/d_loss``, ``G/sty`` ...), and appends the epoch
    means to ``loss_history.jsonl`` next to the TensorBoard event files.

    - A term computed on some batches only (lazy R1 every ``r1_interval`` batches) keeps, in its ``_step``
      curve, the value of the last batch it was computed on: Lightning logs every ``log_every_n_steps``
      batches, which may never be an R1 batch. Its ``_epoch`` mean counts the batches it was not computed on
      as 0, as the seed defines it.
    - With ``spread``, the minimum and maximum of each curve's batch values within the epoch are logged as
      ``spread/<tag>/<name>_min|_max``, and a TensorBoard Custom Scalars layout draws, per tag, each epoch mean
      with that band (what ``python -m lit_gans.curves`` draws).

    Values are device tensors handed to Lightning, so the training step issues no host sync; the history is
    written once per epoch, from rank 0.
    """

    def __init__(self, history_file: str | None = HISTORY_FILE, spread: bool = True):
        self.history_file = history_file
        self.spread = spread
        self._trainer: L.Trainer | None = None
        self._restore: dict[str, Any] | None = None
        self._held: dict[str, Tensor] = {}  # the last computed value of each term
        self._band: dict[str, tuple[Tensor, Tensor]] = {}  # this epoch's (min, max) of each curve
        self._layout_written = False

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self._trainer = trainer

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._band = {}  # a resumed epoch gets its saved band back after its first batch (_restore_epoch_sums)

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        objective = getattr(pl_module, "objective", None)
        if objective is None:
            return
        computed = objective.computed()
        for name, value in objective.scalars().items():
            term = name.rsplit("/", 1)[-1]
            if term in objective.terms and term not in computed:
                step_value = self._held.get(name, value)
            else:
                self._held[name] = step_value = value
            log_step_and_epoch(pl_module, name, value, step_value)
            if self.spread:
                self._widen(name, value)
        if self._restore is not None:
            self._restore_epoch_sums(trainer)

    def _widen(self, name: str, value: Tensor) -> None:
        lo_hi = self._band.get(name)
        v = value.detach().float()
        self._band[name] = (v, v) if lo_hi is None else (torch.minimum(lo_hi[0], v), torch.maximum(lo_hi[1], v))

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        objective = getattr(pl_module, "objective", None)
        if not self.spread or objective is None or self._layout_written or not trainer.is_global_zero:
            return
        groups: dict[str, dict[str, list[Any]]] = {}
        names = [f"{tag}/{total}" for tag, total in objective.totals.items()]
        names += [f"{t.tags[0] if t.tags else 'loss'}/{n}" for n, t in objective.terms.items()]
        for name in names:
            group, short = name.split("/", 1)
            groups.setdefault(group, {})[short] = ["Margin", [f"{name}_epoch", f"{SPREAD}/{name}_min",
                                                              f"{SPREAD}/{name}_max"]]
        for logger in trainer.loggers:
            if isinstance(logger, TensorBoardLogger):
                logger.experiment.add_custom_scalars(groups)
        self._layout_written = True

    # Lightning does not checkpoint its running epoch means. A run resumed mid-epoch would average only the
    # batches after the resume, so the sums and counts so far are saved here and added back once the
    # resumed epoch's accumulators exist (after its first logged batch). Under DDP they are rank 0's.
    def _accumulators(self, trainer: L.Trainer) -> dict[str, Any]:
        try:
            results = trainer.fit_loop.epoch_loop._results
            return {k: m for k, m in results.items() if k.endswith("_epoch") and m.meta.on_epoch}
        except AttributeError:  # a Lightning version without these internals: epoch means restart on resume
            return {}

    def state_dict(self) -> dict[str, Any]:
        trainer = self._trainer
        if trainer is None:
            return {}
        sums = {k: [float(m.value), int(m.cumulated_batch_size)] for k, m in self._accumulators(trainer).items()}
        band = {k: [float(lo), float(hi)] for k, (lo, hi) in self._band.items()}
        # batches_done: the logging step the resumed run starts at (TensorBoard's purge_step, lit_gans.train)
        return {"epoch": trainer.current_epoch, "sums": sums, "band": band,
                "batches_done": trainer.fit_loop.total_batch_idx + 1}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._restore = state if state.get("sums") else None

    def _restore_epoch_sums(self, trainer: L.Trainer) -> None:
        state, self._restore = self._restore, None
        if state["epoch"] != trainer.current_epoch or trainer.fit_loop.epoch_loop.batch_progress.current.processed <= 1:
            return  # saved at an epoch's end: the new epoch starts from zero
        for key, (lo, hi) in (state.get("band") or {}).items():
            if key in self._band:
                cur_lo, cur_hi = self._band[key]
                self._band[key] = (torch.clamp(cur_lo, max=lo), torch.clamp(cur_hi, min=hi))
        accumulators = self._accumulators(trainer)
        for key, (total, count) in state["sums"].items():
            metric = accumulators.get(key)
            if metric is not None:
                metric.value = metric.value + total
                metric.cumulated_batch_size = metric.cumulated_batch_size + count

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """A resumed run continues the history after the epochs its checkpoint had completed: lines written
        after that checkpoint (by the run that died) are dropped, so no epoch appears twice."""
        if not self.history_file or not trainer.is_global_zero:
            return
        path = history_path(trainer, self.history_file)
        if path is not None and os.path.exists(path):
            keep_history_until(path, trainer.current_epoch)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.spread:
            for name, (lo, hi) in self._band.items():
                pl_module.log(f"{SPREAD}/{name}_min", lo, on_step=False, on_epoch=True, batch_size=1, reduce_fx="min",
                              sync_dist=trainer.world_size > 1)
                pl_module.log(f"{SPREAD}/{name}_max", hi, on_step=False, on_epoch=True, batch_size=1, reduce_fx="max",
                              sync_dist=trainer.world_size > 1)
        self._band = {}
        if not self.history_file or not trainer.is_global_zero:
            return
        path = history_path(trainer, self.history_file)
        if path is None:
            return
        means = {k[: -len("_epoch")]: _to_float(v) for k, v in trainer.callback_metrics.items() if k.endswith("_epoch")}
        if not means:
            return
        tags: dict[str, list[str]] = {}
        for name in means:
            tags.setdefault(name.split("/")[0] if "/" in name else "", []).append(name)
        record = {"epoch": trainer.current_epoch + 1, "step": trainer.fit_loop.total_batch_idx + 1,
                  "losses": means, "tags": tags}
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")


def keep_history_until(path: str, epochs: int) -> None:
    """Rewrite the history file (atomically) with the records of epochs ``1..epochs`` only, each once; a line
    torn by a kill during its write is dropped."""
    kept: dict[int, str] = {}
    with open(path, encoding="utf-8", errors="replace") as f:
        lines = f.readlines()
    for line in lines:
        try:
            epoch = int(json.loads(line)["epoch"])
        except (ValueError, KeyError, TypeError):
            continue
        if epoch <= epochs:
            kept[epoch] = line if line.endswith("\n") else line + "\n"
    text = "".join(kept[e] for e in sorted(kept))
    if text == "".join(lines):
        return
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def history_path(trainer: L.Trainer, filename: str = HISTORY_FILE) -> str | None:
    """Where the history goes: the logger's directory (beside the event files), else the run's root."""
    log_dir = trainer.logger.log_dir if trainer.logger is not None and trainer.logger.log_dir else trainer.default_root_dir
    return os.path.join(log_dir, filename) if log_dir else None


def _to_float(v: Tensor | float) -> float | None:
    x = float(v.detach().float().cpu()) if isinstance(v, torch.Tensor) else float(v)
    return x if math.isfinite(x) else None

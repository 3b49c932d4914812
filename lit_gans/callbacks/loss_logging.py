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
from torchmetrics import Metric
from torchmetrics.aggregation import MaxMetric, MeanMetric, MinMetric

from lit_gans.compat import train_logging_step
from lit_gans.models.base import trainer_of

HISTORY_FILE = "loss_history.jsonl"


SPREAD = "spread"  # group of the per-epoch min/max of the step values (the band of the Custom Scalars charts)


def log_step_and_epoch(pl_module: L.LightningModule, name: str, value: Tensor | float) -> None:
    """Log ``<name>_step`` (this batch) and ``<name>_epoch`` (the mean of the epoch's batch values) of a value
    that is the same on every batch of an epoch (a schedule's weight, e.g. ``lambda_ds``): Lightning's own
    epoch mean suffices for it, also after a resume in the middle of the epoch."""
    if trainer_of(pl_module) is None:  # a step run outside a Trainer (the benchmark's plain loop)
        return
    pl_module.log(f"{name}_step", value, on_step=True, on_epoch=False, batch_size=1)
    pl_module.log(f"{name}_epoch", value, on_step=False, on_epoch=True, batch_size=1,
                  sync_dist=pl_module.trainer.world_size > 1)


class LossLogger(Callback):
    """Logs every term of the model's objective and each tag's total, as ``<tag>/<name>``, per step and as
    the epoch mean (TensorBoard groups curves by tag: ``D/d_loss``, ``G/sty`` ...), and appends the epoch
    means to ``loss_history.jsonl`` next to the TensorBoard event files.

    - Epoch means are torchmetrics ``MeanMetric``s (each batch counts once: the plain mean of the step values,
      as the seed's curves are made), reduced across processes once per epoch under DDP. Their running sums
      travel in checkpoints (this callback's state), so a run resumed in the middle of an epoch averages the
      whole epoch, not only the batches after the resume.
    - A term computed on some batches only (lazy R1 every ``r1_interval`` batches) is 0 in its ``_step`` curve
      on the batches it is not computed on and its ``_epoch`` mean counts them, as the seed defines it. The
      batches it *is* computed on are always in its ``_step`` curve, with their real values: Lightning writes
      step values every ``log_every_n_steps`` batches only, which may never be an R1 batch, so the values of
      the others are written here, at their own steps, when Lightning next writes (one device read for all).
    - With ``spread``, the minimum and maximum of each curve's batch values within the epoch are logged as
      ``spread/<tag>/<name>_min|_max``, and a TensorBoard Custom Scalars layout draws, per tag, each epoch mean
      with that band (what ``python -m lit_gans.curves`` draws).

    Values are device tensors handed to Lightning and to the metrics, so the training step issues no host
    sync; the history is written once per epoch, from rank 0.
    """

    def __init__(self, history_file: str | None = HISTORY_FILE, spread: bool = True):
        self.history_file = history_file
        self.spread = spread
        self._metrics: dict[str, Metric] = {}  # "<kind>:<tag>/<name>" -> this epoch's aggregate
        # The last batch each term was computed on: (step, value, written by Lightning), and the values of lazy
        # terms' batches that Lightning did not write, waiting to be written: [(step, "<tag>/<name>_step", value)].
        self._last_computed: dict[str, tuple[int, Tensor, bool]] = {}
        self._unwritten: list[tuple[int, str, Tensor]] = []
        self._lazy: set[str] = set()
        self._epoch_open = False  # batches of this epoch were aggregated and its end has not been logged yet
        self._restore: dict[str, dict[str, Tensor]] | None = None
        self._layout_written = False

    # ------------------------------------------------------------------ per batch
    def _metric(self, kind: str, name: str, device: torch.device) -> Metric:
        key = f"{kind}:{name}"
        metric = self._metrics.get(key)
        if metric is None:
            cls = {"mean": MeanMetric, "min": MinMetric, "max": MaxMetric}[kind]
            metric = self._metrics[key] = cls(nan_strategy="disable").to(device)  # no NaN check: no host sync
        return metric

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        objective = getattr(pl_module, "objective", None)
        if objective is None:
            return
        if self._restore is not None:
            self._restore_epoch(trainer, pl_module.device)
        computed = objective.computed()
        step, lightning_writes = train_logging_step(trainer)
        for name, value in objective.scalars().items():
            term = name.rsplit("/", 1)[-1]
            if term in objective.terms:
                if term in computed:
                    self._last_computed[name] = (step, value, lightning_writes)
                else:  # a lazy term: the last batch it was computed on must be in its curve
                    self._lazy.add(name)
                    last = self._last_computed.pop(name, None)
                    if last is not None and not last[2]:
                        self._unwritten.append((last[0], f"{name}_step", last[1]))
            pl_module.log(f"{name}_step", value, on_step=True, on_epoch=False, batch_size=1)
            self._aggregate(pl_module, "mean", name, value, f"{name}_epoch")
            if self.spread:
                self._aggregate(pl_module, "min", name, value, f"{SPREAD}/{name}_min")
                self._aggregate(pl_module, "max", name, value, f"{SPREAD}/{name}_max")
        self._epoch_open = True
        if lightning_writes:
            self._write_unwritten(trainer)

    def _write_unwritten(self, trainer: L.Trainer) -> None:
        """Write the waiting step values of lazy terms to every logger, at their own steps (before Lightning
        writes the current step, so each curve's steps stay in order)."""
        if not self._unwritten or not trainer.is_global_zero:
            self._unwritten.clear()
            return
        device = self._unwritten[-1][2].device  # (values restored from a checkpoint are on the CPU)
        values = torch.stack([v.detach().float().to(device) for _, _, v in self._unwritten]).tolist()  # one read
        for (step, name, _), value in zip(self._unwritten, values, strict=True):
            for logger in trainer.loggers:
                logger.log_metrics({name: value}, step=step)
        self._unwritten.clear()

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        for name, (step, value, written) in self._last_computed.items():
            if name in self._lazy and not written:
                self._unwritten.append((step, f"{name}_step", value))
        self._last_computed.clear()
        self._write_unwritten(trainer)

    def _aggregate(self, pl_module: L.LightningModule, kind: str, name: str, value: Tensor, logged: str) -> None:
        metric = self._metric(kind, name, value.device)
        metric.update(value.detach().float())
        # Lightning computes (and, under DDP, reduces) the metric at the epoch's end, then resets it.
        pl_module.log(logged, metric, on_step=False, on_epoch=True, metric_attribute=f"loss_logger.{kind}.{name}")

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, Any]:
        """The running aggregates of an epoch that a checkpoint interrupts (summed over processes; a resumed
        run puts them back in its first process only), and the batch count (TensorBoard's ``purge_step``)."""
        trainer = getattr(self, "trainer", None)
        state: dict[str, Any] = {
            "batches_done": trainer.fit_loop.total_batch_idx + 1 if trainer is not None else 0,
            # lazy terms' values not written yet (a resumed run writes them)
            "lazy": sorted(self._lazy),
            "last_computed": {k: (s, v.detach().cpu(), w) for k, (s, v, w) in self._last_computed.items()},
            "unwritten": [(s, n, v.detach().cpu()) for s, n, v in self._unwritten]}
        if self._epoch_open:
            sync = trainer is not None and trainer.world_size > 1
            running = {}
            for key, metric in self._metrics.items():
                with metric.sync_context(should_sync=sync):
                    running[key] = {k: v.detach().cpu() for k, v in metric.metric_state.items()}
            state["running"] = running
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._restore = state.get("running")
        self._lazy = set(state.get("lazy") or ())
        self._last_computed = {k: (int(s), v, bool(w)) for k, (s, v, w) in (state.get("last_computed") or {}).items()}
        self._unwritten = [(int(s), n, v) for s, n, v in state.get("unwritten") or ()]

    def _restore_epoch(self, trainer: L.Trainer, device: torch.device) -> None:
        running, self._restore = self._restore, None
        if not trainer.is_global_zero:
            return  # the other processes start from zero: the epoch's reduction then counts the sums once
        for key, states in running.items():
            kind, name = key.split(":", 1)
            metric = self._metric(kind, name, device)
            if kind == "mean":  # states: the sum of the batch values and their count (each batch weighs 1)
                count = round(float(states["weight"]))
                if count > 0:  # `count` batches at their mean (with nan_strategy="disable" update ignores weights)
                    metric.update((states["mean_value"] / count).to(device).expand(count))
            else:  # states: the extreme so far
                metric.update(next(iter(states.values())).to(device))

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self.trainer = trainer

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        objective = getattr(pl_module, "objective", None)
        if (not self.spread or objective is None or self._layout_written or not trainer.is_global_zero
                or trainer.ckpt_path is not None):  # a resumed run's folder has the layout (written at step 0)
            return
        groups: dict[str, dict[str, list[Any]]] = {}
        for name in objective.curve_names():
            group, short = name.split("/", 1)
            groups.setdefault(group, {})[short] = ["Margin", [f"{name}_epoch", f"{SPREAD}/{name}_min",
                                                              f"{SPREAD}/{name}_max"]]
        for logger in trainer.loggers:
            if isinstance(logger, TensorBoardLogger):
                logger.experiment.add_custom_scalars(groups)
        self._layout_written = True

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """A resumed run continues the history after the epochs its checkpoint had completed: lines written
        after that checkpoint (by the run that died) are dropped, so no epoch appears twice."""
        if not self.history_file or not trainer.is_global_zero:
            return
        path = history_path(trainer, self.history_file)
        if path is not None and os.path.exists(path):
            keep_history_until(path, trainer.current_epoch)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._epoch_open = False
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

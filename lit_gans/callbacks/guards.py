"""Stop a run whose losses became NaN/Inf, naming the term and the batch, before any checkpoint of it."""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback

from lit_gans.errors import TrainingError


class NonFiniteGuard(Callback):
    """Watches every logged term of the model's objective.

    Per batch it only updates, on the device, the first batch at which each term was non-finite (no host
    sync in the step); every ``check_every_n_steps`` batches and before every checkpoint is written it
    reads that record once and, if a term went bad, raises a one-line :class:`TrainingError` naming the
    term, the batch and the epoch. Raised while saving, it stops the save, so the last good checkpoint stays.
    """

    def __init__(self, check_every_n_steps: int = 50):
        self.check_every_n_steps = max(1, int(check_every_n_steps))
        self._first_bad: dict[str, torch.Tensor] = {}
        self._batch: torch.Tensor | None = None

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        objective = getattr(pl_module, "objective", None)
        if objective is None:
            return
        done = trainer.fit_loop.total_batch_idx + 1
        scalars = objective.scalars()
        if self._batch is None or self._batch.device != pl_module.device:
            self._batch = torch.zeros((), dtype=torch.long, device=pl_module.device)
        self._batch.fill_(done - 1)
        for name, value in scalars.items():
            first = self._first_bad.get(name)
            if first is None or first.device != value.device:
                first = self._first_bad[name] = torch.full((), -1, dtype=torch.long, device=value.device)
            bad = ~torch.isfinite(value.detach())
            torch.where(bad & (first < 0), self._batch, first, out=first)
        if done % self.check_every_n_steps == 0:
            self.check(trainer)

    def check(self, trainer: L.Trainer) -> None:
        bad = {n: int(v) for n, v in self._first_bad.items() if int(v) >= 0}
        if not bad:
            return
        name, batch = min(bad.items(), key=lambda kv: kv[1])
        nb = trainer.num_training_batches
        epoch = batch // nb + 1 if isinstance(nb, int) and nb > 0 else trainer.current_epoch + 1
        raise TrainingError(
            f"loss term {name} became NaN/Inf at batch {batch} (epoch {epoch}); training stopped and no checkpoint "
            "was written after it: lower the learning rate, check the data, or use trainer.precision=32-true"
        )

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]) -> None:
        self.check(trainer)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.check(trainer)

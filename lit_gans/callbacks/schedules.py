"""Schedules of loss weights. They hand the model a value through the objective's gains; the model never
computes a schedule itself, so the same model trains under another schedule by config alone."""

from __future__ import annotations

from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback

from lit_gans.callbacks.loss_logging import log_step_and_epoch


def diversity_factor(epoch: int, decay_epochs: int) -> float:
    """``1 - clamp((epoch - 1) / decay_epochs, 0, 1)`` with epochs counted from 1; 1 when ``decay_epochs <= 0``
    (no decay). ``lambda_ds(epoch) = w_ds * diversity_factor(epoch, ds_decay_epochs)``."""
    if decay_epochs <= 0:
        return 1.0
    return 1.0 - min(max((epoch - 1) / decay_epochs, 0.0), 1.0)


class DiversityDecay(Callback):
    """Linear per-epoch decay of the diversity term's weight, as the latent-StarGAN seed defines it:
    ``lambda_ds = w_ds`` in epoch 1 and 0 from epoch ``decay_epochs + 1`` on. Logged as ``<tag>/lambda_ds``.

    Args:
        decay_epochs: ``loss.ds_decay_epochs``.
        term: the objective's term whose weight decays.
    """

    def __init__(self, decay_epochs: int, term: str = "ds", log_name: str = "lambda_ds"):
        self.decay_epochs = int(decay_epochs)
        self.term = term
        self.log_name = log_name

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int) -> None:
        # Set every batch, not at epoch start: a run resumed mid-epoch gets no on_train_epoch_start.
        objective = getattr(pl_module, "objective", None)
        if objective is not None and self.term in objective.terms:
            objective.set_gain(self.term, diversity_factor(trainer.current_epoch + 1, self.decay_epochs))

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        objective = getattr(pl_module, "objective", None)
        if objective is not None and self.term in objective.terms:
            group = objective.terms[self.term].group
            log_step_and_epoch(pl_module, f"{group}/{self.log_name}", objective.weight(self.term))


class R1Schedule(Callback):
    """Lazy R1: the R1 term is computed on batches whose count since the start of training (from 0,
    across epochs; not Lightning's ``global_step``, which counts optimizer steps) is a multiple of
    ``interval``, with its weight multiplied by ``interval`` so that its average pull does not depend on
    the interval. On other batches its gain is 0: not computed, logged as 0.

    The batch count is saved in checkpoints, so a resumed run keeps the same R1 steps.
    """

    def __init__(self, interval: int = 1, term: str = "r1"):
        if interval < 1:
            raise ValueError(f"r1_interval must be >= 1, got {interval}")
        self.interval = int(interval)
        self.term = term
        self.batches_trained = 0

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int) -> None:
        objective = getattr(pl_module, "objective", None)
        if objective is not None and self.term in objective.terms:
            is_r1_step = self.batches_trained % self.interval == 0
            objective.set_gain(self.term, float(self.interval) if is_r1_step else 0.0)

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        self.batches_trained += 1

    def state_dict(self) -> dict[str, Any]:
        return {"batches_trained": self.batches_trained}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.batches_trained = int(state_dict["batches_trained"])

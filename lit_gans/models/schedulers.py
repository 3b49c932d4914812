"""Learning-rate schedules (torch schedulers) that ``model.scheduler`` names as ``_target_`` with ``_partial_``: the
model calls them with its optimizer. Epoch schedules are stepped at each epoch's end, step schedules after each
batch's update (:class:`lit_gans.models.base.GANModule`)."""

from __future__ import annotations

from collections.abc import Callable

import torch


def linear_decay(n_epochs: int, n_epochs_decay: int) -> Callable[[int], float]:
    """pix2pix/CycleGAN's ``linear`` policy as a ``LambdaLR`` factor of the 0-based epoch: 1 for the first
    ``n_epochs`` epochs, then down by ``1 / (n_epochs_decay + 1)`` per epoch (to 0 after the last)."""

    def factor(epoch: int) -> float:
        return max(0.0, 1.0 - max(0, epoch + 1 - n_epochs) / float(n_epochs_decay + 1))

    return factor


def linear_decay_scheduler(optimizer: torch.optim.Optimizer, n_epochs: int, n_epochs_decay: int):
    """pix2pix/CycleGAN/CUT: constant for ``n_epochs`` epochs, then linearly to 0 over ``n_epochs_decay``."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, linear_decay(n_epochs, n_epochs_decay))


def warmup_factor(warmup_steps: int) -> Callable[[int], float]:
    """``LambdaLR`` factor of the 0-based batch count: ``min(1, (step + 1) / warmup_steps)``."""

    def factor(step: int) -> float:
        return 1.0 if warmup_steps <= 0 else min(1.0, (step + 1) / warmup_steps)

    return factor


def linear_warmup_scheduler(optimizer: torch.optim.Optimizer, warmup_steps: int):
    """Palette: the learning rate rises linearly over the first ``warmup_steps`` batches, then stays (a step
    schedule)."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_factor(int(warmup_steps)))

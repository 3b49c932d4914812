"""Learning-rate schedules (torch schedulers; models step them once per epoch)."""

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
    return torch.optim.lr_scheduler.LambdaLR(optimizer, linear_decay(n_epochs, n_epochs_decay))

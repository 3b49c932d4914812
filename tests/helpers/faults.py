"""Callbacks the fault tests add through Hydra: a hard kill at a batch, NaN weights from a batch on."""

import os
import signal

import torch
from lightning.pytorch.callbacks import Callback


class KillAt(Callback):
    """``kill -9`` this process at the end of batch ``batch`` (counted over the run, from 0), before the
    checkpoint callbacks of that batch run (Lightning runs them last)."""

    def __init__(self, batch: int):
        self.batch = batch

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.fit_loop.total_batch_idx == self.batch:
            os.kill(os.getpid(), signal.SIGKILL)


class PoisonAt(Callback):
    """Sets one generator weight to NaN at the start of batch ``batch``."""

    def __init__(self, batch: int):
        self.batch = batch

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.fit_loop.total_batch_idx == self.batch:
            with torch.no_grad():
                next(pl_module.generator.parameters()).view(-1)[0] = float("nan")

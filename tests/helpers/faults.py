"""Callbacks the fault tests add through Hydra: a hard kill, a signal, NaN weights, a full disk at a batch."""

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


class SignalAt(Callback):
    """Sends ``signal_name`` to this process (``times`` times in a row) at the start of batch ``batch``
    (counted over the run, from 0): the run notices it during that batch, as it would a signal from outside."""

    def __init__(self, batch: int, signal_name: str = "SIGTERM", times: int = 1):
        self.batch = batch
        self.signum = getattr(signal, signal_name)
        self.times = times

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.fit_loop.total_batch_idx == self.batch:
            for _ in range(self.times):
                os.kill(os.getpid(), self.signum)


class FillDiskAt(Callback):
    """Fills the file system of ``path`` at the start of batch ``batch`` by writing ``path`` until it is full."""

    def __init__(self, batch: int, path: str):
        self.batch = batch
        self.path = path

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.fit_loop.total_batch_idx == self.batch:
            block = b"\0" * (1 << 16)
            with open(self.path, "wb") as f:
                try:
                    while True:
                        f.write(block)
                        f.flush()
                except OSError:
                    pass

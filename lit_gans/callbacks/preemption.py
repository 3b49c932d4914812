"""Save before a scheduler stops the job (pre-emption, time limit)."""

from __future__ import annotations

import os
import signal
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback


class CheckpointOnSignal(Callback):
    """On ``signal_name`` (SIGUSR2: what submitit and ``sbatch --signal=USR2@120`` send before a pre-emption or
    the time limit), write ``last.ckpt`` at the end of the current batch, then pass the signal to the handler
    installed before (submitit's requeues the job; Hydra re-runs it and ``ckpt_path=last`` resumes; with no
    handler, the default action ends the process). Under DDP the ranks agree on the batch to stop at.
    """

    def __init__(self, dirpath: str, signal_name: str = "SIGUSR2"):
        self.dirpath = dirpath
        self.signum = getattr(signal, signal_name)
        self._previous: Any = None
        self._received: tuple[int, Any] | None = None
        self._installed = False

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        try:
            self._previous = signal.signal(self.signum, self._note)
            self._installed = True
        except ValueError:  # not the main thread: leave signals alone
            self._installed = False

    def _note(self, signum: int, frame: Any) -> None:
        self._received = (signum, frame)

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        stop = self._received is not None
        if trainer.world_size > 1:
            stop = trainer.strategy.reduce_boolean_decision(stop, all=False)
        if not stop:
            return
        trainer.save_checkpoint(os.path.join(self.dirpath, "last.ckpt"))
        signum, frame = self._received or (self.signum, None)
        self._received = None
        self._restore()
        previous = self._previous
        if callable(previous):
            previous(signum, frame)
        else:
            signal.raise_signal(signum)  # the default action (terminate) now that our handler is gone

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._restore()

    def _restore(self) -> None:
        if self._installed:
            signal.signal(self.signum, self._previous if self._previous is not None else signal.SIG_DFL)
            self._installed = False




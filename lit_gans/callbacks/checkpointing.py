"""``last.ckpt``: written at the end of every epoch, every N minutes of wall time, on the signals that stop a
job, and at the end of training, so that a run that dies loses at most a few minutes of work.

Why not Lightning's ``ModelCheckpoint(save_last=True)`` for this: with manual optimisation (every model here)
its step trigger fires on optimizer steps and its time trigger is ignored, its three triggers are mutually
exclusive, and it cannot save on a stop signal at a consistent point. ``ModelCheckpoint`` still writes the
kept ``epoch_XXXX.ckpt`` files (``callbacks.model_checkpoint``).

Signals. SIGTERM (schedulers, ``docker stop``, ``kill``) is Lightning's: it finishes the current batch and
raises ``SIGTERMException``, at which point this callback writes ``last.ckpt`` (an exact resume point). Ctrl-C
(SIGINT) is routed the same way: the first one asks for a save at the end of the batch, a second one stops at
once without saving. SIGUSR2 (what submitit and ``sbatch --signal=USR2@120`` send before a pre-emption or the
time limit) saves at the end of the batch and then hands the signal to the handler installed before (submitit's
requeues the job). Under DDP all processes agree on the batch to save at.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Checkpoint
from lightning.pytorch.utilities.exceptions import SIGTERMException

log = logging.getLogger(__name__)

LAST = "last.ckpt"
SIGNAL_LOGGER = "lightning.pytorch.trainer.connectors.signal_connector"  # logs "Received SIGTERM: 15"


class _CtrlCIsNotSigterm(logging.Filter):
    """Drops Lightning's ``Received SIGTERM`` record while the SIGTERM is the one this callback sent itself for a
    Ctrl-C (which it has already announced as such)."""

    def __init__(self, callback: LastCheckpoint):
        super().__init__()
        self.callback = callback

    def filter(self, record: logging.LogRecord) -> bool:
        return not (self.callback.stop_signal == "SIGINT" and "Received SIGTERM" in record.getMessage())


class LastCheckpoint(Checkpoint):
    """Keeps ``<dirpath>/last.ckpt`` current (atomically, through the trainer's checkpoint IO).

    Args:
        dirpath: folder of ``last.ckpt`` (``<run>/checkpoints``).
        every_n_epochs: save at the end of every N-th training epoch (0: never at epoch ends).
        every_n_minutes: save after a batch once this much wall time has passed since the last save (an epoch
            can take hours on real data); ``null``/0: off.
        every_n_train_steps: save after a batch every N optimizer steps (with manual optimisation
            ``trainer.global_step`` counts optimizer steps: StarGAN v2 makes two per batch); ``null``/0: off.
        requeue_signal: signal that saves and then calls the previously installed handler (``null``: none).
        stop_on_sigint: Ctrl-C saves at the end of the batch and stops, like SIGTERM.
    """

    def __init__(self, dirpath: str, every_n_epochs: int = 1, every_n_minutes: float | None = 30.0,
                 every_n_train_steps: int | None = None, requeue_signal: str | None = "SIGUSR2",
                 stop_on_sigint: bool = True):
        super().__init__()
        self.dirpath = str(dirpath)
        self.every_n_epochs = int(every_n_epochs or 0)
        self.every_n_seconds = float(every_n_minutes or 0) * 60.0
        self.every_n_train_steps = int(every_n_train_steps or 0)
        self.requeue_signum = getattr(signal, requeue_signal) if requeue_signal else None
        self.stop_on_sigint = bool(stop_on_sigint)
        self.last_saved_path: str | None = None
        self.stop_signal: str | None = None  # "SIGTERM" / "SIGINT" once a stop was asked for
        self.forced_stop = False  # a second Ctrl-C: stopped without saving
        self._last_time = time.monotonic()
        self._last_step_bucket = 0
        self._saved_at: tuple[int, int] | None = None  # (global_step, total batches) of the last save
        self._save_at_epoch_end = False
        self._requeue_at_epoch_end = False
        self._requeue: tuple[int, Any] | None = None
        self._previous: dict[int, Any] = {}
        self._log_filter = _CtrlCIsNotSigterm(self)

    @property
    def path(self) -> str:
        return os.path.join(self.dirpath, LAST)

    # ------------------------------------------------------------------ signals
    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if stage != "fit":
            return
        self._install(signal.SIGTERM, self._note_sigterm)
        if self.stop_on_sigint:
            self._install(signal.SIGINT, self._note_sigint)
            logging.getLogger(SIGNAL_LOGGER).addFilter(self._log_filter)
        if self.requeue_signum is not None:
            self._install(self.requeue_signum, self._note_requeue)

    def _install(self, signum: int, handler: Any) -> None:
        try:
            self._previous[signum] = signal.signal(signum, handler)
        except ValueError:  # not the main thread: leave signals alone
            pass

    def _note_sigterm(self, signum: int, frame: Any) -> None:
        # From fit start on, Lightning's SIGTERM handler runs first and calls this one: only note the signal
        # (Lightning stops at the end of the batch). Before that, SIGTERM keeps its usual meaning.
        self.stop_signal = self.stop_signal or "SIGTERM"
        if signal.getsignal(signal.SIGTERM) == self._note_sigterm:
            previous = self._previous.get(signal.SIGTERM)
            self.restore_signals()
            if callable(previous):
                previous(signum, frame)
            else:
                signal.raise_signal(signal.SIGTERM)

    def _note_sigint(self, signum: int, frame: Any) -> None:
        current = signal.getsignal(signal.SIGTERM)
        lightning_stops = callable(current) and current != self._note_sigterm
        if self.stop_signal is not None or not lightning_stops:
            self.forced_stop = self.stop_signal is not None
            raise KeyboardInterrupt
        self.stop_signal = "SIGINT"
        log.warning("Ctrl-C: finishing this batch, then saving %s and stopping (press Ctrl-C again to stop at "
                    "once, without saving)", self.path)
        os.kill(os.getpid(), signal.SIGTERM)  # Lightning's stop at the end of the batch (SIGTERMException)

    def _note_requeue(self, signum: int, frame: Any) -> None:
        self._requeue = (signum, frame)

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self.restore_signals()

    def restore_signals(self) -> None:
        """Put back the handlers found at setup."""
        logging.getLogger(SIGNAL_LOGGER).removeFilter(self._log_filter)
        for signum, previous in self._previous.items():
            try:
                signal.signal(signum, previous if previous is not None else signal.SIG_DFL)
            except ValueError:
                pass
        self._previous = {}

    # ------------------------------------------------------------------ triggers
    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._last_time = time.monotonic()
        if self.every_n_train_steps:
            self._last_step_bucket = trainer.global_step // self.every_n_train_steps

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        requeue = self._requeue is not None
        timed = self.every_n_seconds > 0 and time.monotonic() - self._last_time >= self.every_n_seconds
        if trainer.world_size > 1:  # clocks and signals differ between processes: save together or not at all
            requeue = trainer.strategy.reduce_boolean_decision(requeue, all=False)
            timed = trainer.strategy.reduce_boolean_decision(timed, all=False)
        stepped = bool(self.every_n_train_steps) and trainer.global_step // self.every_n_train_steps > self._last_step_bucket
        if not (requeue or timed or stepped):
            return
        if _is_last_batch(trainer, batch_idx):
            # Saved at the epoch's end instead, a moment from now. A checkpoint taken here, after the last
            # batch but before the epoch's end, does not resume exactly under trainer.limit_train_batches
            # (Lightning restarts the same epoch from the loader's remaining batches).
            self._save_at_epoch_end = True
            self._requeue_at_epoch_end = requeue
            return
        self._save(trainer)
        if requeue:
            self._hand_on_requeue()

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        epoch_due = self.every_n_epochs > 0 and (trainer.current_epoch + 1) % self.every_n_epochs == 0
        requeue, self._requeue_at_epoch_end = self._requeue_at_epoch_end, False
        if epoch_due or self._save_at_epoch_end:
            self._save(trainer)
        if requeue:
            self._hand_on_requeue()

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._save(trainer)

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        if isinstance(exception, SIGTERMException):
            # Lightning raises it between batches (after the batch's hooks): the state is a consistent resume
            # point, mid-epoch or at an epoch's end alike.
            self.stop_signal = self.stop_signal or "SIGTERM"
            self._save(trainer)
        elif isinstance(exception, KeyboardInterrupt):
            self.forced_stop = True

    # ------------------------------------------------------------------ saving
    def _save(self, trainer: L.Trainer) -> None:
        if trainer.fast_dev_run or trainer.sanity_checking:
            return
        point = (trainer.global_step, trainer.fit_loop.total_batch_idx)
        if point == self._saved_at and self.last_saved_path is not None:
            return
        trainer.save_checkpoint(self.path, weights_only=False)
        self._saved_at = point
        self.last_saved_path = self.path
        self._reset_triggers(trainer)

    def _reset_triggers(self, trainer: L.Trainer) -> None:
        self._last_time = time.monotonic()
        self._save_at_epoch_end = False
        if self.every_n_train_steps:
            self._last_step_bucket = trainer.global_step // self.every_n_train_steps

    def _hand_on_requeue(self) -> None:
        received, self._requeue = self._requeue, None
        if received is None:  # another process got the signal; this one only saved with it
            return
        signum, frame = received
        previous = self._previous.pop(signum, None)
        try:
            signal.signal(signum, previous if previous is not None else signal.SIG_DFL)
        except ValueError:
            pass
        if callable(previous):
            previous(signum, frame)
        else:
            signal.raise_signal(signum)  # the default action (terminate) now that this handler is gone


def _is_last_batch(trainer: L.Trainer, batch_idx: int) -> bool:
    n = trainer.num_training_batches
    return isinstance(n, int) and batch_idx + 1 >= n


"""A DataLoader that resumes mid-epoch where training stopped (Lightning's stateful-loader protocol).

Lightning saves ``loader.state_dict()`` in checkpoints and hands it back with ``load_state_dict`` when a run
resumes. The state is the epoch and the number of batches of it already trained (read from the trainer's
progress, not from this iterator, which Lightning reads one batch ahead); the next iteration over the same
epoch skips that many batches of *indices* without loading their data. Each iteration also sets the
sampler's epoch itself before its indices are drawn: Lightning creates a resumed run's first iterator
before it calls ``set_epoch``, and worker processes draw indices as soon as the iterator exists. The samplers here are functions
of (seed, epoch), so the remaining batches are exactly those an uninterrupted run would have seen. The
loader also draws its worker seeds from its own generator, so creating an iterator never consumes the
global RNG (which a resumed run restores).
"""

from __future__ import annotations

import atexit
import functools
import multiprocessing
import os
import signal
import threading
from collections.abc import Callable
from typing import Any

import torch

from lit_gans.compat import SkippingDataLoader


def _worker_start(worker_id: int, init: Callable[[int], None] | None = None) -> None:
    """Loader processes ignore Ctrl-C and SIGTERM sent to the whole process group (a terminal, SLURM): the
    training process decides when to stop (it saves a checkpoint first) and shuts its loaders down; a loader
    process that died with the signal would make the training process fail before it could save. They still
    end with the training process (PyTorch's workers watch their parent), and at a SIGTERM from the training
    process itself (multiprocessing's exit handler and PyTorch's shutdown send one, then wait)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if hasattr(signal, "sigwaitinfo"):  # Linux: the sender of each SIGTERM is known
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})  # before the thread: it inherits the mask
        threading.Thread(target=_end_at_parents_sigterm, args=(os.getppid(),), daemon=True,
                         name="lit_gans-loader-sigterm").start()
    else:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if init is not None:
        init(worker_id)


def _end_at_parents_sigterm(parent: int) -> None:
    while True:
        if signal.sigwaitinfo({signal.SIGTERM}).si_pid == parent:
            os._exit(0)


def _end_loader_processes(grace_s: float = 1.0) -> None:
    """At exit, end loader processes that are still running (an iterator left referenced, by an exception's
    traceback say). Where a worker cannot tell who sent a SIGTERM (no ``sigwaitinfo``: macOS) it ignores every
    SIGTERM, and multiprocessing's own exit handler, which terminates daemonic children with SIGTERM and then
    joins them, would wait for it forever."""
    children = [c for c in multiprocessing.active_children() if c.daemon]
    for end in ("terminate", "kill"):  # PyTorch's own workers end at SIGTERM, this project's at SIGKILL
        for child in children:
            if child.is_alive():
                getattr(child, end)()
        for child in children:
            try:
                child.join(grace_s)
            except RuntimeError:  # PyTorch's SIGCHLD handler reporting the worker ended here
                pass


def _register_exit_handler() -> None:
    # (Re-)registered when workers start, so it runs before multiprocessing's own handler (atexit is LIFO, and
    # multiprocessing moves its handler to the end of the queue when its logger is first created).
    atexit.unregister(_end_loader_processes)
    atexit.register(_end_loader_processes)


class ResumableDataLoader(SkippingDataLoader):
    """Args:
        position: returns ``(epoch, batches of it trained)`` from the trainer (set by the data module).
        seed: seed of the loader's own generator (worker seeds).
        Other arguments: :class:`torch.utils.data.DataLoader`'s.
    """

    def __init__(self, *args: Any, position: Callable[[], tuple[int, int]] | None = None, seed: int = 0,
                 **kwargs: Any):
        kwargs.setdefault("generator", torch.Generator().manual_seed(seed))
        kwargs["worker_init_fn"] = functools.partial(_worker_start, init=kwargs.get("worker_init_fn"))
        super().__init__(*args, **kwargs)
        self._position = position
        self._resume: dict[str, int] | None = None

    def _epoch(self) -> int:
        return int(getattr(self.sampler, "epoch", 0))

    def state_dict(self) -> dict[str, int]:
        epoch, batches = self._position() if self._position else (self._epoch(), 0)
        return {"epoch": int(epoch), "batches": int(batches)}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self._resume = dict(state)

    def __iter__(self):
        if self._position is not None and hasattr(self.sampler, "set_epoch"):
            self.sampler.set_epoch(self._position()[0])
        resume, self._resume = self._resume, None
        # Skip only inside the epoch the checkpoint was taken in, and only when it was taken mid-epoch.
        if resume and resume.get("epoch") == self._epoch() and 0 < resume.get("batches", 0) < len(self.batch_sampler):
            self.skip_batches = int(resume["batches"])
        if self.num_workers > 0:
            _register_exit_handler()
        try:
            return super().__iter__()
        finally:
            self.skip_batches = 0

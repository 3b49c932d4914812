"""A run directory holds one run: a lock while it trains, and a clear decision between starting and resuming.

- :class:`RunLock`: an exclusive ``fcntl`` lock on ``<run>/.lit_gans.lock`` for the life of the training process.
  The kernel drops it when the process ends, however it ends (``kill -9`` included), so it is never stale; the
  file's text (pid, host, start time, command) only serves the message of a refused second run.
- :func:`resolve_resume`: what ``ckpt_path`` means in this run directory (``last``, ``auto``, a file, or a new
  run), refusing to start over on top of a run.
- :func:`remove_stale_partial_saves`: temporary files of checkpoint saves interrupted by a kill.
- :func:`discard_failed_start`: what a start that was refused before training wrote (Hydra's record of it, its
  log, the lock), and the folder itself when that start created it.
"""

from __future__ import annotations

import datetime
import fcntl
import glob
import os
import re
import shutil
import socket
import sys
from dataclasses import dataclass
from typing import IO

from lit_gans.errors import ConfigError

LOCK_FILE = ".lit_gans.lock"
HISTORY_FILE = "loss_history.jsonl"
_PARTIAL_SAVE = re.compile(r"^\..+\.tmp\d+$")  # lit_gans.utils.checkpoint_io.AtomicCheckpointIO's temporaries


def is_global_zero_process() -> bool:
    """Whether this process is the first of its job, from the launchers' environment (Lightning's DDP launcher,
    torchrun, SLURM), before a Trainer exists."""
    for var in ("RANK", "SLURM_PROCID", "LOCAL_RANK", "NODE_RANK", "GROUP_RANK"):
        value = os.environ.get(var)
        if value not in (None, "", "0"):
            return False
    return True


class RunLock:
    """``with RunLock(run_dir):`` trains while holding the lock, or raises a one-line :class:`ConfigError`
    naming the live process that holds it."""

    def __init__(self, run_dir: str):
        self.run_dir = run_dir
        self.path = os.path.join(run_dir, LOCK_FILE)
        self._file: IO[str] | None = None

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def release(self) -> None:
        if self._file is not None:
            self._file.close()  # closing the descriptor drops the lock
            self._file = None

    def acquire(self) -> None:
        os.makedirs(self.run_dir, exist_ok=True)
        f = open(self.path, "a+", encoding="utf-8")  # noqa: SIM115 - held open for the life of the process
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            holder = f.read().strip() or "another process"
            f.close()
            raise self._busy(holder) from None
        f.seek(0)
        f.truncate()
        started = datetime.datetime.now().isoformat(timespec="seconds")
        f.write(f"pid {os.getpid()} on {socket.gethostname()} (started {started}: {' '.join(sys.argv)[:300]})\n")
        f.flush()
        self._file = f

    def check_free(self) -> None:
        """The same one-line error as :meth:`acquire` when a live process holds the lock (without taking it)."""
        if not os.path.exists(self.path):
            return
        with open(self.path, encoding="utf-8") as f:
            try:
                fcntl.flock(f.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                raise self._busy(f.read().strip() or "another process") from None
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)

    def _busy(self, holder: str) -> ConfigError:
        return ConfigError(f"{self.run_dir} is in use: {holder} is training in it; wait for it to end, stop it, "
                           "or choose another hydra.run.dir")


def remove_stale_partial_saves(checkpoint_dir: str) -> list[str]:
    """Delete the temporary files that saves killed half-way left in ``checkpoint_dir``; returns their names.
    Only called while holding the run's lock, so no live save of this run can own one."""
    removed = []
    if not os.path.isdir(checkpoint_dir):
        return removed
    for name in os.listdir(checkpoint_dir):
        if _PARTIAL_SAVE.match(name):
            try:
                os.unlink(os.path.join(checkpoint_dir, name))
                removed.append(name)
            except FileNotFoundError:
                pass
    return removed


@dataclass
class RunContents:
    """What a run directory already holds."""

    last: str | None  # its last.ckpt
    hpc: str | None  # Lightning's SLURM requeue checkpoint (hpc_ckpt_N.ckpt)
    kept: list[str]  # other checkpoints
    epochs_logged: int  # lines of the loss history
    event_files: int

    @property
    def is_run(self) -> bool:
        # TensorBoard files alone (a run stopped in its first epoch, or by a setup error) are no run to keep: a
        # new run's event file purges them from TensorBoard's view (purge_step)
        return bool(self.last or self.hpc or self.kept or self.epochs_logged)

    def describe(self) -> str:
        parts = []
        if self.last:
            parts.append("checkpoints/last.ckpt")
        if self.kept:
            parts.append(f"{len(self.kept)} kept checkpoint(s)")
        if self.epochs_logged:
            parts.append(f"a loss history of {self.epochs_logged} epoch(s)")
        return ", ".join(parts) or "a run"


def run_contents(run_dir: str, checkpoint_dir: str) -> RunContents:
    last = os.path.join(checkpoint_dir, "last.ckpt")
    hpc = sorted(glob.glob(os.path.join(run_dir, "hpc_ckpt_*.ckpt")), key=_hpc_number)
    kept = [p for p in glob.glob(os.path.join(checkpoint_dir, "*.ckpt")) if os.path.basename(p) != "last.ckpt"]
    epochs = 0
    for history in glob.glob(os.path.join(run_dir, "**", HISTORY_FILE), recursive=True):
        with open(history, encoding="utf-8", errors="replace") as f:
            epochs += sum(1 for line in f if line.strip())
    events = glob.glob(os.path.join(run_dir, "**", "events.out.tfevents.*"), recursive=True)
    return RunContents(last=last if os.path.isfile(last) else None, hpc=hpc[-1] if hpc else None, kept=kept,
                       epochs_logged=epochs, event_files=len(events))


def _hpc_number(path: str) -> int:
    m = re.search(r"hpc_ckpt_(\d+)\.ckpt$", path)
    return int(m.group(1)) if m else -1


def resolve_resume(ckpt_path: str | None, run_dir: str, checkpoint_dir: str) -> str | None:
    """The checkpoint file to resume from, or ``None`` for a new run.

    ``ckpt_path``: ``null`` (a new run: refused where a run already is, except Lightning's own SLURM requeue),
    ``last`` (this run's ``last.ckpt``: an error when there is none), ``auto`` (``last`` when there is one, else
    a new run: for jobs that a scheduler requeues), or a file (which must exist).
    """
    contents = run_contents(run_dir, checkpoint_dir)
    if ckpt_path in (None, "", "null"):
        if contents.hpc and "SLURM_JOB_ID" in os.environ:
            return None  # Lightning resumes from its hpc_ckpt by itself
        if contents.is_run:
            raise ConfigError(f"{run_dir} already holds a run ({contents.describe()}): resume it with "
                              f"ckpt_path=last, or choose another hydra.run.dir to start a new run")
        return None
    if ckpt_path in ("last", "auto"):
        if contents.last:
            return contents.last
        if ckpt_path == "auto":
            return None
        if contents.is_run:
            raise ConfigError(f"ckpt_path=last: {run_dir} holds {contents.describe()} but no checkpoints/last.ckpt "
                              "to resume from (the run stopped before its first save): pass ckpt_path=<file> of "
                              "a kept checkpoint, or start a new run in another hydra.run.dir")
        raise ConfigError(f"ckpt_path=last: nothing to resume in {run_dir} (no checkpoints/last.ckpt): pass the "
                          "folder of the run to resume as hydra.run.dir=<run dir>, or drop ckpt_path to start a new run")
    path = os.path.expanduser(str(ckpt_path))
    if os.path.isdir(path):
        inside = next((c for c in (os.path.join(path, "last.ckpt"), os.path.join(path, "checkpoints", "last.ckpt"))
                       if os.path.isfile(c)), None)
        raise ConfigError(f"ckpt_path={ckpt_path} is a directory: pass a .ckpt file"
                          + (f" (ckpt_path={inside})" if inside else "") + ", or ckpt_path=last with "
                          "hydra.run.dir=<run dir>")
    if not os.path.isfile(path):
        raise ConfigError(f"ckpt_path={ckpt_path}: no such file; pass an existing .ckpt (e.g. <run>/checkpoints/"
                          "last.ckpt) or ckpt_path=last with hydra.run.dir=<run dir>")
    return path


HYDRA_RECORD = ("config.yaml", "hydra.yaml", "overrides.yaml")


def _fresh(path: str, since: float) -> bool:
    """Whether ``path`` (a file, or every file below a folder) was written at or after ``since`` (2 s of slack for
    file systems with coarse timestamps)."""
    files = [path] if os.path.isfile(path) else [os.path.join(d, f) for d, _, fs in os.walk(path) for f in fs]
    try:
        return all(os.path.getmtime(f) >= since - 2 for f in files)
    except OSError:
        return False


def discard_failed_start(run_dir: str, record_subdir: str | None, log_name: str, since: float,
                         keep_folder: bool = False) -> bool:
    """Remove what a start refused before training wrote into ``run_dir`` (only files written since ``since``):
    Hydra's record of it (``record_subdir``: ``.hydra``, or ``.hydra/resumed/<time>`` for a resume into an existing
    run), and, for a folder holding nothing else, its log and lock file and the folder itself (unless
    ``keep_folder``: it was there before). Returns whether the folder is gone."""
    if not os.path.isdir(run_dir):
        return False
    record = os.path.join(run_dir, record_subdir) if record_subdir else None
    if record and os.path.normpath(record_subdir) != ".hydra":  # a resume's own record inside an existing run
        if os.path.isdir(record) and _fresh(record, since):
            shutil.rmtree(record, ignore_errors=True)
            parent = os.path.dirname(record)
            if os.path.basename(parent) == "resumed" and not os.listdir(parent):
                os.rmdir(parent)
        return False
    ours = {LOCK_FILE, log_name} | ({os.path.normpath(record_subdir)} if record_subdir else set())
    entries = set(os.listdir(run_dir))
    if not entries <= ours:
        return False  # results, or files of someone else: keep everything
    if record and os.path.isdir(record) and not (set(os.listdir(record)) <= set(HYDRA_RECORD) and _fresh(record, since)):
        return False
    if any(not _fresh(os.path.join(run_dir, e), since) for e in entries):
        return False
    if keep_folder:
        for e in entries:
            target = os.path.join(run_dir, e)
            if os.path.isdir(target):
                shutil.rmtree(target, ignore_errors=True)
            else:
                os.unlink(target)
        return False
    shutil.rmtree(run_dir, ignore_errors=True)
    return True

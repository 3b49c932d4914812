"""Resuming and stopping runs: the checkpoint to resume from is checked before anything is built, and a run that
stops early (a signal, a full disk, a checkpoint that does not fit) ends with one line that says what was kept
and the command that continues it. See docs/faults.md for what survives which fault."""

from __future__ import annotations

import contextlib
import errno
import os
import pickle
import shlex
import shutil
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import lightning as L
from lightning.pytorch.utilities.exceptions import SIGTERMException
from omegaconf import DictConfig

from lit_gans import compat
from lit_gans.compat import checkpoint_progress
from lit_gans.errors import ConfigError, Interrupted, TrainingError

# Overrides that the resume command sets itself.
_RESUME_KEYS = ("hydra.run.dir", "ckpt_path", "resume")
_SIGNAL_EXIT = {"SIGTERM": 143, "SIGINT": 130}  # 128 + the signal's number, as shells report it


@dataclass
class ResumePoint:
    path: str
    epoch: int | None  # the epoch (0-based) it was taken in
    global_step: int | None  # optimizer steps
    batches_done: int  # batches trained: the first logging step of the resumed run
    epochs_done: int | None = None  # epochs trained to their end (Lightning's fit-loop progress)
    batches_in_epoch: int = 0  # batches of the interrupted epoch already trained (0: it stopped between epochs)
    saved: dict[str, Any] = field(default_factory=dict)  # the checkpoint's records: hyper-parameters, run_config

    @property
    def mid_epoch(self) -> bool:
        return self.batches_in_epoch > 0

    def describe(self) -> str:
        """Where the run continues, epochs counted from 1 as the rest of the output counts them: ``after epoch
        2 (continuing with epoch 3)`` or ``in epoch 3, after its batch 4``."""
        if self.epochs_done is None:
            return "(the checkpoint does not say its epoch)"
        if self.batches_in_epoch:
            return f"in epoch {self.epochs_done + 1}, after its batch {self.batches_in_epoch}"
        if self.epochs_done == 0:
            return "before its first epoch"
        return f"after epoch {self.epochs_done} (continuing with epoch {self.epochs_done + 1})"


def _short(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return (text[0] if text else type(err).__name__)[:160]


def inspect_checkpoint(path: str, cfg: DictConfig) -> ResumePoint:
    """Open ``path`` (memory-mapped, tensors not read) as plain data and check that it is a checkpoint of the
    configured model. One-line :class:`ConfigError` for a folder, a truncated or foreign file, a file holding
    pickled code (refused, never run) or another model's checkpoint."""
    return resume_point(path, read_resume_checkpoint(path, cfg))


def read_resume_checkpoint(path: str, cfg: DictConfig) -> dict[str, Any]:
    """The checkpoint of ``ckpt_path=`` as plain data (``weights_only``), checked against the configured model."""
    from lit_gans.utils.safe_load import load_data

    if os.path.isdir(path):
        raise ConfigError(f"ckpt_path={path} is a directory: pass a .ckpt file (e.g. {os.path.join(path, 'last.ckpt')}"
                          "), or ckpt_path=last with hydra.run.dir=<run dir>")
    try:
        ckpt = load_data(path, "checkpoint", "pass a .ckpt written by lit_gans' train.py", mmap=True)
    except (RuntimeError, EOFError, OSError, zipfile.BadZipFile, ValueError, pickle.UnpicklingError) as err:
        if isinstance(err, ConfigError):
            raise
        raise ConfigError(f"ckpt_path={path} is not a readable checkpoint ({_short(err)}): the file may be truncated "
                          "or of another kind; pass another .ckpt (e.g. a kept checkpoints/epoch_XXXX.ckpt)") from None
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt:
        raise ConfigError(f"ckpt_path={path} is not a Lightning checkpoint (no state_dict): pass a .ckpt written by "
                          "train.py")
    want = _class_path(cfg.model.get("_target_"))
    have = ckpt.get("model_class")
    if want and have and have != want:
        raise ConfigError(f"ckpt_path={path} is a checkpoint of {str(have).rsplit('.', 1)[-1]}, but this config builds "
                          f"{want.rsplit('.', 1)[-1]}: pass the model= the run was trained with (its "
                          ".hydra/overrides.yaml lists it)")
    return ckpt


def resume_point(path: str, ckpt: dict[str, Any]) -> ResumePoint:
    logger_state = (ckpt.get("callbacks") or {}).get("LossLogger") or {}
    done, in_epoch = checkpoint_progress(ckpt)
    saved = {k: ckpt.get(k) for k in ("hyper_parameters", "datamodule_hyper_parameters", "run_config")}
    return ResumePoint(path, ckpt.get("epoch"), ckpt.get("global_step"), int(logger_state.get("batches_done", 0)),
                       done, in_epoch, saved)


def _class_path(target: str | None) -> str | None:
    if not target:
        return None
    try:
        from hydra.utils import get_class

        cls = get_class(target)
    except Exception:  # noqa: BLE001 - a wrong _target_ is reported when the model is built
        return None
    return f"{cls.__module__}.{cls.__qualname__}"


def resume_command(cfg: DictConfig | None, run_dir: str) -> str:
    """``python train.py <the run's overrides> hydra.run.dir=<run> ckpt_path=last``."""
    overrides: list[str] = []
    try:
        from hydra.core.hydra_config import HydraConfig

        overrides = [o for o in HydraConfig.get().overrides.task
                     if o.split("=", 1)[0].lstrip("+~") not in _RESUME_KEYS]
    except (ValueError, AttributeError):  # no Hydra run (tests composing the config by hand)
        pass
    args = [*overrides, f"hydra.run.dir={run_dir}", "ckpt_path=last"]
    return "python train.py " + " ".join(shlex.quote(a) for a in args)


def _last_checkpoint(trainer: L.Trainer) -> Any:
    from lit_gans.callbacks.checkpointing import LastCheckpoint

    return next((c for c in trainer.callbacks if isinstance(c, LastCheckpoint)), None)


def _where(trainer: L.Trainer) -> str:
    """``epoch 2, batch 1 of 3`` (1-based), or ``at the end of epoch 2`` when the stop came after the epoch's end
    (Lightning lets an epoch whose last batch has run finish before it stops)."""
    nb = trainer.num_training_batches
    done = compat.batches_completed_in_epoch(trainer)
    if isinstance(nb, int) and done >= nb:
        return f"at the end of epoch {trainer.current_epoch}"
    of = f" of {nb}" if isinstance(nb, int) else ""
    return f"in epoch {trainer.current_epoch + 1}, batch {done}{of}"


@contextlib.contextmanager
def stopped_runs_explained(cfg: DictConfig, trainer: L.Trainer, ckpt_path: str | None) -> Iterator[None]:
    """Around ``trainer.fit``: turn the ways a run stops early into one line with the way to continue.

    - SIGTERM / Ctrl-C: :class:`Interrupted` (exit status 143 / 130) naming the checkpoint just written;
    - a second Ctrl-C (Lightning exits 1 without saving): the last checkpoint written before it;
    - a full disk: the file it failed on, the free space, the last complete checkpoint (kept: saves are atomic);
    - weights that do not fit the configured networks: the overrides to use.
    """
    run_dir = str(cfg.paths.output_dir)
    last = None
    try:
        last = _last_checkpoint(trainer)
        yield
    except SIGTERMException:
        signame = (last.stop_signal if last is not None else None) or "SIGTERM"
        code = _SIGNAL_EXIT.get(signame, 143)
        if last is not None and last.last_saved_path:
            raise Interrupted(f"stopped by {signame} {_where(trainer)}: saved {last.last_saved_path}; "
                              f"resume with: {resume_command(cfg, run_dir)}", exit_code=code) from None
        raise Interrupted(f"stopped by {signame} {_where(trainer)}; no checkpoint was written (checkpointing "
                          "is off for this run)", exit_code=code) from None
    except SystemExit as exc:
        if last is None or not last.forced_stop:
            raise
        kept = _describe_kept(last, cfg, ckpt_path)
        raise Interrupted(f"stopped at once by a second Ctrl-C {_where(trainer)}, without saving; {kept}",
                          exit_code=130) from exc
    except OSError as err:
        if err.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        where = err.filename or run_dir
        free = _free_space(os.path.dirname(str(where)) or run_dir)
        kept = _describe_kept(last, cfg, ckpt_path)
        raise TrainingError(f"no space left on the device while writing {where} ({free} free): training stopped; "
                            f"{kept}; free some space first") from None
    except RuntimeError as err:
        if "Error(s) in loading state_dict" not in str(err) or not ckpt_path:
            raise
        detail = str(err).splitlines()[1].strip() if len(str(err).splitlines()) > 1 else ""
        raise ConfigError(f"ckpt_path={ckpt_path}: its weights do not fit the networks of this config ({detail[:120]}): "
                          "resume with the overrides the run was started with (its .hydra/overrides.yaml)") from None
    finally:
        if last is not None:
            last.restore_signals()  # Lightning skips the callbacks' teardown when a run is stopped


def _describe_kept(last: Any, cfg: DictConfig, ckpt_path: str | None) -> str:
    path = getattr(last, "last_saved_path", None) or (last.path if last is not None and os.path.isfile(last.path) else None)
    path = path or ckpt_path
    if not path:
        return "no checkpoint had been written yet"
    return f"the last complete checkpoint is {path}; resume with: {resume_command(cfg, str(cfg.paths.output_dir))}"


def _free_space(path: str) -> str:
    while path and not os.path.exists(path):
        path = os.path.dirname(path)
    try:
        free = shutil.disk_usage(path or ".").free
    except OSError:
        return "unknown"
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if free < 1024 or unit == "TB":
            return f"{free:.0f} {unit}" if unit == "B" else f"{free:.1f} {unit}"
        free /= 1024
    return "unknown"

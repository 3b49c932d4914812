"""What a resumed run needs beyond Lightning's own checkpoint content: the global random states, and the run's config
(with the changes a resume was started with applied to the restored optimizers)."""

from __future__ import annotations

import logging
import random
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback

log = logging.getLogger("lit_gans.train")


class RNGState(Callback):
    """Saves torch (CPU and CUDA), NumPy and Python random states in checkpoints and restores them on resume,
    so the random draws of the steps after a resume (dropout, timesteps, patch picks, image-pool choices)
    are those of an uninterrupted run. Data order does not depend on them (see ``lit_gans.data.sampling``).

    Under DDP the checkpoint holds rank 0's states; every rank restores them and then offsets its torch
    generator by its rank, as a fresh seeded DDP run would differ per rank.
    """

    def state_dict(self) -> dict[str, Any]:
        np_state = np.random.get_state()
        state = {
            "torch": torch.get_rng_state(),
            "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *map(float, np_state[2:])],
            "python": random.getstate(),
        }
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            state["cuda"] = torch.cuda.get_rng_state_all()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._to_load = state

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        state = getattr(self, "_to_load", None)
        if state is None:
            return
        self._to_load = None
        torch.set_rng_state(state["torch"])
        name, keys, pos, gauss, cached = state["numpy"]
        np.random.set_state((name, keys.numpy().astype(np.uint32), int(pos), int(gauss), float(cached)))
        py = state["python"]
        random.setstate((py[0], tuple(py[1]), py[2]))
        if "cuda" in state and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda"])
        if trainer.world_size > 1 and trainer.global_rank > 0:
            torch.manual_seed(int(torch.randint(2**62, ())) + trainer.global_rank)


class RunRecord(Callback):
    """Writes the run's composed config into every checkpoint (``checkpoint["run_config"]``: plain values, so the
    file still loads with ``weights_only``), and makes a resumed run train with what it was started with.

    Lightning restores the optimizers' and schedulers' state from the checkpoint, their learning rates and other
    hyper-parameters included. When ``changes`` (:func:`lit_gans.resume_changes.changes_on_resume`) hold
    optimizer keys, the values the new config gives each parameter group (read at fit start, when the optimizers
    are configured and not yet restored) are set on the restored groups before the first batch; a group's
    learning rate keeps its schedule's current factor, and the schedule's base learning rate becomes the new one.
    Then the changes are logged in one line (``resumed with changes: model.optimizer.lr 0.0001 -> 0.05 ...``) and
    recorded in ``<run>/.hydra/changes.yaml``.

    ``train.py`` adds it itself (it is not one of the configurable callbacks).
    """

    def __init__(self, config: dict[str, Any] | None = None, changes: list[Any] | None = None,
                 run_dir: str | None = None, checkpoint: str | None = None, where: str = "",
                 overrides: list[str] | None = None):
        self.config = config
        self.changes = list(changes or [])
        self.run_dir, self.checkpoint, self.where = run_dir, checkpoint, where
        self.overrides = list(overrides or [])
        self._configured: list[list[dict[str, Any]]] | None = None
        self.message: str | None = None

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]) -> None:
        if self.config is not None:
            checkpoint["run_config"] = self.config

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if any(c.kind == "optimizer" for c in self.changes):
            self._configured = [[{k: v for k, v in g.items() if k != "params"} for g in opt.param_groups]
                                for opt in trainer.optimizers]

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not self.changes:
            return
        detail = self._apply_optimizer_values(trainer, pl_module) if self._configured is not None else ""
        self._report(trainer, detail)

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.changes:  # nothing left to train (e.g. max_epochs already reached): still say what was asked
            self._report(trainer, "")

    def _report(self, trainer: L.Trainer, detail: str) -> None:
        self._configured = None
        self.message = "resumed with changes: " + ", ".join(c.describe() for c in self.changes) + detail
        if trainer.is_global_zero:
            from lit_gans.resume_changes import record_changes

            log.info(self.message)
            if self.run_dir:
                record_changes(self.run_dir, self.changes, self.overrides, self.checkpoint or "", self.where)
        self.changes = []

    def _apply_optimizer_values(self, trainer: L.Trainer, pl_module: L.LightningModule) -> str:
        """Set the configured values on the restored optimizers; returns ``"; learning rates: ..."`` naming the
        networks whose learning rate changed and those whose did not."""
        owner = {id(p): name.split(".", 1)[0] for name, p in pl_module.named_parameters()}
        changed: dict[tuple[float, float], list[str]] = {}
        kept: dict[float, list[str]] = {}
        for opt, configured in zip(trainer.optimizers, self._configured or [], strict=True):
            schedulers = [c.scheduler for c in trainer.lr_scheduler_configs if c.scheduler.optimizer is opt]
            for j, (group, new) in enumerate(zip(opt.param_groups, configured, strict=True)):
                for key, value in new.items():
                    if key not in ("lr", "initial_lr"):
                        group[key] = value
                old_base = float(group.get("initial_lr", group["lr"]))
                new_base = float(new.get("initial_lr", new["lr"]))
                name = group.get("name") or ", ".join(dict.fromkeys(owner.get(id(p), "?") for p in group["params"]))
                if new_base == old_base:
                    kept.setdefault(old_base, []).append(name)
                    continue
                factor = float(group["lr"]) / old_base if old_base else 1.0  # the schedule's current factor
                group["lr"] = new_base * factor
                if "initial_lr" in group:
                    group["initial_lr"] = new_base
                for scheduler in schedulers:
                    if hasattr(scheduler, "base_lrs"):
                        scheduler.base_lrs[j] = new_base
                changed.setdefault((old_base, new_base), []).append(name)
        if not changed:
            return ""
        parts = [f"{', '.join(names)} {old:g} -> {new:g}" for (old, new), names in changed.items()]
        parts += [f"{', '.join(names)} {lr:g} (unchanged)" for lr, names in kept.items()]
        return "; learning rates: " + "; ".join(parts)

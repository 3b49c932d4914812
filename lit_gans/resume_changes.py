"""What a resumed run was asked to change, and whether it can.

A run resumed with other overrides than the checkpoint's gets them, or is refused; it never trains on in silence
with the checkpoint's values while its config and new checkpoints say otherwise. The old values are the
checkpoint's own record: the model's constructor arguments (``hyper_parameters``, loss and augmentation blocks
included), the data module's (``datamodule_hyper_parameters``) and the composed trainer config that
:class:`lit_gans.callbacks.RunRecord` writes (``run_config``). The new ones are those of the objects built for
this start. Each changed key is one of:

- *applied by building*: loss weights and modes, augmentation, EMA decay, data (batch size ...), trainer
  (``max_epochs`` ...): the objects built from the new config use them, and the restored state does not override
  them;
- *optimizer*: ``model.optimizer.*`` (but its class), ``model.*_lr``, ``model.scheduler.*`` (but its class):
  Lightning restores the optimizers' and schedulers' state from the checkpoint, learning rates included, so
  :class:`lit_gans.callbacks.RunRecord` sets the configured values on the restored optimizers (and the schedulers'
  base learning rates) before the first batch;
- *fixed*: everything else of the model (network sizes, normalisation, initialisation, the optimizer's class):
  refused with one line, since the checkpoint's weights and optimizer state are those of the old value; and data
  keys other than loader settings when the checkpoint was taken in the middle of an epoch (the batches to skip are
  counted in the old batches).
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from omegaconf import DictConfig, OmegaConf

from lit_gans.errors import ConfigError

# Model arguments that take effect when the model is built from the new config (nothing restored overrides them).
APPLIED_MODEL = ("loss", "aug", "ema_beta", "ema_warmup", "compile", "channels_last", "fused_optimizer", "vae",
                 "sampling", "eval_mode", "checkpointing", "fan_path", "ds_paths", "ds_detach_second")
OPTIMIZER_MODEL = ("optimizer", "scheduler")
# Data keys that may change inside an epoch (they do not change which items the remaining batches hold).
DATA_ANYTIME = ("num_workers", "pin_memory", "persistent_workers", "prefetch_factor")
# Trainer keys that say where a run writes, not how it trains.
TRAINER_SKIP = ("default_root_dir", "plugins", "callbacks", "logger")
# Config groups a checkpoint's run record leaves out (where and how a run is launched and logged).
RECORD_SKIP = ("hydra", "paths", "logger", "callbacks", "ckpt_path", "resume")
CHANGES_FILE = "changes.yaml"
UNSET = "(unset)"


@dataclass
class Change:
    key: str  # the config key, e.g. model.optimizer.lr
    old: Any
    new: Any
    kind: str  # "applied" | "optimizer"

    def describe(self) -> str:
        return f"{self.key} {show(self.old)} -> {show(self.new)}"


def show(value: Any) -> str:
    if value is UNSET:
        return UNSET
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(show(v) for v in value) + "]"
    return str(value)


def _norm(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_norm(v) for v in value]
    if isinstance(value, list):
        return [_norm(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _norm(v) for k, v in value.items()}
    return value


def diff(prefix: str, old: Any, new: Any, nested: bool = True) -> list[tuple[str, Any, Any]]:
    """``(key, old, new)`` of the leaves that differ. Keys on one side only count (as ``(unset)``) below the
    top level; at the top level (``nested=False``) they are arguments another lit_gans version added or
    removed, not something asked for."""
    out: list[tuple[str, Any, Any]] = []
    if isinstance(old, Mapping) and isinstance(new, Mapping):
        keys = list(old) + [k for k in new if k not in old]
        for k in keys:
            if k == "_partial_":
                continue
            if k not in old or k not in new:
                if nested:
                    out.append((f"{prefix}.{k}", old.get(k, UNSET), new.get(k, UNSET)))
                continue
            out += diff(f"{prefix}.{k}", old[k], new[k])
        return out
    if _norm(old) != _norm(new):
        out.append((prefix, old, new))
    return out


def plain(node: Any) -> Any:
    """A config node as plain values, resolved (as written where an interpolation does not resolve, e.g. a
    config composed without Hydra's runtime)."""
    try:
        return OmegaConf.to_container(node, resolve=True, throw_on_missing=False)
    except Exception:  # noqa: BLE001 - any resolution failure: keep the text of the interpolations
        return OmegaConf.to_container(node, resolve=False)


def plain_run_config(cfg: DictConfig) -> dict[str, Any]:
    """The composed config as plain values for checkpoints (``run_config``), without the groups that say where a
    run writes and how it is launched."""
    return {k: v for k, v in plain(cfg).items() if k not in RECORD_SKIP}


def changes_on_resume(path: str, ckpt: Mapping[str, Any], cfg: DictConfig, model: Any, datamodule: Any,
                      mid_epoch: str | None = None) -> list[Change]:
    """The keys this start changes against the checkpoint ``ckpt`` at ``path`` (read as plain data), classified; a
    one-line :class:`ConfigError` for the first key that cannot change. ``mid_epoch``: where the checkpoint was
    taken when that is inside an epoch (``in epoch 3, after its batch 4``), else ``None``."""
    from lit_gans.inference import current_model_args

    changes: list[Change] = []
    old_model = current_model_args(type(model), dict(ckpt.get("hyper_parameters") or {}))
    new_model = dict(model.hparams)
    for key in [k for k in old_model if k in new_model]:
        prefix = "model" if key not in ("loss", "aug") else ""
        for name, old, new in diff(f"{prefix}.{key}".lstrip("."), old_model[key], new_model[key]):
            kind = _model_kind(key, name, old, new)
            if kind == "fixed":
                raise ConfigError(f"{name} cannot change on resume ({show(old)} in {path}, {show(new)} now): "
                                  f"{_why_fixed(key, name)}; resume with {name}={show(old)}, or start a new run in "
                                  "another hydra.run.dir")
            changes.append(Change(name, old, new, kind))
    old_data = ckpt.get("datamodule_hyper_parameters")
    new_data = dict(getattr(datamodule, "hparams", {}) or {})
    if isinstance(old_data, Mapping) and new_data:
        for name, old, new in diff("data", dict(old_data), new_data, nested=False):
            if mid_epoch and name.split(".")[1] not in DATA_ANYTIME:
                raise ConfigError(f"{name} can change on resume only between epochs, and {path} was saved "
                                  f"{mid_epoch} (its remaining batches are counted in the old batches): resume "
                                  f"with {name}={show(old)}, and change it from a checkpoint saved at an epoch's end")
            changes.append(Change(name, old, new, "applied"))
    old_trainer = (ckpt.get("run_config") or {}).get("trainer")
    if isinstance(old_trainer, Mapping) and cfg.get("trainer") is not None:
        new_trainer = plain(cfg.trainer)
        for name, old, new in diff("trainer", dict(old_trainer), new_trainer, nested=False):
            if name.split(".")[1] not in TRAINER_SKIP:
                changes.append(Change(name, old, new, "applied"))
    return changes


def _model_kind(top: str, name: str, old: Any, new: Any) -> str:
    if top in APPLIED_MODEL:
        return "applied"
    if top.endswith("_lr"):
        return "optimizer"
    if top in OPTIMIZER_MODEL:
        whole = name == f"model.{top}"  # set or unset as a whole (a schedule added or dropped)
        return "fixed" if whole or name.endswith("._target_") else "optimizer"
    return "fixed"


def _why_fixed(top: str, name: str) -> str:
    if top == "optimizer":
        return "the checkpoint holds the state of the old optimizer class"
    if top == "scheduler":
        return "the checkpoint holds the state of the old learning-rate schedule"
    if top.startswith("init"):
        return "it only sets a new run's first weights, and the weights come from the checkpoint"
    return "the checkpoint's networks and weights were built with the old value"


def overrides_behind(changes: list[Change], task_overrides: list[str]) -> list[str]:
    """The command-line overrides that made ``changes`` (a key, or a group that holds it: ``loss=nonsat_r1``)."""
    keys = [c.key for c in changes]
    out = []
    for o in task_overrides:
        k = o.split("=", 1)[0].lstrip("+~")
        if any(key == k or key.startswith(k + ".") for key in keys):
            out.append(o)
    return out


def record_changes(run_dir: str, changes: list[Change], overrides: list[str], checkpoint: str, where: str) -> str:
    """Append this resume's changes to ``<run>/.hydra/changes.yaml``, beside the run's original
    ``overrides.yaml`` (``train.py resume=<run>`` applies them after those); returns the file's path."""
    import yaml

    folder = os.path.join(run_dir, ".hydra")
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, CHANGES_FILE)
    records = read_changes(run_dir)
    records.append({
        "time": datetime.datetime.now().isoformat(timespec="seconds"), "checkpoint": str(checkpoint),
        "resumed": where, "overrides": list(overrides),
        "changes": {c.key: {"from": _plain(c.old), "to": _plain(c.new)} for c in changes},
    })
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        yaml.safe_dump(records, f, sort_keys=False)
    os.replace(tmp, path)
    return path


def read_changes(run_dir: str) -> list[dict[str, Any]]:
    """The records of ``<run>/.hydra/changes.yaml`` (``[]`` when there is none or it cannot be read)."""
    import yaml

    path = os.path.join(run_dir, ".hydra", CHANGES_FILE)
    try:
        with open(path, encoding="utf-8") as f:
            records = yaml.safe_load(f)
    except (OSError, yaml.YAMLError):
        return []
    return [r for r in records if isinstance(r, dict)] if isinstance(records, list) else []


def _plain(value: Any) -> Any:
    return UNSET if value is UNSET else _norm(value)

"""Checks of a composed training config that run before anything is built: a wrong value or combination is
one line naming the key and the fix, never a traceback at the first step (or silence).

- ``trainer.*``: every value against the type of ``lightning.Trainer``'s argument of that name (its own type
  hints), plus the ranges Lightning would assert on later;
- ``data.*``: positive batch and image sizes;
- ``loss.*``: no negative weight (a term that should push the other way has its own sign), intervals >= 1;
- ``model.*``: positive network sizes, learning rates >= 0, an EMA decay in [0, 1);
- ``model`` x ``data``: the items the data gives are the ones the model trains on (multi-domain, unpaired or
  paired), checked on the classes before any interpolation between the two groups is resolved.
"""

from __future__ import annotations

import datetime
import functools
import inspect
import numbers
import typing
from collections.abc import Iterable, Mapping
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from lit_gans.errors import ConfigError

# Lower bounds of Trainer arguments that Lightning checks only later (by assert, or not at all).
_TRAINER_MIN = {"max_epochs": -1, "min_epochs": 0, "max_steps": -1, "min_steps": 0, "num_nodes": 1,
                "limit_train_batches": 0, "limit_val_batches": 0, "limit_test_batches": 0, "limit_predict_batches": 0,
                "overfit_batches": 0, "check_val_every_n_epoch": 1, "num_sanity_val_steps": -1, "log_every_n_steps": 0,
                "accumulate_grad_batches": 1, "reload_dataloaders_every_n_epochs": 0, "gradient_clip_val": 0}
# The values lit_gans adds to Lightning's (resolved before the Trainer is built).
_TRAINER_EXTRA = {"precision": {"auto"}, "benchmark": {None}}
_DATA_POSITIVE = ("batch_size", "img_size", "crop_size", "load_size", "per_domain", "latent_dim")
_LAYOUT_WORDS = {"domains": "multi-domain items (StarGAN v2)", "unpaired": "unpaired A/B items",
                 "paired": "paired A/B items"}
_LAYOUT_DATA = {"domains": "data=synthetic, data=domains, or data=latents with a domains file",
                "unpaired": "data=synthetic_unpaired, data=unpaired, or data=latents with an unpaired file",
                "paired": "data=synthetic_paired, data=paired, or data=latents with a paired file"}


def check_config(cfg: DictConfig) -> None:
    """Raise a one-line :class:`ConfigError` for the first problem found, before anything is instantiated."""
    check_model_and_data(cfg)
    if cfg.get("model") is not None:
        check_model(cfg.model)
    if cfg.get("trainer") is not None:
        check_trainer(cfg.trainer)
    if cfg.get("data") is not None:
        check_data(cfg.data)
    if cfg.get("loss") is not None:
        check_loss(cfg.loss)


# ---------------------------------------------------------------------------------------------- trainer
@functools.cache
def _trainer_hints() -> dict[str, Any]:
    import lightning as L

    try:
        return typing.get_type_hints(L.Trainer.__init__)
    except Exception:  # noqa: BLE001 - a Lightning whose hints do not resolve: skip the type checks
        return {}


def check_trainer(trainer: DictConfig) -> None:
    hints = _trainer_hints()
    for key in trainer:
        if key.startswith("_") or key in ("callbacks", "logger", "plugins") or OmegaConf.is_interpolation(trainer, key):
            continue
        value = trainer[key]
        if value in _TRAINER_EXTRA.get(key, ()):
            continue
        hint = hints.get(key)
        if hint is not None and not _matches(value, hint):
            raise ConfigError(f"trainer.{key}={_show(value)}: expected {_describe(hint)}; fix the override "
                              f"(e.g. trainer.{key}={_example(key, hint)})")
        low = _TRAINER_MIN.get(key)
        if low is not None and isinstance(value, numbers.Real) and not isinstance(value, bool) and value < low:
            raise ConfigError(f"trainer.{key}={_show(value)}: must be >= {low}")
    check_devices(trainer)


def _gpu_count() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def check_devices(trainer: DictConfig) -> None:
    """``trainer.devices``: a positive count, -1 (all), ``auto`` or a non-empty list; ``trainer.accelerator=gpu``
    / ``cuda`` only where PyTorch sees a CUDA GPU (Lightning reports both later, in several lines)."""
    accelerator = trainer.get("accelerator") if not OmegaConf.is_interpolation(trainer, "accelerator") else None
    if isinstance(accelerator, str) and accelerator.lower() in ("gpu", "cuda") and _gpu_count() == 0:
        raise ConfigError(f"trainer.accelerator={accelerator}: PyTorch sees no CUDA GPU here (torch.cuda.is_available() "
                          "is false): use trainer.accelerator=auto (the GPU when there is one) or cpu")
    if "devices" not in trainer or OmegaConf.is_interpolation(trainer, "devices"):
        return
    devices = trainer.devices
    text = str(devices).strip()
    bad = (isinstance(devices, bool)
           or (isinstance(devices, int) and devices != -1 and devices < 1)
           or (isinstance(devices, (list, ListConfig)) and len(devices) == 0)
           or (isinstance(devices, str) and text not in ("auto", "-1")
               and not all(p.strip().isdigit() for p in text.split(",") if p.strip()))
           or (isinstance(devices, str) and text.isdigit() and int(text) < 1))
    if bad:
        raise ConfigError(f"trainer.devices={_show(devices)}: pass a number of devices >= 1 (e.g. trainer.devices=1), "
                          "-1 for all of them, auto, or a list of device indices")


def _matches(value: Any, hint: Any) -> bool:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if hint is Any:
        return True
    if hint is type(None):
        return value is None
    if origin is typing.Union:
        return any(_matches(value, a) for a in args)
    if origin is typing.Literal:
        return any(value == a and type(value) is type(a) for a in args)
    if isinstance(value, DictConfig) and "_target_" in value:
        return True  # an object Hydra instantiates: its own constructor checks it
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, numbers.Real) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    if origin in (list, Iterable) or hint in (list,):
        return isinstance(value, (list, tuple, ListConfig))
    if origin is dict or hint is dict:
        return isinstance(value, (dict, DictConfig))
    if hint is datetime.timedelta:
        return isinstance(value, datetime.timedelta)
    if inspect.isclass(hint):
        return isinstance(value, hint)
    return True


def _describe(hint: Any) -> str:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is typing.Union:
        parts: list[str] = []
        for a in args:
            d = _describe(a)
            if d and d not in parts:
                parts.append(d)
        return " or ".join(parts)
    if origin is typing.Literal:
        return "one of " + ", ".join(str(a) for a in args)
    names = {bool: "true/false", int: "an integer", float: "a number", str: "a string", type(None): "null",
             datetime.timedelta: "a duration"}
    if hint in names:
        return names[hint]
    if origin in (list, Iterable):
        return "a list"
    if origin is dict:
        return "a mapping"
    return ""


def _example(key: str, hint: Any) -> str:
    examples = {"max_epochs": "10", "min_epochs": "1", "max_steps": "1000", "precision": "bf16-mixed",
                "devices": "1", "limit_train_batches": "100", "log_every_n_steps": "10", "max_time": "00:12:00:00"}
    if key in examples:
        return examples[key]
    args = typing.get_args(hint)
    if bool in args or hint is bool:
        return "true"
    return "1"


def _show(value: Any) -> str:
    if isinstance(value, (DictConfig, ListConfig)):
        return str(OmegaConf.to_container(value))
    return "null" if value is None else str(value).lower() if isinstance(value, bool) else str(value)


# ---------------------------------------------------------------------------------------------- model
# Network sizes (widths, channels, image sides, code sizes): positive integers where a model has them.
_MODEL_POSITIVE = ("img_size", "dim", "max_conv_dim", "style_dim", "latent_dim", "mapping_dim", "in_channels",
                   "out_channels", "ngf", "ndf", "nce_dim", "f_s_width", "channels", "num_downs", "norm_groups",
                   "num_head_channels", "num_heads", "num_scales", "num_domains", "num_classes")


def check_model(model: DictConfig) -> None:
    for key in _MODEL_POSITIVE:
        if key not in model or OmegaConf.is_interpolation(model, key) or OmegaConf.is_missing(model, key):
            continue
        value = model[key]
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ConfigError(f"model.{key}={_show(value)}: must be a positive integer (a network size; the net= "
                              "presets give working sets, e.g. net=stargan_small)")
    lrs = [("optimizer.lr", model.optimizer.get("lr"))] if isinstance(model.get("optimizer"), DictConfig) else []
    lrs += [(k, model[k]) for k in model if isinstance(k, str) and k.endswith("_lr")
            and not OmegaConf.is_interpolation(model, k)]
    for key, value in lrs:
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or value < 0:
            raise ConfigError(f"model.{key}={_show(value)}: a learning rate must be a number >= 0 (0 freezes the "
                              f"networks it updates), e.g. model.{key}=1e-4")
    beta = model.get("ema_beta") if "ema_beta" in model and not OmegaConf.is_interpolation(model, "ema_beta") else None
    if beta is not None and (isinstance(beta, bool) or not isinstance(beta, numbers.Real) or not 0 <= beta < 1):
        raise ConfigError(f"model.ema_beta={_show(beta)}: the moving average's decay per update must be >= 0 and < 1 "
                          "(1 would never move from the first weights), e.g. model.ema_beta=0.999")


# ---------------------------------------------------------------------------------------------- data
def check_data(data: DictConfig) -> None:
    for key in _DATA_POSITIVE:
        if key not in data or OmegaConf.is_interpolation(data, key):
            continue
        value = data[key]
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ConfigError(f"data.{key}={_show(value)}: must be a positive integer (e.g. data.{key}="
                              f"{'8' if key == 'batch_size' else '64'})")
    workers = data.get("num_workers") if "num_workers" in data else None
    if workers is not None and workers != "auto" and (isinstance(workers, bool) or not isinstance(workers, int)
                                                       or workers < 0):
        raise ConfigError(f"data.num_workers={_show(workers)}: must be auto or an integer >= 0 (0: load in the "
                          "training process)")


# ---------------------------------------------------------------------------------------------- loss
def check_loss(loss: DictConfig) -> None:
    for path, value in _leaves(loss, "loss"):
        name = path.rsplit(".", 1)[-1]
        is_weight = name.startswith(("w_", "lambda_")) or name == "weight"
        if is_weight and isinstance(value, numbers.Real) and not isinstance(value, bool) and value < 0:
            raise ConfigError(f"{path}={value}: a loss weight must be >= 0 (0 turns the term off; a term that "
                              "should push the other way, like ds, has its own sign)")
    interval = loss.get("r1_interval") if "r1_interval" in loss else None
    if interval is not None and (isinstance(interval, bool) or not isinstance(interval, int) or interval < 1):
        raise ConfigError(f"loss.r1_interval={_show(interval)}: must be an integer >= 1 (1: R1 on every batch)")
    decay = loss.get("ds_decay_epochs") if "ds_decay_epochs" in loss else None
    if decay is not None and (isinstance(decay, bool) or not isinstance(decay, int) or decay < 0):
        raise ConfigError(f"loss.ds_decay_epochs={_show(decay)}: must be an integer >= 0 (0: no decay)")


def _leaves(node: Any, path: str) -> Iterable[tuple[str, Any]]:
    if isinstance(node, DictConfig):
        for key in node:
            if OmegaConf.is_interpolation(node, key) or OmegaConf.is_missing(node, key):
                continue
            yield from _leaves(node[key], f"{path}.{key}")
    elif isinstance(node, Mapping):
        for key, value in node.items():
            yield from _leaves(value, f"{path}.{key}")
    else:
        yield path, node


# ---------------------------------------------------------------------------------------------- model x data
def _target_class(node: Any) -> type | None:
    if not isinstance(node, DictConfig) or "_target_" not in node:
        return None
    try:
        from hydra.utils import get_class

        return get_class(node._target_)
    except Exception:  # noqa: BLE001 - a wrong _target_ is reported by Hydra when it is instantiated
        return None


def _choice(group: str) -> str | None:
    try:
        from hydra.core.hydra_config import HydraConfig

        return HydraConfig.get().runtime.choices.get(group)
    except (ValueError, AttributeError):
        return None


def check_model_and_data(cfg: DictConfig) -> None:
    model_cls, data_cls = _target_class(cfg.get("model")), _target_class(cfg.get("data"))
    if model_cls is None or data_cls is None:
        return
    wants = getattr(model_cls, "data_layouts", None)
    gives = getattr(data_cls, "layout", None)
    if not wants or not isinstance(gives, str) or gives in wants:
        return  # unknown, or a latent file (its layout is checked when the file is read, before training)
    model_name = _choice("model") or model_cls.__name__
    data_name = _choice("data") or data_cls.__name__
    raise ConfigError(f"model={model_name} trains on {_LAYOUT_WORDS.get(wants[0], wants[0])}, but data={data_name} "
                      f"gives {_LAYOUT_WORDS.get(gives, gives)}: use {_LAYOUT_DATA.get(wants[0], 'matching data')}")

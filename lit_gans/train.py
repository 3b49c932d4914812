"""Build everything a Hydra config describes and fit: datamodule, model, callbacks, loggers, trainer."""

from __future__ import annotations

import logging
from typing import Any

import lightning as L
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf, open_dict

log = logging.getLogger(__name__)


def resolve_precision(precision: Any) -> Any:
    """``auto``: ``bf16-mixed`` on a CUDA device that supports bf16, else ``32-true``."""
    if precision != "auto":
        return precision
    if torch.cuda.is_available() and torch.cuda.is_bf16_supported():
        return "bf16-mixed"
    return "32-true"


def instantiate_all(group: DictConfig | None) -> list[Any]:
    """Instantiate every entry of a ``callbacks``/``logger`` group that has a ``_target_``."""
    if not group:
        return []
    return [instantiate(c) for c in group.values() if isinstance(c, DictConfig) and "_target_" in c]


def route_lightning_logs_through_root() -> None:
    """Lightning gives its loggers a console handler of their own; under Hydra the root logger already has
    one (and a file handler), so drop Lightning's to print each message once and still keep it in train.log."""
    if logging.getLogger().handlers:
        for name in ("lightning", "lightning.pytorch", "lightning.fabric", "torchmetrics"):
            lg = logging.getLogger(name)
            for h in list(lg.handlers):
                lg.removeHandler(h)
            lg.propagate = True


def drop_disabled(callbacks: list[Any], trainer_cfg: DictConfig) -> list[Any]:
    """Honour ``trainer.enable_progress_bar=false`` / ``enable_checkpointing=false`` by leaving out the
    configured progress bar / checkpoint callbacks (Lightning refuses the combination otherwise)."""
    from lightning.pytorch.callbacks import Checkpoint, ProgressBar

    if trainer_cfg.get("enable_progress_bar") is False:
        callbacks = [c for c in callbacks if not isinstance(c, ProgressBar)]
    if trainer_cfg.get("enable_checkpointing") is False:
        callbacks = [c for c in callbacks if not isinstance(c, Checkpoint)]
    return callbacks


# Model keys that may be null in config, meaning "as the data is", and the data_spec() key they come from.
FROM_DATA = {"num_domains": "num_domains", "in_channels": "channels", "img_size": "img_size",
             "latent_scale": "scaling_factor", "num_classes": "num_classes"}


def fill_from_data(model_cfg: DictConfig, datamodule: Any) -> DictConfig:
    """Copy of the model config with its null ``num_domains``/``in_channels``/``img_size``/``latent_scale``/
    ``num_classes`` taken from the data (the number of domain folders, a latent file's VAE scaling factor, the
    classes of the masks). Explicit values stay and are checked against the data at setup."""
    out = model_cfg.copy()
    spec = datamodule.data_spec() if hasattr(datamodule, "data_spec") else {}
    with open_dict(out):
        for key, spec_key in FROM_DATA.items():
            if key in out and out[key] is None and spec.get(spec_key) is not None:
                out[key] = spec[spec_key]
    return out


def build(cfg: DictConfig) -> tuple[L.LightningDataModule, L.LightningModule, L.Trainer]:
    """Instantiate data, model and trainer from a composed config (no training)."""
    route_lightning_logs_through_root()
    if cfg.get("seed") is not None:
        L.seed_everything(cfg.seed, workers=True, verbose=False)
    if torch.cuda.is_available():
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    # Plain containers (_convert_="all"): hyper-parameters saved in checkpoints must load with weights_only.
    datamodule = instantiate(cfg.data, _convert_="all")
    loss = OmegaConf.to_container(cfg.loss, resolve=True)
    model = instantiate(fill_from_data(cfg.model, datamodule), loss=loss, _convert_="all")
    trainer_cfg = cfg.trainer.copy()
    with open_dict(trainer_cfg):
        trainer_cfg.precision = resolve_precision(trainer_cfg.get("precision", "auto"))
        if trainer_cfg.get("benchmark") is None:
            trainer_cfg.benchmark = not trainer_cfg.get("deterministic")
    callbacks = drop_disabled(instantiate_all(cfg.get("callbacks")), trainer_cfg)
    trainer = instantiate(trainer_cfg, callbacks=callbacks, logger=instantiate_all(cfg.get("logger")) or False)
    return datamodule, model, trainer


def train(cfg: DictConfig) -> dict[str, float]:
    """Fit the model and return the final callback metrics as floats (for sweepers)."""
    datamodule, model, trainer = build(cfg)
    trainer.fit(model, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"))
    return {k: float(v) for k, v in trainer.callback_metrics.items() if torch.is_tensor(v) and v.numel() == 1}

"""Build everything a Hydra config describes and fit: datamodule, model, callbacks, loggers, trainer."""

from __future__ import annotations

import contextlib
import logging
import os
import warnings
from typing import Any

import lightning as L
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf, open_dict

from lit_gans.callbacks.console import silence_known_noise
from lit_gans.callbacks.resume import RunRecord
from lit_gans.config_checks import check_config
from lit_gans.resume import ResumePoint, inspect_checkpoint, stopped_runs_explained
from lit_gans.utils import rundir

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
    """Honour ``trainer.enable_progress_bar=false`` / ``enable_checkpointing=false`` /
    ``enable_model_summary=false`` by leaving out the configured progress bar / checkpoint / summary callbacks
    (Lightning refuses the combination otherwise)."""
    from lightning.pytorch.callbacks import Checkpoint, ModelSummary, ProgressBar

    if trainer_cfg.get("enable_progress_bar") is False:
        callbacks = [c for c in callbacks if not isinstance(c, ProgressBar)]
    if trainer_cfg.get("enable_checkpointing") is False:
        callbacks = [c for c in callbacks if not isinstance(c, Checkpoint)]
    if trainer_cfg.get("enable_model_summary") is False:
        callbacks = [c for c in callbacks if not isinstance(c, ModelSummary)]
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


def augment_kwargs(cfg: DictConfig) -> dict[str, Any]:
    """``{"aug": <plain aug block>}`` for the model when ``aug`` is not ``none`` (models without a
    discriminator take no ``aug`` argument: asking for one is a one-line error)."""
    aug = cfg.get("aug")
    if aug is None or aug.get("kind", "none") == "none":
        return {}
    import inspect

    from hydra.utils import get_class

    from lit_gans.errors import ConfigError

    def takes_aug(cls: type) -> bool:
        """Whether ``cls(aug=...)`` reaches a constructor with an ``aug`` argument (through ``**kwargs``)."""
        for klass in cls.__mro__:
            if "__init__" not in vars(klass):
                continue
            params = inspect.signature(klass.__init__).parameters
            if "aug" in params:
                return True
            if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
                return False
        return False

    target = cfg.model._target_
    if not takes_aug(get_class(target)):
        raise ConfigError(f"aug={aug.kind} augments what a discriminator sees, and {target.rsplit('.', 1)[-1]} has no "
                          "discriminator: use aug=none")
    return {"aug": OmegaConf.to_container(aug, resolve=True)}


def build(cfg: DictConfig, purge_step: int | None = None, resume: ResumePoint | None = None
          ) -> tuple[L.LightningDataModule, L.LightningModule, L.Trainer]:
    """Instantiate data, model and trainer from a composed config (no training).

    ``purge_step``: the first logging step of a resumed run; TensorBoard drops what an earlier, killed process
    logged from that step on, so the curves continue without duplicated points. ``resume``: the checkpoint the
    run continues from; the keys this config changes against it are checked (a one-line :class:`ConfigError`
    for one that cannot change) before the trainer is built, and applied and reported by :class:`RunRecord`."""
    route_lightning_logs_through_root()
    silence_known_noise()
    if cfg.get("seed") is not None:
        L.seed_everything(cfg.seed, workers=True, verbose=False)
    if torch.cuda.is_available():
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    # Plain containers (_convert_="all"): hyper-parameters saved in checkpoints must load with weights_only.
    with refused_arguments("data"):
        datamodule = instantiate(cfg.data, _convert_="all")
    loss = OmegaConf.to_container(cfg.loss, resolve=True)
    # Not recursive: model.optimizer / model.scheduler stay configs the model instantiates over its parameters.
    with refused_arguments("model"):
        model = instantiate(fill_from_data(cfg.model, datamodule), loss=loss, **augment_kwargs(cfg), _convert_="all",
                            _recursive_=False)
    if hasattr(datamodule, "with_ref2"):  # a second reference per item only for a model that reads it
        datamodule.with_ref2 = bool(getattr(model, "uses_second_reference", False))
    record = run_record(cfg, model, datamodule, resume)
    trainer_cfg = cfg.trainer.copy()
    with open_dict(trainer_cfg):
        trainer_cfg.precision = resolve_precision(trainer_cfg.get("precision", "auto"))
        if trainer_cfg.get("benchmark") is None:
            trainer_cfg.benchmark = not trainer_cfg.get("deterministic")
    callbacks = [*drop_disabled(instantiate_all(cfg.get("callbacks")), trainer_cfg), record]
    for callback in callbacks:
        if hasattr(callback, "set_run_config"):  # the HParams callback: the composed config, for TensorBoard
            callback.set_run_config(cfg)
    with refused_arguments("trainer"):
        trainer = instantiate(trainer_cfg, callbacks=callbacks, logger=build_loggers(cfg, purge_step) or False)
    return datamodule, model, trainer


@contextlib.contextmanager
def refused_arguments(group: str):
    """A constructor that refuses its arguments (``ValueError``/``TypeError`` of a lit_gans class, Lightning's
    ``MisconfigurationException``) as a one-line :class:`ConfigError` naming the config group, instead of Hydra's
    multi-line report."""
    from hydra.errors import InstantiationException
    from lightning.fabric.utilities.exceptions import MisconfigurationException

    from lit_gans.errors import ConfigError, LitGansError

    try:
        yield
    except InstantiationException as err:
        cause = err.__cause__
        if isinstance(cause, LitGansError) or cause is None:
            raise
        refused = isinstance(cause, MisconfigurationException) or (
            isinstance(cause, (ValueError, TypeError)) and _raised_by_lit_gans(cause))
        if not refused:
            raise
        text = (str(cause).strip().splitlines() or [type(cause).__name__])[0]
        raise ConfigError(f"{group}: {text}; fix the {group}.* override (python train.py --cfg job shows the "
                          "composed config)") from None


def _raised_by_lit_gans(err: BaseException) -> bool:
    """Whether ``err`` was raised in lit_gans' own code (its constructors' checks), not deeper in a library."""
    tb = err.__traceback__
    last = None
    while tb is not None:
        last = tb.tb_frame.f_code.co_filename
        tb = tb.tb_next
    return last is not None and os.sep + "lit_gans" + os.sep in last


def run_record(cfg: DictConfig, model: Any, datamodule: Any, resume: ResumePoint | None) -> RunRecord:
    """The :class:`RunRecord` of this start: the config it writes into checkpoints and, when it resumes, the keys
    it changes against the checkpoint (refused in one line when one cannot change)."""
    from lit_gans.resume_changes import changes_on_resume, overrides_behind, plain_run_config

    paths = cfg.get("paths")
    run_dir = str(paths.output_dir) if paths is not None and "output_dir" in paths else None
    record = RunRecord(plain_run_config(cfg), run_dir=run_dir)
    if resume is None:
        return record
    where = resume.describe()
    record.changes = changes_on_resume(resume.path, resume.saved, cfg, model, datamodule,
                                       where if resume.mid_epoch else None)
    record.checkpoint, record.where = resume.path, where
    try:
        from hydra.core.hydra_config import HydraConfig

        record.overrides = overrides_behind(record.changes, list(HydraConfig.get().overrides.task))
    except (ValueError, AttributeError):  # a config composed without Hydra's runtime
        pass
    return record


def build_loggers(cfg: DictConfig, purge_step: int | None) -> list[Any]:
    loggers = []
    for c in (cfg.get("logger") or {}).values():
        if not (isinstance(c, DictConfig) and "_target_" in c):
            continue
        extra = {}
        if purge_step is not None and c._target_.endswith("TensorBoardLogger"):
            extra["purge_step"] = purge_step  # passed on to torch's SummaryWriter
        loggers.append(instantiate(c, **extra))
    return loggers


def checkpoint_dir(cfg: DictConfig) -> str:
    """Where this run's ``last.ckpt`` lives (``callbacks.last_checkpoint.dirpath``, else ``<run>/checkpoints``)."""
    last = (cfg.get("callbacks") or {}).get("last_checkpoint")
    if isinstance(last, DictConfig) and last.get("dirpath"):
        return str(last.dirpath)
    return os.path.join(str(cfg.paths.output_dir), "checkpoints")


def train(cfg: DictConfig) -> dict[str, float]:
    """Fit the model and return the final callback metrics as floats (for sweepers).

    Before anything is built: the config is checked (one line per mistake), the run directory is locked
    against a second live run, temporary files of interrupted saves are removed, and ``ckpt_path`` is resolved
    (``last``/``auto``/a file) and checked against the configured model."""
    # Whether a run may write into a folder that holds checkpoints is decided by lit_gans.utils.rundir (resume or
    # refuse); ModelCheckpoint's warning about a non-empty folder would only repeat it on every resume.
    warnings.filterwarnings("ignore", message=r"Checkpoint directory .* exists and is not empty")
    check_config(cfg)
    run_dir = str(cfg.paths.output_dir)
    ckpt_dir = checkpoint_dir(cfg)
    with rundir.RunLock(run_dir) if rundir.is_global_zero_process() else contextlib.nullcontext():
        removed = rundir.remove_stale_partial_saves(ckpt_dir)
        if removed:
            log.info("removed %d partial checkpoint file(s) of interrupted saves from %s", len(removed), ckpt_dir)
        ckpt_path = rundir.resolve_resume(cfg.get("ckpt_path"), run_dir, ckpt_dir)
        resume = inspect_checkpoint(ckpt_path, cfg) if ckpt_path else None
        datamodule, model, trainer = build(cfg, purge_step=resume.batches_done if resume else 0, resume=resume)
        if resume is not None:
            log.info("resuming from %s %s", ckpt_path, resume.describe())
        try:
            with stopped_runs_explained(cfg, trainer, ckpt_path):
                # weights_only: the checkpoint is read as data (lit_gans.utils.safe_load), here as in every tool
                trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)
        finally:
            finish_logger_runs(trainer)
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if torch.is_tensor(v) and v.numel() == 1}
    if trainer.is_global_zero:
        write_final_metrics(run_dir, metrics)
        print(run_summary(run_dir, trainer), flush=True)
    return metrics


def finish_logger_runs(trainer: L.Trainer) -> None:
    """Close the W&B run of this job: W&B keeps one run per process, so without ``finish`` every job of a
    sweep would log into the first job's run (Lightning's WandbLogger leaves it open)."""
    from lightning.pytorch.loggers import WandbLogger

    for logger in trainer.loggers:
        if isinstance(logger, WandbLogger):
            import wandb

            wandb.finish()


FINAL_METRICS = "final_metrics.json"


def write_final_metrics(run_dir: str, metrics: dict[str, float]) -> None:
    """``<run>/final_metrics.json``: the callback metrics at the end (read by the multirun table)."""
    import json
    import math

    os.makedirs(run_dir, exist_ok=True)
    with open(os.path.join(run_dir, FINAL_METRICS), "w", encoding="utf-8") as f:
        json.dump({k: (v if math.isfinite(v) else None) for k, v in sorted(metrics.items())}, f, indent=1)


def run_summary(run_dir: str, trainer: L.Trainer) -> str:
    """The lines a finished run ends with: where it is, its last checkpoint, its latest sample grid, the epoch
    means of the totals, and the TensorBoard command to paste."""
    import glob
    import shlex

    from lightning.pytorch.loggers import TensorBoardLogger

    from lit_gans.callbacks.checkpointing import LastCheckpoint

    last = next((c.last_saved_path for c in trainer.callbacks if isinstance(c, LastCheckpoint)), None)
    grids = sorted(glob.glob(os.path.join(run_dir, "**", "samples", "*.png"), recursive=True), key=os.path.getmtime)
    totals = [f"{k.removesuffix('_epoch')} {float(v):.4g}" for k, v in sorted(trainer.callback_metrics.items())
              if k.endswith("_epoch") and k.split("/")[-1].removesuffix("_epoch") in ("d_loss", "g_loss", "G_tot", "D_tot")]
    lines = [f"run:          {run_dir}"]
    if last:
        lines.append(f"checkpoint:   {last}")
    if grids:
        lines.append(f"sample grid:  {grids[-1]}")
    if totals:
        lines.append(f"last epoch:   {', '.join(totals)}")
    if any(isinstance(lg, TensorBoardLogger) for lg in trainer.loggers):
        lines.append(f"watch it:     tensorboard --logdir {shlex.quote(run_dir)}")
    return "\n".join(lines)

"""What every model of the collection shares: manual optimisation with a loss :class:`Objective`,
conversion between the data's space and the model's (``latent_scale``, channels_last), a check that the
data fits the networks, and the hooks the callbacks use (``objective``, ``visuals``)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Mapping
from typing import Any

import lightning as L
import torch
from torch import Tensor

from lit_gans.augment import DiscriminatorAugment, build_augment
from lit_gans.errors import ConfigError
from lit_gans.losses.objective import LossTerm, make_objective
from lit_gans.models.ema import ema_copy, ema_update

log = logging.getLogger(__name__)
BUCKET_BYTES = 64 << 20


@torch.no_grad()
def average_gradients(optimizer: Any) -> None:
    """All-reduce (mean over processes) the gradients of an optimizer's parameters, in flat buckets of
    at most 64 MiB per dtype (a few collectives instead of one per tensor)."""
    import torch.distributed as dist

    opt = getattr(optimizer, "optimizer", optimizer)
    grads = [p.grad for g in opt.param_groups for p in g["params"] if p.grad is not None]
    world = dist.get_world_size()
    buckets: dict[torch.dtype, list[list[Tensor]]] = {}
    for grad in grads:
        per_dtype = buckets.setdefault(grad.dtype, [[]])
        if per_dtype[-1] and sum(t.numel() for t in per_dtype[-1]) * grad.element_size() >= BUCKET_BYTES:
            per_dtype.append([])
        per_dtype[-1].append(grad)
    for per_dtype in buckets.values():
        for bucket in per_dtype:
            flat = torch.cat([g.reshape(-1) for g in bucket])
            dist.all_reduce(flat)
            flat.div_(world)
            for grad, part in zip(bucket, flat.split([g.numel() for g in bucket]), strict=True):
                grad.copy_(part.view_as(grad))


def _plain(cfg: Any) -> Any:
    """OmegaConf containers to plain Python (hparams and objectives must not hold DictConfigs)."""
    try:
        from omegaconf import DictConfig, ListConfig, OmegaConf

        if isinstance(cfg, (DictConfig, ListConfig)):
            return OmegaConf.to_container(cfg, resolve=True)
    except ImportError:  # pragma: no cover - omegaconf is a dependency
        pass
    return cfg


def eager(module: torch.nn.Module) -> Any:
    """A module's uncompiled forward (``model.compile=true`` compiles the modules' calls in place, not their
    ``forward``): torch.compile does not support double backward, which R1 (the gradient of a gradient) needs.
    The nets here have no forward hooks, so calling ``forward`` skips nothing else."""
    return module.forward


def trainer_of(module: L.LightningModule) -> L.Trainer | None:
    """The Trainer a module is attached to, or ``None`` (a step run outside a Trainer, e.g. the benchmark's
    plain loop)."""
    try:
        return module.trainer
    except RuntimeError:
        return None


class GANModule(L.LightningModule):
    """Base of the models here.

    A subclass declares its objective: ``loss_spec`` (the function listing its loss terms, whose parameters are
    the ``loss`` config keys: :mod:`lit_gans.losses.objective`), ``loss_totals`` (the logged name of each
    group's total) and ``loss_other_keys`` (``loss`` keys read elsewhere, e.g. by the schedules).

    Args:
        loss: the ``loss`` config block: the values of the objective's keys (weights, adversarial mode ...).
        optimizer: ``_target_`` + ``_partial_`` config of the optimizer class and its arguments (``lr``, ...);
            the model gives it the parameters (:meth:`make_optimizer`).
        scheduler: ``_target_`` + ``_partial_`` config of a learning-rate schedule taking the optimizer, or
            ``None`` (:meth:`make_scheduler`).
        fused_optimizer: ``None``: fused kernels on CUDA and CPU when the optimizer has them (besides speed, they
            keep the step count on the device: the unfused ones read it on the host once per parameter and
            step); ``True``/``False`` force it.
        latent_scale: data are multiplied by it on the way in and divided on the way out (0.18215 for SD-VAE
            latents stored unscaled, 1.0 for pixels).
        channels_last: ``"auto"`` (on CUDA), ``True`` or ``False``.
        compile: ``torch.compile`` the networks listed by :meth:`compiled_nets` at fit start.
        ema_beta: decay of the moving averages registered with :meth:`add_ema`.
        ema_warmup: use ``min(ema_beta, (1 + n) / (10 + n))`` after ``n`` updates, so the average follows
            the early, fast-changing weights instead of staying near the initialisation for ~1/(1-beta)
            steps; it reaches ``ema_beta`` after ``9 * beta / (1 - beta)`` updates (9k for 0.999).
        aug: the ``aug`` config block (discriminator augmentation); the model builds the pipeline with
            :meth:`build_discriminator_augment` once it knows what its discriminators see.
    """

    data_layouts: tuple[str, ...] = ()  # the data items it trains on: domains | unpaired | paired
    loss_spec: Callable[..., list[LossTerm]]
    loss_totals: dict[str, str] = {}
    loss_other_keys: tuple[str, ...] = ()
    default_optimizer: dict[str, Any] = {"_target_": "torch.optim.Adam", "_partial_": True}

    def __init__(self, loss: Mapping[str, Any] | None = None, optimizer: Mapping[str, Any] | None = None,
                 scheduler: Mapping[str, Any] | None = None, fused_optimizer: bool | None = None,
                 latent_scale: float = 1.0, channels_last: bool | str = "auto", compile: bool = False,
                 ema_beta: float = 0.999, ema_warmup: bool = True, aug: Mapping[str, Any] | None = None,
                 spec_args: Mapping[str, Any] | None = None):
        super().__init__()
        self.automatic_optimization = False
        self.loss_cfg = dict(_plain(loss) or {})
        self.objective = make_objective(type(self).loss_spec, self.loss_cfg, type(self).loss_totals, spec_args,
                                        type(self).loss_other_keys)
        self.optimizer_cfg = dict(_plain(optimizer) or type(self).default_optimizer)
        self.scheduler_cfg = _plain(scheduler)
        self.fused_optimizer = fused_optimizer
        self.latent_scale = float(latent_scale)
        self.channels_last_cfg = channels_last
        self.compile_nets = bool(compile)
        self.data_spec: dict[str, Any] = {}
        self.ema_beta = float(ema_beta)
        self.ema_warmup = bool(ema_warmup)
        self.ema_updates = 0
        self._ema_names: list[str] = []
        self.aug_cfg = dict(_plain(aug) or {})
        self.augment: DiscriminatorAugment | None = None
        self._scheduler_batches: dict[int, int] = {}  # step-interval scheduler -> the batch it was last stepped in

    # ------------------------------------------------------------------ spaces
    @property
    def channels_last(self) -> bool:
        if self.channels_last_cfg == "auto":
            return self.device.type == "cuda"
        return bool(self.channels_last_cfg)

    def to_model_space(self, x: Tensor) -> Tensor:
        """Data space (unscaled latents / pixels in [-1, 1]) to the space the nets work in."""
        if self.latent_scale != 1.0:
            x = x * self.latent_scale
        if self.channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    def to_data_space(self, x: Tensor) -> Tensor:
        return x / self.latent_scale if self.latent_scale != 1.0 else x

    # ------------------------------------------------------------------ optimisers
    def use_fused_optimizer(self, setting: bool | None = None) -> bool:
        """``None``: fused Adam/AdamW kernels on CUDA and CPU. Besides speed, the fused kernels keep the
        step count on the device; the unfused ones read it on the host once per parameter and step."""
        return self.device.type in ("cuda", "cpu") if setting is None else bool(setting)

    def make_optimizer(self, params: Any, **overrides: Any) -> torch.optim.Optimizer:
        """The configured optimizer (``model.optimizer``) over ``params`` (tensors or parameter groups), fused
        as :meth:`use_fused_optimizer` says when the class takes ``fused``; ``overrides`` replace config values."""
        import inspect

        from hydra.utils import instantiate

        build = instantiate({**self.optimizer_cfg, "_partial_": True}, _convert_="all")
        kwargs = dict(overrides)
        if "fused" in inspect.signature(build.func).parameters and "fused" not in build.keywords:
            if self.use_fused_optimizer(self.fused_optimizer):
                kwargs["fused"] = True
        if "betas" in build.keywords and not isinstance(build.keywords["betas"], tuple):
            kwargs.setdefault("betas", tuple(build.keywords["betas"]))
        return build(params, **kwargs)

    def make_scheduler(self, optimizer: torch.optim.Optimizer, **overrides: Any) -> Any:
        """The configured learning-rate schedule (``model.scheduler``) of ``optimizer``, or ``None``."""
        if not self.scheduler_cfg:
            return None
        from hydra.utils import instantiate

        return instantiate({**self.scheduler_cfg, "_partial_": True}, _convert_="all")(optimizer, **overrides)

    # ------------------------------------------------------------------ updates
    def update(self, optimizer: Any, loss: Tensor) -> None:
        """One network's update: zero its gradients, back-propagate ``loss``, average exactly this
        optimizer's gradients over processes, step.

        Under DDP the backward runs without DDP's gradient hooks: a GAN step has several backward passes
        (and R1's double backward) over one forward of the module, each reaching only some networks. Hooks
        would all-reduce every bucket on every backward (the frozen discriminator's zero gradients during the
        generator update included) and need unused-parameter search; averaging only the stepped optimizer's
        gradients sends just what is needed."""
        optimizer.zero_grad(set_to_none=True)
        trainer = trainer_of(self)
        strategy = trainer.strategy if trainer is not None else None
        no_sync = getattr(strategy, "block_backward_sync", None)
        with no_sync() if no_sync is not None else contextlib.nullcontext():
            self.manual_backward(loss)
        if strategy is not None and self.trainer.world_size > 1:
            average_gradients(optimizer)
        optimizer.step()
        self._step_batch_schedulers(optimizer)

    def _step_batch_schedulers(self, optimizer: Any) -> None:
        """Step the ``"interval": "step"`` schedulers of ``optimizer`` once per batch, at its first update.

        Done here rather than in ``on_train_batch_end``: Lightning runs the callbacks' ``on_train_batch_end``
        (ModelCheckpoint's step-interval saves) before the module's, so a scheduler stepped there would be
        saved one step behind the weights and a resumed run would lag by one step."""
        if trainer_of(self) is None:
            return
        opt = getattr(optimizer, "optimizer", optimizer)
        batch = self.trainer.fit_loop.total_batch_idx
        for config in self.trainer.lr_scheduler_configs:
            if config.interval == "step" and config.scheduler.optimizer is opt:
                if self._scheduler_batches.get(id(config)) != batch:
                    self._scheduler_batches[id(config)] = batch
                    config.scheduler.step()

    # ------------------------------------------------------------------ discriminator augmentation
    def build_discriminator_augment(self, channels: int) -> None:
        """Build ``self.augment`` from the ``aug`` block for discriminators that see ``channels`` channels
        (latents when ``latent_scale != 1``). LSGAN's discriminator aims at 1 for real and 0 for fake, so
        its "real" side of the overfitting heuristic is ``D(x) > 0.5``; the other modes' is ``D(x) > 0``."""
        midpoint = 0.5 if self.objective.config.get("adversarial") == "lsgan" else 0.0
        self.augment = build_augment(self.aug_cfg, channels, latent=self.latent_scale != 1.0,
                                     logit_midpoint=midpoint)

    def augment_d(self, x: Tensor) -> Tensor:
        """What a discriminator is shown of ``x`` (real, fake or R1's real): ``x`` itself without
        augmentation, else its differentiable augmentation."""
        return x if self.augment is None else self.augment(x)

    def shown_as_real(self, real: Tensor, fake: Tensor) -> Tensor:
        """The batch shown to the discriminator as real: ``real``, or with ``aug=apa`` some samples replaced
        by the (detached) ``fake`` of the same shape."""
        return real if self.augment is None else self.augment.pseudo_real(real, fake)

    def observe_real_logits(self, logits: Tensor | list[Tensor]) -> None:
        """Feed the adaptive augmentation's overfitting statistics (device tensors: no host sync)."""
        if self.augment is not None:
            self.augment.observe(logits)

    # ------------------------------------------------------------------ EMA
    def add_ema(self, name: str) -> None:
        """Keep a moving average of the submodule ``name`` as ``<name>_ema`` (used for sampling)."""
        setattr(self, f"{name}_ema", ema_copy(getattr(self, name)))
        self._ema_names.append(name)

    def current_ema_beta(self) -> float:
        if not self.ema_warmup:
            return self.ema_beta
        n = self.ema_updates
        return min(self.ema_beta, (1.0 + n) / (10.0 + n))

    @torch.no_grad()
    def update_ema(self) -> None:
        beta = self.current_ema_beta()
        for name in self._ema_names:
            ema_update(getattr(self, f"{name}_ema"), getattr(self, name), beta)
        self.ema_updates += 1

    # ------------------------------------------------------------------ hooks for subclasses
    def expected_data(self) -> dict[str, Any]:
        """What the nets need from the data: any of ``channels``, ``img_size``, ``num_domains``."""
        return {}

    def compiled_nets(self) -> list[torch.nn.Module]:
        """Networks to ``torch.compile`` when ``compile=true``."""
        return []

    def visuals(self, batch: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """Columns of a sample grid, in data space, e.g. ``{"source": x, "translated": y}``."""
        raise NotImplementedError

    # ------------------------------------------------------------------ lifecycle
    def setup(self, stage: str) -> None:
        trainer = trainer_of(self)
        dm = getattr(trainer, "datamodule", None) if trainer is not None else None
        if dm is not None and hasattr(dm, "data_spec"):
            self.check_data(dm.data_spec())

    def check_data(self, spec: Mapping[str, Any]) -> None:
        """Raise a one-line :class:`ConfigError` naming both numbers when data and nets disagree."""
        layout = spec.get("layout")
        if layout and self.data_layouts and layout not in self.data_layouts:
            raise ConfigError(f"{type(self).__name__} trains on {' or '.join(self.data_layouts)} data but the data "
                              f"gives {layout} items: choose data with {self.data_layouts[0]} items (a latent file: "
                              f"encode it with --layout {self.data_layouts[0]})")
        keys = {"channels": "model.in_channels", "img_size": "model.img_size", "num_domains": "model.num_domains"}
        wrong = [
            f"data has {key.replace('_', ' ')} {spec[key]} but the model is built for {want} ({keys[key]}={want})"
            for key, want in self.expected_data().items()
            if key in spec and spec[key] != want
        ]
        if wrong:
            raise ConfigError("; ".join(wrong) + ": set the model's value to match the data")
        factor = spec.get("scaling_factor")
        if factor is not None and self.latent_scale != 1.0 and abs(factor - self.latent_scale) > 1e-6:
            log.warning("model.latent_scale %g differs from the data's VAE scaling_factor %g: set "
                        "model.latent_scale=%g (or null to take it from the data) unless this is intended",
                        self.latent_scale, factor, factor)
        self.data_spec = dict(spec)

    def on_fit_start(self) -> None:
        if self.channels_last:
            self.to(memory_format=torch.channels_last)
        if self.compile_nets:
            for net in self.compiled_nets():
                net.compile()

    def on_train_epoch_end(self) -> None:
        """Manual optimisation: Lightning does not step schedulers. Those returned by ``configure_optimizers``
        with ``"interval": "epoch"`` (the default) are stepped here at the end of each training epoch; those
        with ``"interval": "step"`` once per batch, right after their optimizer's first :meth:`update` of the
        batch (:meth:`_step_batch_schedulers`)."""
        for config in self.trainer.lr_scheduler_configs:
            if config.interval == "epoch":
                config.scheduler.step()

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["data_spec"] = self.data_spec
        checkpoint["ema_updates"] = self.ema_updates
        checkpoint["model_class"] = f"{type(self).__module__}.{type(self).__qualname__}"  # for evaluate/translate

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.data_spec = checkpoint.get("data_spec", {})
        self.ema_updates = int(checkpoint.get("ema_updates", 0))

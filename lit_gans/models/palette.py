"""Palette (Saharia et al., 2022): a conditional denoising diffusion model for image-to-image translation,
on pixels or on SD-VAE latents.

One training step is DDPM's Algorithm 1 with the source image as condition::

    t ~ U{0..T-1},  eps ~ N(0, I),  x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps
    G_tot = || unet(x_t, t, source) - eps ||        (L2 by default, loss.noise_loss=l1 for L1)

then one AdamW step (learning rate warmed up linearly per batch) and an EMA update of the UNet. Sampling
(``translate``, the image grids) runs DDIM or DDPM ancestral sampling with the EMA UNet.

It subclasses :class:`GANModule` although nothing is adversarial: the base gives the loss objective and its
logging, ``latent_scale``, EMA, the data check, channels_last/compile and scheduler stepping.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import nullcontext
from typing import Any

import torch
from torch import Tensor

from lit_gans.diffusion import SAMPLERS, NoiseSchedule, sample
from lit_gans.errors import ConfigError
from lit_gans.losses.diffusion_spec import diffusion as diffusion_terms
from lit_gans.models.base import GANModule, _plain, trainer_of
from lit_gans.nets.palette_unet import PaletteUNet
from lit_gans.utils.modes import evaluating

DIFFUSION_DEFAULTS: dict[str, Any] = {
    "timesteps": 1000,
    "noise_schedule": "linear",  # linear | cosine
    "beta_start": 1e-4,
    "beta_end": 0.02,
    "cosine_s": 0.008,
}
SAMPLING_DEFAULTS: dict[str, Any] = {
    "sampler": "ddim",  # ddim | ddpm: translate()'s default
    "steps": 50,  # null: all T
    "eta": 0.0,
    "clip_denoised": None,  # None: clamp the predicted clean image to [-1, 1] on pixels (latent_scale 1)
    "grid_sampler": "ddim",  # the image-grid callback's
    "grid_steps": 10,
    "grid_eta": 0.0,
    "grid_seed": 0,  # the grids start from the same noise every time
}
# Palette's optimizer (AdamW 1e-4) and linear warm-up of the learning rate over the first batches.
OPTIMIZER = {"_target_": "torch.optim.AdamW", "_partial_": True, "lr": 1e-4, "betas": (0.9, 0.999),
             "weight_decay": 0.0}
SCHEDULER = {"_target_": "lit_gans.models.schedulers.linear_warmup_scheduler", "_partial_": True,
             "warmup_steps": 1000}
NOISE_TERM = "G_tot"  # the diffusion spec's one term


def _merge(defaults: Mapping[str, Any], given: Mapping[str, Any] | None, what: str) -> dict[str, Any]:
    given = dict(_plain(given) or {})
    unknown = sorted(set(given) - set(defaults))
    if unknown:
        raise ConfigError(f"model.{what} has unknown key(s) {unknown}: its keys are {', '.join(defaults)}")
    return {**defaults, **given}


def rank_generator(device: torch.device | str, rank: int) -> torch.Generator:
    """The generator of a process's timesteps and noise: seeded from the run's seed (``torch.initial_seed()``,
    which ``seed_everything`` sets to the same value on every process) offset by the process rank, so that
    data-parallel processes draw different timesteps and noise instead of repeating one another's."""
    return torch.Generator(device=device).manual_seed((torch.initial_seed() + 1_000_003 * rank) % 2**63)


class Palette(GANModule):
    """Args:
        img_size: height and width of images/latents (set from the data when null through Hydra).
        in_channels: 3 for RGB pixels, 4 for SD-VAE latents (target and output).
        cond_channels: channels of the source (default ``in_channels``).
        channels, channel_mults, num_res_blocks, attn_res, num_heads, num_head_channels, dropout, norm_groups,
        checkpointing: the UNet (see :class:`~lit_gans.nets.palette_unet.PaletteUNet`).
        diffusion: ``timesteps`` (T), ``noise_schedule`` (linear | cosine), ``beta_start``, ``beta_end``, ``cosine_s``.
        sampling: ``sampler`` (ddim | ddpm), ``steps``, ``eta``, ``clip_denoised`` for :meth:`translate`;
            ``grid_sampler``, ``grid_steps``, ``grid_eta``, ``grid_seed`` for the sample grids.
        optimizer, scheduler, fused_optimizer: see :class:`~lit_gans.models.base.GANModule` (defaults: AdamW
            1e-4, a linear warm-up over 1000 batches: ``OPTIMIZER``, ``SCHEDULER``).
        loss: the ``loss`` config block (spec ``diffusion``).
        latent_scale: 0.18215 for unscaled SD-VAE latents, 1.0 for pixels.
        ema_beta: decay of the UNet's moving average used for sampling (0.9999 as Palette).
        ema_warmup: ramp the EMA decay up from 0.1 (see ``GANModule``).
        vae: optional ``{"path": ..., "subfolder": ...}`` of an SD VAE used to decode latents for viewing.
    """

    data_layouts = ("paired",)  # the items it trains on (see BaseDataModule.layout)
    loss_spec = staticmethod(diffusion_terms)
    default_optimizer = OPTIMIZER

    def __init__(self, img_size: int = 64, in_channels: int = 3, cond_channels: int | None = None, channels: int = 32,
                 channel_mults: tuple[int, ...] = (1, 2, 4, 4), num_res_blocks: int = 2,
                 attn_res: tuple[int, ...] = (16,), num_heads: int | None = None, num_head_channels: int | None = 32,
                 dropout: float = 0.1, norm_groups: int = 32, checkpointing: bool = False,
                 diffusion: Mapping[str, Any] | None = None, sampling: Mapping[str, Any] | None = None,
                 optimizer: Mapping[str, Any] | None = None, scheduler: Mapping[str, Any] | None = SCHEDULER,
                 fused_optimizer: bool | None = None, loss: Mapping[str, Any] | None = None,
                 latent_scale: float | None = 1.0, ema_beta: float = 0.9999, ema_warmup: bool = True,
                 channels_last: bool | str = "auto", compile: bool = False, vae: Mapping[str, Any] | None = None):
        if latent_scale is None:
            raise ConfigError("model.latent_scale is null and the data has no VAE scaling factor: set "
                              "model.latent_scale (1.0 for pixels, 0.18215 for SD 1.x latents)")
        super().__init__(loss=loss, optimizer=optimizer, scheduler=scheduler, fused_optimizer=fused_optimizer,
                         latent_scale=latent_scale, channels_last=channels_last, compile=compile, ema_beta=ema_beta,
                         ema_warmup=ema_warmup)
        if img_size is None:
            raise ValueError("img_size must be set (train.py fills it from the data when the config says null)")
        self.net_cfg = {"img_size": img_size, "in_channels": in_channels, "cond_channels": cond_channels,
                        "channels": channels, "channel_mults": tuple(channel_mults), "num_res_blocks": num_res_blocks,
                        "attn_res": tuple(attn_res), "num_heads": num_heads, "num_head_channels": num_head_channels,
                        "dropout": dropout, "norm_groups": norm_groups, "checkpointing": checkpointing}
        self.diffusion_cfg = _merge(DIFFUSION_DEFAULTS, diffusion, "diffusion")
        self.sampling_cfg = _merge(SAMPLING_DEFAULTS, sampling, "sampling")
        for key in ("sampler", "grid_sampler"):
            if self.sampling_cfg[key] not in SAMPLERS:
                raise ConfigError(f"model.sampling.{key}={self.sampling_cfg[key]!r}: choose {' or '.join(SAMPLERS)}")
        self.vae_cfg = _plain(vae)
        self.save_hyperparameters(logger=False)
        d = self.diffusion_cfg
        self.schedule = NoiseSchedule(d["timesteps"], d["noise_schedule"], d["beta_start"], d["beta_end"], d["cosine_s"])
        self.unet = PaletteUNet(**self.net_cfg)
        self.add_ema("unet")
        self._rng: torch.Generator | None = None  # training draws (see rank_generator); made at the first step
        self._rng_state: Tensor | None = None  # from a checkpoint

    # ------------------------------------------------------------------ configuration
    def expected_data(self) -> dict[str, Any]:
        return {"channels": self.net_cfg["in_channels"], "img_size": self.net_cfg["img_size"]}

    def check_data(self, spec: Mapping[str, Any]) -> None:
        layout = spec.get("layout")
        if layout is not None and layout != "paired":
            raise ConfigError(f"Palette trains on paired data but the latent file has layout {layout!r}: encode a "
                              "paired folder (python -m lit_gans.latents encode --layout paired ...)")
        super().check_data(spec)

    def compiled_nets(self) -> list[torch.nn.Module]:
        return [self.unet]

    def configure_optimizers(self):
        opt = self.make_optimizer(self.unet.parameters())
        warmup = self.make_scheduler(opt)
        if warmup is None:
            return opt
        return {"optimizer": opt, "lr_scheduler": {"scheduler": warmup, "interval": "step"}}

    # ------------------------------------------------------------------ training
    def denoising_loss(self, source: Tensor, target: Tensor, t: Tensor, noise: Tensor) -> Tensor:
        """Record and return ``G_tot`` for model-space ``source``/``target`` ``(B, C, H, W)``, timesteps ``t``
        ``(B,)`` and noise like ``target``."""
        x_t = self.schedule.q_sample(target, t, noise)
        return self.objective.compute(NOISE_TERM, self.unet(x_t, t, source), noise)

    def draw_timesteps_and_noise(self, target: Tensor) -> tuple[Tensor, Tensor]:
        """``t ~ U{0..T-1}`` ``(B,)`` and ``eps ~ N(0, I)`` like ``target``, from this process's generator."""
        if self._rng is None or self._rng.device != target.device:
            self._rng = rank_generator(target.device, self.global_rank)
            if self._rng_state is not None:
                self._rng.set_state(self._rng_state)
                self._rng_state = None
        t = torch.randint(0, self.schedule.timesteps, (target.shape[0],), generator=self._rng, device=target.device)
        noise = torch.randn(target.shape, generator=self._rng, device=target.device, dtype=target.dtype)
        if self.channels_last and noise.dim() == 4:
            noise = noise.contiguous(memory_format=torch.channels_last)
        return t, noise

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_save_checkpoint(checkpoint)
        if self._rng is not None:  # a resumed run continues the same draws
            checkpoint["palette_rng_state"] = self._rng.get_state()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_load_checkpoint(checkpoint)
        self._rng_state = checkpoint.get("palette_rng_state")

    def training_step(self, batch: Mapping[str, Tensor], batch_idx: int) -> None:
        obj = self.objective
        obj.start_step()
        opt = self.optimizers()
        source, target = self.to_model_space(batch["A"]), self.to_model_space(batch["B"])
        t, noise = self.draw_timesteps_and_noise(target)  # t ~ U{0..T-1}, eps ~ N(0, I)
        self.denoising_loss(source, target, t, noise)  # G_tot = ||eps_hat(x_t, t, source) - eps||
        self.update(opt, obj.total("G"))  # AdamW; the base steps the warm-up scheduler after the batch
        self.update_ema()

    # ------------------------------------------------------------------ inference
    def _clip(self) -> float | None:
        clip = self.sampling_cfg["clip_denoised"]
        if clip is None:
            return 1.0 if self.latent_scale == 1.0 else None
        return 1.0 if clip is True else (None if clip is False else float(clip))

    def _autocast(self):
        """The trainer's precision context (bf16 autocast under ``bf16-mixed``), none outside a trainer."""
        trainer = trainer_of(self)
        return trainer.precision_plugin.forward_context() if trainer is not None else nullcontext()

    @torch.no_grad()
    def translate(self, cond: Tensor, steps: int | None = None, sampler: str | None = None, eta: float | None = None,
                  generator: torch.Generator | None = None, noise: Tensor | None = None,
                  use_ema: bool = True) -> Tensor:
        """Sample targets for sources ``cond`` ``(B, C, H, W)`` in the data's space (unscaled latents, or pixels
        in [-1, 1]); returns float32 ``(B, in_channels, H, W)`` in the same space.

        Args:
            steps, sampler, eta: default to ``model.sampling`` (``steps=None`` there: all ``T``).
            generator: for the starting noise and DDPM's/DDIM's added noise.
            noise: the starting noise ``x_T`` (model space) instead of a fresh draw.
            use_ema: sample with the EMA UNet (else the trained one).
        """
        s = self.sampling_cfg
        sampler = s["sampler"] if sampler is None else sampler
        steps = s["steps"] if steps is None else steps
        eta = s["eta"] if eta is None else eta
        unet = self.unet_ema if use_ema else self.unet
        c = self.to_model_space(cond.to(self.device))
        shape = (c.shape[0], self.net_cfg["in_channels"], *c.shape[-2:])
        if noise is None:
            noise = torch.randn(shape, generator=generator, device=self.device)
        x_T = noise.to(self.device, torch.float32)
        if self.channels_last:
            x_T = x_T.contiguous(memory_format=torch.channels_last)

        def eps_fn(x: Tensor, t: Tensor) -> Tensor:
            with self._autocast():
                return unet(x, t, c).float()

        with evaluating(unet):  # no dropout while sampling, whatever mode the module is in
            x0 = sample(eps_fn, x_T, self.schedule, sampler, steps, eta, generator, self._clip())
        return self.to_data_space(x0).float()

    @torch.no_grad()
    def visuals(self, batch: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """Grid columns: condition | sample (EMA UNet, the grid sampler from fixed noise) | target."""
        s = self.sampling_cfg
        g = torch.Generator(device=self.device).manual_seed(int(s["grid_seed"]))
        sample_ = self.translate(batch["A"], steps=s["grid_steps"], sampler=s["grid_sampler"], eta=s["grid_eta"],
                                 generator=g)
        return {"condition": batch["A"], "sample": sample_, "target": batch["B"]}

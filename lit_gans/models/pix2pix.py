"""pix2pix (Isola et al., 2017): a conditional GAN for paired image-to-image translation.

A U-Net generator ``G`` maps a source ``A`` to ``fake_B``; a PatchGAN ``D`` judges 70x70 patches of the pair
``(A, B)``, so the discriminator is conditioned on the source. One training step is the original's
``optimize_parameters``: one discriminator update on ``fake_B`` (detached) and the real pair, then one
generator update against the updated discriminator::

    D_tot = 0.5 * D_real + 0.5 * D_fake                       D_real = adv(D(A, B), real), D_fake = adv(D(A, G(A)), fake)
    G_tot = lambda_gan * G_GAN + lambda_l1 * G_L1 [+ lambda_l2 * G_L2 + lambda_sobel * G_SOBEL
            + lambda_laplacian * G_LAP] [+ lambda_vgg * G_VGG]

The terms, their weights and the adversarial mode come from the ``loss`` config (spec ``pix2pix``, see
:mod:`lit_gans.losses.pix2pix_spec`); a term whose weight is 0 is not computed.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Iterator, Mapping
from typing import Any

import torch
from torch import Tensor, nn

from lit_gans.errors import ConfigError
from lit_gans.losses.pix2pix_spec import TOTALS, pix2pix
from lit_gans.models.base import GANModule, _plain, trainer_of
from lit_gans.nets.patchgan import PatchDiscriminator
from lit_gans.nets.unet import UnetGenerator
from lit_gans.utils.modes import evaluating

log = logging.getLogger(__name__)

# The paper's training settings: Adam 2e-4 (0.5, 0.999), constant then linearly decaying learning rate (epochs
# null: half of trainer.max_epochs each).
OPTIMIZER = {"_target_": "torch.optim.Adam", "_partial_": True, "lr": 2e-4, "betas": (0.5, 0.999)}
SCHEDULER = {"_target_": "lit_gans.models.schedulers.linear_decay_scheduler", "_partial_": True, "n_epochs": None,
             "n_epochs_decay": None}
# Generator terms called as fn(fake_B, real_B), in the order they are computed.
PAIR_TERMS = ("G_L1", "G_L2", "G_SOBEL", "G_LAP", "G_VGG")


@contextlib.contextmanager
def batch_statistics(net: nn.Module) -> Iterator[None]:
    """Run ``net`` as in training (batch-norm on the batch's own statistics, dropout on) without changing its
    running statistics: pix2pix's inference (the paper's section 3.3, the original's default ``test.py``)."""
    norms = [m for m in net.modules() if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm))]
    momenta = [m.momentum for m in norms]
    was_training = net.training
    net.train()
    for m in norms:
        m.momentum = 0.0  # running = (1 - 0) * running + 0 * batch: unchanged
    try:
        yield
    finally:
        for m, momentum in zip(norms, momenta, strict=True):
            m.momentum = momentum
        net.train(was_training)


class Pix2Pix(GANModule):
    """Args:
        img_size: height and width of the training images (or latents).
        in_channels: channels of the source; out_channels: of the target (``None``: as ``in_channels``).
        num_downs: U-Net levels; ``None``: ``log2(img_size)`` (8 at 256 px: UNet-256, a 1x1 bottleneck).
        ngf, ndf: widths of the generator's outermost level and the discriminator's first layer.
        n_layers_d: strided layers of the PatchGAN (3: 70x70 patches).
        norm: ``batch`` (pix2pix), ``instance`` or ``none``, for both networks.
        dropout: rate of the U-Net's dropout blocks (0.5).
        output_activation: ``tanh``, ``none`` or ``auto`` (``tanh`` for pixels, ``none`` for latents, which
            are not bounded to [-1, 1]).
        eval_mode: ``False`` (the paper): translate with batch-norm on each batch's statistics and dropout on,
            as in training; ``True``: with running statistics and no dropout (the original's ``--eval``).
        optimizer, fused_optimizer: see :class:`~lit_gans.models.base.GANModule` (default: Adam 2e-4,
            betas (0.5, 0.999), for both networks).
        scheduler: the learning-rate schedule; its ``n_epochs`` and ``n_epochs_decay`` (epochs at the initial
            rate, then of linear decay to 0) default to half of ``trainer.max_epochs`` each when ``None`` (the
            paper's 100 + 100 for 200 epochs).
        loss: the ``loss`` config block (:func:`lit_gans.losses.pix2pix_spec.pix2pix`).
        latent_scale: 0.18215 for unscaled SD-VAE latents, 1.0 for pixels.
        vae: optional ``{"path": ..., "subfolder": ...}`` of an SD VAE to decode latents for viewing.
        aug: the ``aug`` config block: augmentation of the (source, image) pairs the discriminator sees, one
            transform per pair so that source and image stay aligned (``None``: none).
    """

    data_layouts = ("paired",)  # the items it trains on (see BaseDataModule.layout)
    loss_spec = staticmethod(pix2pix)
    loss_totals = TOTALS
    default_optimizer = OPTIMIZER

    def __init__(self, img_size: int = 256, in_channels: int = 3, out_channels: int | None = None,
                 num_downs: int | None = None, ngf: int = 64, ndf: int = 64, n_layers_d: int = 3, norm: str = "batch",
                 dropout: float = 0.5, output_activation: str = "auto", eval_mode: bool = False,
                 optimizer: Mapping[str, Any] | None = None, scheduler: Mapping[str, Any] | None = SCHEDULER,
                 fused_optimizer: bool | None = None, loss: Mapping[str, Any] | None = None,
                 latent_scale: float | None = 1.0, channels_last: bool | str = "auto", compile: bool = False,
                 vae: Mapping[str, Any] | None = None, aug: Mapping[str, Any] | None = None):
        latent_scale = 1.0 if latent_scale is None else latent_scale
        super().__init__(loss=loss, optimizer=optimizer, scheduler=scheduler, fused_optimizer=fused_optimizer,
                         latent_scale=latent_scale, channels_last=channels_last, compile=compile, aug=aug)
        out_channels = in_channels if out_channels is None else out_channels
        num_downs = self.levels_for(img_size, num_downs)
        if output_activation == "auto":
            output_activation = "tanh" if latent_scale == 1.0 else "none"
        if "G_VGG" in self.objective.terms and out_channels != 3:
            raise ConfigError(f"the VGG perceptual loss (loss.subspec {self.objective.config.get('subspec')}) needs RGB "
                              f"targets, the model makes {out_channels} channels: use a sub-spec without +vgg")
        self.net_cfg = {"img_size": img_size, "in_channels": in_channels, "out_channels": out_channels,
                        "num_downs": num_downs, "ngf": ngf, "ndf": ndf, "n_layers_d": n_layers_d, "norm": norm,
                        "dropout": dropout, "output_activation": output_activation}
        self.eval_mode = bool(eval_mode)
        self.vae_cfg = _plain(vae)
        self.save_hyperparameters(logger=False)
        self.generator = UnetGenerator(in_channels, out_channels, num_downs, ngf, norm, dropout, output_activation)
        self.discriminator = PatchDiscriminator(in_channels + out_channels, ndf, n_layers_d, norm)
        self.build_discriminator_augment(in_channels + out_channels)
        self.train_batch_size = 1  # the grid translates in batches of this size (batch-norm statistics)

    @staticmethod
    def levels_for(img_size: int, num_downs: int | None) -> int:
        """U-Net levels: ``num_downs``, or ``log2(img_size)`` when ``None``; the size must divide evenly."""
        if num_downs is None:
            if img_size < 4 or img_size & (img_size - 1):
                raise ConfigError(f"model.img_size={img_size} is not a power of two: set model.num_downs so that "
                                  "2**num_downs divides it")
            return int(math.log2(img_size))
        if img_size % 2**num_downs:
            raise ConfigError(f"model.num_downs={num_downs} halves the size {num_downs} times, which "
                              f"model.img_size={img_size} does not allow: lower num_downs")
        return num_downs

    # ------------------------------------------------------------------ configuration
    def expected_data(self) -> dict[str, Any]:
        n = self.net_cfg
        return {"channels": n["in_channels"], "img_size": n["img_size"]}

    def compiled_nets(self) -> list[nn.Module]:
        return [self.generator, self.discriminator]

    def lr_schedule(self) -> tuple[int, int]:
        """``(n_epochs, n_epochs_decay)``: as configured, else ``trainer.max_epochs`` split in halves."""
        cfg = self.scheduler_cfg or {}
        n, decay = cfg.get("n_epochs"), cfg.get("n_epochs_decay")
        if n is not None and decay is not None:
            return int(n), int(decay)
        trainer = trainer_of(self)
        max_epochs = trainer.max_epochs if trainer is not None else None
        if not max_epochs or max_epochs < 0:
            return 10**9, 0  # no epoch budget known: constant learning rate
        decay = max_epochs // 2 if decay is None else int(decay)
        return (max_epochs - decay if n is None else int(n)), decay

    def configure_optimizers(self):
        opt_d = self.make_optimizer(self.discriminator.parameters())
        opt_g = self.make_optimizer(self.generator.parameters())
        n_epochs, n_epochs_decay = self.lr_schedule()
        schedulers = [{"scheduler": s, "interval": "epoch"} for opt in (opt_d, opt_g)
                      if (s := self.make_scheduler(opt, n_epochs=n_epochs, n_epochs_decay=n_epochs_decay))]
        return [opt_d, opt_g], schedulers

    # ------------------------------------------------------------------ training
    def training_step(self, batch: Mapping[str, Tensor], batch_idx: int) -> None:
        obj = self.objective
        obj.start_step()
        opt_d, opt_g = self.optimizers()
        real_a, real_b = self.to_model_space(batch["A"]), self.to_model_space(batch["B"])
        self.train_batch_size = real_a.shape[0]
        fake_b = self.generator(real_a)  # once: G does not change during the D update

        # 1) Discriminator: (A, B) is real, (A, G(A)) is fake. Each pair goes through augment_d as one
        # image (the identity with aug=none), so source and image get the same transform.
        aug = self.augment_d
        halves = [n for n in ("D_real", "D_fake") if obj.active(n)]
        if halves:  # none when the discriminator is switched off (L1-only regression)
            with self.toggled_optimizer(opt_d):
                fake_pair = torch.cat([real_a, fake_b.detach()], dim=1)
                pairs = {"D_real": aug(self.shown_as_real(torch.cat([real_a, real_b], dim=1), fake_pair)),
                         "D_fake": aug(fake_pair)}
                if self.net_cfg["norm"] == "batch" or len(halves) == 1:
                    # Separate passes, as the original: one batch-norm batch of reals and fakes would change
                    # the statistics each half is normalised with.
                    logits = [self.discriminator(pairs[n]) for n in halves]
                else:
                    logits = self.discriminator(torch.cat([pairs[n] for n in halves])).chunk(len(halves))
                for name, out in zip(halves, logits, strict=True):
                    obj.compute(name, out)
                    if name == "D_real":
                        self.observe_real_logits(out)
                self.update(opt_d, obj.total("D"))

        # 2) Generator: fool the updated discriminator and stay close to the target.
        with self.toggled_optimizer(opt_g):
            if obj.active("G_GAN"):
                obj.compute("G_GAN", self.discriminator(aug(torch.cat([real_a, fake_b], dim=1))))
            for name in PAIR_TERMS:
                if obj.active(name):
                    obj.compute(name, fake_b, real_b)
            self.update(opt_g, obj.total("G"))

    # ------------------------------------------------------------------ inference
    @torch.no_grad()
    def translate(self, x: Tensor) -> Tensor:
        """``G(x)`` in the data's space (pixels in [-1, 1] or unscaled latents), ``(B, C, H, W)``.

        Unless ``eval_mode``, batch-norm uses the statistics of ``x`` itself and dropout is on, as the paper;
        translate in batches of the training batch size to normalise as in training."""
        x = self.to_model_space(x.to(self.device))
        if self.eval_mode:
            with evaluating(self.generator):
                return self.to_data_space(self.generator(x)).float()
        with batch_statistics(self.generator):
            return self.to_data_space(self.generator(x)).float()

    @torch.no_grad()
    def visuals(self, batch: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """Grid columns: source | translated | target."""
        x = batch["A"]
        fake = torch.cat([self.translate(chunk) for chunk in x.split(self.train_batch_size)])
        return {"source": x, "translated": fake, "target": batch["B"]}

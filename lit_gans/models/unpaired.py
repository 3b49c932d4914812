"""What CycleGAN and CUT share: ResNet generators, any number of named discriminators per domain, the fake
pool, the semantic-mask segmenter ``f_s``, Adam with CycleGAN's constant-then-linear learning rate, and the
data checks.

Batches are ``{"A": (B, C, H, W), "B": (B, C, H, W)}`` with optional ``"A_mask"``, ``"B_mask"`` ``(B, H, W)``
class ids (``data=synthetic_unpaired``, ``data=unpaired``, ``data=latents`` with an unpaired file).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

import torch
from torch import Tensor, nn

from lit_gans.errors import ConfigError
from lit_gans.losses.unpaired_spec import OTHER_KEYS, TOTALS
from lit_gans.models.base import GANModule, _plain
from lit_gans.models.image_pool import ImagePool
from lit_gans.nets.discriminators import build_discriminator
from lit_gans.nets.resnet import ResnetGenerator, default_n_blocks
from lit_gans.nets.segmenter import UNetSegmenter

log = logging.getLogger(__name__)

# The CycleGAN/CUT code's training settings: Adam 2e-4 (0.5, 0.999), constant then linearly decaying learning rate.
OPTIMIZER = {"_target_": "torch.optim.Adam", "_partial_": True, "lr": 2e-4, "betas": (0.5, 0.999)}
SCHEDULER = {"_target_": "lit_gans.models.schedulers.linear_decay_scheduler", "_partial_": True, "n_epochs": 100,
             "n_epochs_decay": 100}


class UnpairedGAN(GANModule):
    """Base of :class:`~lit_gans.models.cyclegan.CycleGAN` and :class:`~lit_gans.models.cut.CUT`.

    Args:
        img_size: square image (or latent) size; ``None`` in config = the data's.
        in_channels: 3 for RGB, 4 for SD-VAE latents.
        ngf, n_blocks, norm, antialias, dropout: the ResNet generator (``n_blocks=None``: 9 at 256 px and
            above, 6 below).
        output_activation: ``tanh`` (pixels in [-1, 1]), ``none``, or ``auto``: tanh for pixels and none for
            latents (``latent_scale != 1``).
        discriminators: names from :data:`lit_gans.nets.discriminators.DISCRIMINATORS`, one discriminator of
            each per judged domain, each with its own losses and its own parameter group.
        ndf, n_layers_d, norm_d: the PatchGANs. num_scales: scales of the ``multiscale`` discriminator.
        antialias_d: blur-pooled down-sampling in the PatchGANs (CUT's default discriminator).
        init, init_gain: initialisation of G, the discriminators and CUT's heads
            (:func:`~lit_gans.nets.patchgan.init_weights`: CycleGAN ``normal`` 0.02, CUT ``xavier`` 0.02).
        pool_size: past fakes the discriminators also see (CycleGAN 50, CUT 0).
        sem_mask: train the segmenter ``f_s`` on the real masks and add the mask-conservation terms.
        num_classes: mask classes (``None`` in config = the data's). f_s_width: the segmenter's base width.
        optimizer, scheduler, fused_optimizer: see :class:`~lit_gans.models.base.GANModule` (defaults: the
            original's Adam and linear decay, ``OPTIMIZER``, ``SCHEDULER``).
        f_s_lr: the segmenter's learning rate (JoliGEN's ``train_sem_lr_f_s``).
        loss: the ``loss`` config block.
        latent_scale: data multiplier (``None``: 1, or the latent file's VAE scaling factor through Hydra).
        vae: optional ``{"path": ..., "subfolder": ...}`` of an SD VAE to decode latents for the grids.
        aug: the ``aug`` config block: augmentation of everything the discriminators see (``None``: none).
    """

    data_layouts = ("unpaired", "paired")  # the items it trains on (see BaseDataModule.layout)

    loss_totals = TOTALS
    loss_other_keys = OTHER_KEYS
    default_optimizer = OPTIMIZER
    spec_name = ""
    gan_domains: tuple[str, ...] = ()
    mask_directions: tuple[str, ...] = ()

    def __init__(self, img_size: int | None = None, in_channels: int = 3, ngf: int = 64, n_blocks: int | None = None,
                 norm: str = "instance", antialias: bool = False, dropout: bool = False,
                 output_activation: str = "auto", discriminators: Iterable[str] = ("basic",), ndf: int = 64,
                 n_layers_d: int = 3, norm_d: str = "instance", num_scales: int = 2, antialias_d: bool = False, init: str = "normal",
                 init_gain: float = 0.02, pool_size: int = 0, sem_mask: bool = False,
                 num_classes: int | None = None, f_s_width: int = 32, optimizer: Mapping[str, Any] | None = None,
                 scheduler: Mapping[str, Any] | None = SCHEDULER, fused_optimizer: bool | None = None,
                 f_s_lr: float = 2e-4, loss: Mapping[str, Any] | None = None, latent_scale: float | None = None,
                 channels_last: bool | str = "auto", compile: bool = False, vae: Mapping[str, Any] | None = None,
                 aug: Mapping[str, Any] | None = None):
        discriminators = list(_plain(discriminators))
        latent_scale = 1.0 if latent_scale is None else float(latent_scale)
        super().__init__(loss=loss, optimizer=optimizer, scheduler=scheduler, fused_optimizer=fused_optimizer,
                         latent_scale=latent_scale, channels_last=channels_last, compile=compile, aug=aug,
                         spec_args={"discriminators": discriminators, "sem_mask": bool(sem_mask)})
        if img_size is None:
            raise ValueError("img_size must be set (train.py fills it from the data when the config says null)")
        if output_activation == "auto":
            output_activation = "tanh" if latent_scale == 1.0 else "none"
        self.net_cfg = {"img_size": img_size, "in_channels": in_channels, "ngf": ngf,
                        "n_blocks": default_n_blocks(img_size) if n_blocks is None else n_blocks, "norm": norm,
                        "antialias": antialias, "dropout": dropout, "output_activation": output_activation,
                        "init": init, "init_gain": init_gain}
        self.f_s_lr = float(f_s_lr)
        self.vae_cfg = _plain(vae)
        self.discriminator_names = discriminators
        self.sem_mask = bool(sem_mask)
        self.num_classes = num_classes
        self.use_masks_b = self.sem_mask
        self.save_hyperparameters(logger=False)

        d_kw = {"in_channels": in_channels, "ndf": ndf, "n_layers": n_layers_d, "norm": norm_d,
                "num_scales": num_scales, "antialias": antialias_d, "init": init, "init_gain": init_gain}
        for dom in self.gan_domains:
            setattr(self, f"D_{dom}", nn.ModuleDict({n: build_discriminator(n, **d_kw) for n in discriminators}))
            setattr(self, f"pool_{dom}", ImagePool(pool_size, (in_channels, img_size, img_size)))
        self.build_discriminator_augment(in_channels)  # one pipeline (and one p) for every discriminator
        # Without a number of classes (the data has no masks) f_s is not built and setup() names the problem.
        self.f_s = UNetSegmenter(in_channels, num_classes, f_s_width) if self.sem_mask and num_classes else None
        if self.sem_mask:
            # f_s's loss of the previous step: JoliGEN applies G_sem_mask only once f_s is good enough
            # (loss.f_s_threshold); a device tensor, so the gate costs no host sync.
            self.register_buffer("f_s_last", torch.tensor(float("inf")))

    def make_generator(self) -> ResnetGenerator:
        n = self.net_cfg
        return ResnetGenerator(n["in_channels"], n["in_channels"], n["ngf"], n["n_blocks"], n["norm"], n["antialias"],
                               n["dropout"], n["output_activation"], n["init"], n["init_gain"])

    # ------------------------------------------------------------------ configuration
    def expected_data(self) -> dict[str, Any]:
        return {"channels": self.net_cfg["in_channels"], "img_size": self.net_cfg["img_size"]}

    def check_data(self, spec: Mapping[str, Any]) -> None:
        layout = spec.get("layout")
        if (layout is not None and layout not in self.data_layouts) or (layout is None and "num_domains" in spec):
            kind = f"a {layout!r} latent file" if layout else "multi-domain data"
            raise ConfigError(f"model={self.spec_name} trains on unpaired A/B data but got {kind}: use "
                              "data=synthetic_unpaired, data=unpaired or data=latents with an unpaired file")
        if self.sem_mask:
            if not spec.get("masks_a") or self.f_s is None:
                raise ConfigError("model.sem_mask=true needs masks for domain A (trainA_masks/ with data=unpaired, "
                                  "data.masks=true for the built-in data) and their number of classes "
                                  "(model.num_classes=null takes the data's): add masks or set model.sem_mask=false")
            if spec.get("num_classes") is not None and spec["num_classes"] != self.num_classes:
                raise ConfigError(f"the masks have {spec['num_classes']} classes but f_s is built for "
                                  f"{self.num_classes} (model.num_classes={self.num_classes}): set it to match or null")
        super().check_data(spec)
        self.use_masks_b = self.sem_mask and bool(spec.get("masks_b"))
        if self.sem_mask and not self.use_masks_b:
            for name in ("G_sem_mask_BA", "G_out_mask_BA"):
                if name in self.objective.terms:
                    self.objective.switch_off(name)
            log.info("domain B has no masks: f_s learns from A only%s",
                     " and G_sem_mask_BA / G_out_mask_BA are off" if "BA" in self.mask_directions else "")

    def discriminators_of(self, domain: str) -> nn.ModuleDict:
        return getattr(self, f"D_{domain}")

    def generator_param_groups(self) -> list[dict[str, Any]]:
        raise NotImplementedError

    def compiled_nets(self) -> list[nn.Module]:
        nets = [d for dom in self.gan_domains for d in self.discriminators_of(dom).values()]
        return nets + ([self.f_s] if self.f_s is not None else [])

    def configure_optimizers(self):
        opt_g = self.make_optimizer(self.generator_param_groups())
        # One optimizer, one parameter group per discriminator: Adam is per-parameter, so this equals one
        # optimizer per discriminator, stepped in one fused kernel.
        opt_d = self.make_optimizer([{"params": list(d.parameters()), "name": f"D_{dom}_{name}"}
                                     for dom in self.gan_domains for name, d in self.discriminators_of(dom).items()])
        optimizers = [opt_g, opt_d]
        if self.f_s is not None:
            optimizers.append(self.make_optimizer(self.f_s.parameters(), lr=self.f_s_lr))
        schedulers = [{"scheduler": s, "interval": "epoch"} for s in map(self.make_scheduler, optimizers) if s]
        return optimizers, schedulers

    # ------------------------------------------------------------------ loss pieces used by the steps
    def tag_active(self, tag: str) -> bool:
        """Whether any term of the tag has a non-zero weight (else its network's update is skipped)."""
        return any(term.group == tag and self.objective.active(name) for name, term in self.objective.terms.items())

    def generator_adversarial(self, domain: str, fake: Tensor) -> None:
        """``G_GAN_D_<domain>_<name>`` for every discriminator of ``domain`` (skipped at weight 0), on the
        fakes as the discriminators see them (augmented when ``aug`` is set; G learns through it)."""
        active = [(f"G_GAN_D_{domain}_{name}", d) for name, d in self.discriminators_of(domain).items()
                  if self.objective.active(f"G_GAN_D_{domain}_{name}")]
        shown = self.augment_d(fake) if active else fake
        for term, d in active:
            self.objective.compute(term, d(shown))

    def discriminator_adversarial(self, domain: str, real: Tensor, fake: Tensor) -> None:
        """``D_GAN_D_<domain>_<name>`` on real images and (detached, pooled) fakes, one batched pass each,
        both augmented alike when ``aug`` is set (with ``aug=apa`` some reals are replaced by the fakes)."""
        b = real.shape[0]
        fake = fake.detach()
        both = self.augment_d(torch.cat([self.shown_as_real(real, fake), fake]))
        for name, d in self.discriminators_of(domain).items():
            term = f"D_GAN_D_{domain}_{name}"
            if self.objective.active(term):
                logits = d(both)
                self.observe_real_logits([x[:b] for x in logits])
                self.objective.compute(term, [x[:b] for x in logits], [x[b:] for x in logits])

    def f_s_gate(self) -> Tensor | float:
        """1 once f_s's last loss is at most ``loss.f_s_threshold`` (0 before), as a device tensor; 1 without
        a threshold."""
        threshold = self.loss_cfg.get("f_s_threshold", 1.0)
        if threshold is None:
            return 1.0
        return (self.f_s_last <= float(threshold)).float()

    def semantic_terms(self, direction: str, fake: Tensor, real: Tensor, mask: Tensor) -> None:
        """``G_sem_mask_<dir> = CE(f_s(fake), mask)`` (gated by :meth:`f_s_gate`) and
        ``G_out_mask_<dir> = L1(fake, real)`` on the background of ``mask``."""
        obj = self.objective
        if obj.active(f"G_sem_mask_{direction}"):
            obj.add(f"G_sem_mask_{direction}", obj.fn(f"G_sem_mask_{direction}")(self.f_s(fake), mask) * self.f_s_gate())
        if obj.active(f"G_out_mask_{direction}"):
            obj.compute(f"G_out_mask_{direction}", fake, real, mask)

    def segmenter_step(self, opt: Any, real_a: Tensor, mask_a: Tensor, real_b: Tensor, mask_b: Tensor | None) -> None:
        """One update of f_s: ``f_s = CE(f_s(A), mask_A) [+ CE(f_s(B), mask_B)]`` on real images."""
        obj = self.objective
        with self.toggled_optimizer(opt):
            if mask_b is not None and self.use_masks_b:
                logits_a, logits_b = self.f_s(torch.cat([real_a, real_b])).chunk(2)
                obj.compute("f_s", logits_a, mask_a)
                obj.compute("f_s", logits_b, mask_b)
            else:
                obj.compute("f_s", self.f_s(real_a), mask_a)
            self.update(opt, obj.total("f_s"))
        self.f_s_last.copy_(obj.value("f_s").detach())

    def masks(self, batch: Mapping[str, Tensor]) -> tuple[Tensor | None, Tensor | None]:
        if not self.sem_mask:
            return None, None
        if "A_mask" not in batch:
            raise ConfigError("model.sem_mask=true but the batch has no A_mask: the data has no masks for domain A")
        return batch["A_mask"], batch.get("B_mask")

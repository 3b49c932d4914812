"""StarGAN v2 (Choi et al., 2020) as one LightningModule, on pixels or on SD-VAE latents.

One training step is the latent-StarGAN seed's algorithm: one discriminator update, then one update of
generator G, style encoder E and mapping network F, each over a *reference* path (style ``E(x_ref)``) and a
*latent* path (style ``F(z1)``)::

    d_loss = 0.5 * (adv_d(D(x_ref), D(G(c, s_ref))) + adv_d(D(x_ref), D(G(c, s_lat))))  [+ w_r1*N*r1 every N]
    g_loss = w_adv*g_adv + w_sty*sty + w_cyc*cyc + w_id*id - lambda_ds*ds

Weights come from the ``loss`` config; ``lambda_ds`` and "is this an R1 step" come from callbacks that set
gains on the objective's terms (see :mod:`lit_gans.callbacks.schedules`). The diversity term ``ds`` compares
two fakes of the same source: on the latent path (styles ``F(z1)``, ``F(z2)``: the seed's) and, with
``ds_paths`` including ``ref``, on the reference path (``E(x_ref)``, ``E(x_ref2)``: the official code's
reference-path G update); ``ds_detach_second`` stops the gradient through the second fake as the official
``x_fake2.detach()``. Once ``lambda_ds`` has decayed to 0 the term gets no gradient work, but its curve still
shows the true distance (a forward pass without gradients).

Which networks each path trains: in the seed's single backward every term reaches every network it depends on. The
official ``core/solver.py`` steps the style encoder after the latent-guided pass only (its reference-guided pass
steps G alone); ``ref_path_trains_encoder=False`` does the same in one backward: the reference path's styles
``E(x_ref)`` are detached, its style reconstruction reads ``E(G(x, s_ref))`` with E's parameters detached, and its
cycle uses ``E(x_src)`` detached, so E learns only to read the latent path's fakes (``sty``) and the sources
(``cyc``). With the seed's setting the reference path's style reconstruction and adversarial terms reach E through
``E(x_ref)``, and a constant code satisfies the first: on the quickstart the spread of E's codes over references
fell from 0.18 to 0.08 of their norm in the second epoch and to 0.006 by the end, and every reference gave the same
output.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from lit_gans.errors import ConfigError
from lit_gans.losses.stargan_spec import SCHEDULE_KEYS, TOTALS, stargan_v2
from lit_gans.models.base import GANModule, _plain, eager
from lit_gans.nets.fan import FAN, load_fan
from lit_gans.nets.stargan_v2 import Discriminator, Generator, MappingNetwork, StyleEncoder
from lit_gans.utils.precision import float32_or_wider


def mismatched_domains(y_src: Tensor, y_trg: Tensor, num_domains: int) -> Tensor:
    """For each source of domain ``y_src``, a domain it does not belong to: the target ``y_trg`` where that differs,
    else the next domain ``(y_src + 1) % num_domains``. ``(B,)`` int64 on the labels' device, without a host sync."""
    return torch.where(y_trg != y_src, y_trg, (y_src + 1) % num_domains)


class StarGANv2(GANModule):
    """Args:
        img_size: height and width of images/latents (power of two).
        in_channels: 3 for RGB pixels, 4 for SD-VAE latents.
        num_domains: number of domains (set from the data when ``None`` through Hydra).
        dim: base width; ``None`` for the official ``2**14 // img_size``.
        max_conv_dim: width cap of all convolutional nets.
        style_dim: style code size. latent_dim: random code size. mapping_dim: hidden width of F.
        n_down: down-sampling blocks of G; ``None`` for the official ``log2(img_size) - 4``.
        optimizer: the optimizer of G, E, D (and F at ``mapping_lr``): the official Adam, lr 1e-4, betas
            (0, 0.99), weight decay 1e-4 (see :class:`~lit_gans.models.base.GANModule`).
        mapping_lr: the mapping network F's learning rate (the official 1e-6).
        ds_paths: paths whose two fakes the diversity term compares: ``latent`` (``z1``/``z2``, the seed's),
            ``ref`` (``x_ref``/``x_ref2``, which the data then loads); the official code uses both.
        ds_detach_second: no gradient through the second fake of each pair (the official ``x_fake2.detach()``).
        w_hpf: the high-pass filter of the official CelebA-HQ setting (``w_hpf=1``; 0: off): masks from a
            face-alignment network (:class:`~lit_gans.nets.fan.FAN`) select the source's facial details that
            skip connections carry to the output (see :class:`~lit_gans.nets.stargan_v2.Generator`). Pixels only.
        fan_path: the FAN's weights (``wing.ckpt`` of clovaai/stargan-v2), a local file read when training
            starts; checkpoints then carry them, so translating needs no file.
        ref_path_trains_encoder: whether the reference-guided path's terms update the style encoder E (the seed's
            single backward: True) or G only (the official solver's: False; see the module's docstring).
        loss: the ``loss`` config block (spec ``stargan_v2``).
        latent_scale: 0.18215 for unscaled SD-VAE latents, 1.0 for pixels.
        ema_beta: decay of the moving averages of G, E, F used for sampling (see ``GANModule``).
        ema_warmup: ramp the EMA decay up from 0.1 to ``ema_beta`` (see ``GANModule``).
        vae: optional ``{"path": ..., "subfolder": ...}`` of an SD VAE used to decode latents for viewing.
        aug: the ``aug`` config block: augmentation of everything the discriminator sees (``None``: none).
    """

    data_layouts = ("domains",)  # the items it trains on (see BaseDataModule.layout)
    loss_spec = staticmethod(stargan_v2)
    loss_totals = TOTALS
    loss_other_keys = SCHEDULE_KEYS
    default_optimizer = {"_target_": "torch.optim.Adam", "_partial_": True, "lr": 1e-4, "betas": (0.0, 0.99),
                         "weight_decay": 1e-4}

    def __init__(self, img_size: int = 256, in_channels: int = 3, num_domains: int = 2, dim: int | None = None,
                 max_conv_dim: int = 512, style_dim: int = 64, latent_dim: int = 16, mapping_dim: int = 512,
                 n_down: int | None = None, optimizer: Mapping[str, Any] | None = None, mapping_lr: float = 1e-6,
                 fused_optimizer: bool | None = None,
                 ds_paths: Sequence[str] = ("latent",), ds_detach_second: bool = False, w_hpf: float = 0.0,
                 fan_path: str | None = None, ref_path_trains_encoder: bool = True,
                 loss: Mapping[str, Any] | None = None, latent_scale: float = 1.0, ema_beta: float = 0.999,
                 ema_warmup: bool = True, channels_last: bool | str = "auto", compile: bool = False,
                 vae: Mapping[str, Any] | None = None, aug: Mapping[str, Any] | None = None):
        super().__init__(loss=loss, optimizer=optimizer, fused_optimizer=fused_optimizer, latent_scale=latent_scale,
                         channels_last=channels_last, compile=compile, ema_beta=ema_beta, ema_warmup=ema_warmup,
                         aug=aug)
        if num_domains is None:
            raise ValueError("num_domains must be set (train.py fills it from the data when the config says null)")
        self.net_cfg = {"img_size": img_size, "in_channels": in_channels, "num_domains": num_domains, "dim": dim,
                        "max_conv_dim": max_conv_dim, "style_dim": style_dim, "latent_dim": latent_dim,
                        "mapping_dim": mapping_dim, "n_down": n_down}
        self.mapping_lr = float(mapping_lr)
        self.ds_paths = tuple(dict.fromkeys(_plain(ds_paths) or ()))
        if not self.ds_paths or set(self.ds_paths) - {"latent", "ref"}:
            raise ConfigError(f"model.ds_paths={list(self.ds_paths)}: choose one or both of latent, ref")
        self.ds_detach_second = bool(ds_detach_second)
        self.w_hpf, self.fan_path = float(w_hpf), fan_path
        self.ref_path_trains_encoder = bool(ref_path_trains_encoder)
        if self.w_hpf > 0 and in_channels != 3:
            raise ConfigError(f"model.w_hpf={w_hpf}: the high-pass filter works on RGB faces (its masks come from a "
                              f"face-alignment network), not on {in_channels}-channel latents: set model.w_hpf=0")
        self.vae_cfg = _plain(vae)
        self.save_hyperparameters(logger=False)
        n = self.net_cfg
        trunk = {"img_size": n["img_size"], "in_channels": n["in_channels"], "dim": n["dim"],
                 "max_conv_dim": n["max_conv_dim"]}
        self.generator = Generator(**trunk, style_dim=n["style_dim"], n_down=n["n_down"], w_hpf=self.w_hpf)
        self.fan = FAN() if self.w_hpf > 0 else None  # weights: load_fan(fan_path) at fit start
        self.mapping_network = MappingNetwork(n["latent_dim"], n["style_dim"], n["num_domains"], n["mapping_dim"])
        self.style_encoder = StyleEncoder(**trunk, style_dim=n["style_dim"], num_domains=n["num_domains"])
        self.discriminator = Discriminator(**trunk, num_domains=n["num_domains"])
        for name in ("generator", "mapping_network", "style_encoder"):
            self.add_ema(name)
        self.build_discriminator_augment(in_channels)

    # ------------------------------------------------------------------ configuration
    @property
    def uses_second_reference(self) -> bool:
        """Whether batches must hold ``x_ref2`` (a second reference of the target domain)."""
        return "ref" in self.ds_paths

    def setup(self, stage: str) -> None:
        super().setup(stage)
        if self.fan is not None and stage == "fit":
            self.fan.load_state_dict(load_fan(self.fan_path).state_dict())  # a resumed run's checkpoint then loads

    def hpf_masks(self, x: Tensor) -> tuple[Tensor, Tensor] | None:
        """The high-pass filter's face masks of model-space images ``x`` (``None`` without the filter)."""
        return None if self.fan is None else self.fan.masks(x)

    def expected_data(self) -> dict[str, Any]:
        n = self.net_cfg
        return {"channels": n["in_channels"], "img_size": n["img_size"], "num_domains": n["num_domains"]}

    def compiled_nets(self) -> list[torch.nn.Module]:
        return [self.generator, self.mapping_network, self.style_encoder, self.discriminator]

    def configure_optimizers(self):
        opt_d = self.make_optimizer(self.discriminator.parameters())
        # One optimizer for G, E and F (F at its own learning rate): Adam is per-parameter, so this equals
        # the original's three optimizers and steps them in one fused kernel.
        opt_g = self.make_optimizer([
            {"params": self.generator.parameters()},
            {"params": self.style_encoder.parameters()},
            {"params": self.mapping_network.parameters(), "lr": self.mapping_lr},
        ])
        return opt_d, opt_g

    # ------------------------------------------------------------------ training
    def training_step(self, batch: Mapping[str, Tensor], batch_idx: int) -> None:
        obj = self.objective
        obj.start_step()
        opt_d, opt_g = self.optimizers()
        x_src, y_src = self.to_model_space(batch["x_src"]), batch["y_src"]
        x_ref, y_trg = self.to_model_space(batch["x_ref"]), batch["y_trg"]
        b = x_src.shape[0]
        ds_weighted = obj.active("ds")
        latent_ds, ref_ds = "latent" in self.ds_paths, "ref" in self.ds_paths
        x_ref2 = self.to_model_space(batch["x_ref2"]) if ref_ds else None

        # Styles and fakes, computed once: G, E and F do not change during the D update, so these are
        # exactly the fakes both updates see (the D update sees them detached). While ds is weighted, the
        # second style of each ds path joins the same batched passes.
        refs = [x_ref, x_ref2] if ref_ds and ds_weighted else [x_ref]
        zs = [batch["z1"], batch["z2"]] if latent_ds and ds_weighted else [batch["z1"]]
        s_ref, *s_ref2 = self.style_encoder(torch.cat(refs), y_trg.repeat(len(refs))).split(b)
        if not self.ref_path_trains_encoder:  # the official reference pass steps G only
            s_ref, s_ref2 = s_ref.detach(), [s.detach() for s in s_ref2]
        s_lat, *s_lat2 = self.mapping_network(torch.cat(zs), y_trg.repeat(len(zs))).split(b)
        styles = [s_ref, s_lat, *s_lat2, *s_ref2]
        masks = self.hpf_masks(x_src)  # the official masks of the translation (of x_real), None without w_hpf
        fake_ref, fake_lat, *second_fakes = self.generator(x_src.repeat(len(styles), 1, 1, 1), torch.cat(styles),
                                                           _repeat(masks, len(styles))).split(b)
        fakes = torch.cat([fake_ref, fake_lat])
        y2 = y_trg.repeat(2)

        # 1) Discriminator: real references vs. the fakes of both paths (+ R1 on R1 steps). Everything it
        # sees goes through augment_d (the identity with aug=none); with aug=apa some references are replaced
        # by reference-guided fakes of the same domain.
        aug = self.augment_d
        with self.toggled_optimizer(opt_d):
            x_real = self.shown_as_real(x_ref, fake_ref)
            # With d_mismatch, the sources join the pass that D sees as fake, each shown to the head of another
            # domain (the target's, or the next domain's when the target is the source's own).
            mismatch = obj.active("d_mismatch")
            shown_fake, y_fake = fakes.detach(), y2
            if mismatch:
                shown_fake = torch.cat([shown_fake, x_src])
                y_fake = torch.cat([y_fake, mismatched_domains(y_src, y_trg, self.net_cfg["num_domains"])])
            if obj.active("r1"):
                # R1 in float32 with autocast off, w.r.t. the un-augmented reals (augmented inside the graph,
                # as StyleGAN2-ADA); on these steps the same fp32 pass gives the real logits.
                x_real = float32_or_wider(x_real.detach()).requires_grad_(True)
                with torch.autocast(self.device.type, enabled=False):
                    real_logits = eager(self.discriminator)(aug(x_real), y_trg)
                    obj.compute("r1", real_logits, x_real)
                fake_logits = self.discriminator(aug(shown_fake), y_fake)
            else:
                logits = self.discriminator(aug(torch.cat([x_real, shown_fake])), torch.cat([y_trg, y_fake]))
                real_logits, fake_logits = logits[:b], logits[b:]
            if mismatch:
                fake_logits, mismatch_logits = fake_logits[:2 * b], fake_logits[2 * b:]
                obj.compute("d_mismatch", mismatch_logits)
            self.observe_real_logits(real_logits)
            adv_d = obj.fn("d_adv")
            fake_ref_logits, fake_lat_logits = fake_logits.chunk(2)
            obj.add("d_adv", 0.5 * (adv_d(real_logits, fake_ref_logits) + adv_d(real_logits, fake_lat_logits)))
            self.update(opt_d, obj.total("D"))

        # 2) Generator, style encoder and mapping network.
        with self.toggled_optimizer(opt_g):
            logits_ref, logits_lat = self.discriminator(aug(fakes), y2).chunk(2)
            obj.compute("g_adv", logits_ref)
            obj.compute("g_adv", logits_lat)
            # One style-encoder pass: the fakes' styles (style reconstruction) and the source's (cycle).
            if self.ref_path_trains_encoder:
                s_pred_ref, s_pred_lat, s_src = self.style_encoder(torch.cat([fakes, x_src]),
                                                                   torch.cat([y2, y_src])).split(b)
            else:  # E reads the reference path's fakes with its parameters detached: only G learns from that term
                s_pred_lat, s_src = self.style_encoder(torch.cat([fake_lat, x_src]), torch.cat([y_trg, y_src])).split(b)
                s_pred_ref = self.frozen_style_encoder(fake_ref, y_trg)
            obj.compute("sty", s_pred_ref, s_ref)
            obj.compute("sty", s_pred_lat, s_lat)
            if ds_weighted:
                fake_lat2 = second_fakes.pop(0) if latent_ds else None
                fake_ref2 = second_fakes.pop(0) if ref_ds else None
                self.diversity(fake_lat, fake_lat2, fake_ref, fake_ref2)
            else:
                self.decayed_diversity(x_src, y_trg, batch["z2"], x_ref2, fake_lat, fake_ref, masks)
            with_id = obj.active("id")
            inputs = torch.cat([fakes, x_src]) if with_id else fakes
            # the cycle's masks are the fakes' own (official: fan.get_heatmap(x_fake))
            s_cyc = [s_src if self.ref_path_trains_encoder else s_src.detach(), s_src]  # (ref, latent) paths
            s_cyc += [s_src] if with_id else []
            outs = self.generator(inputs, torch.cat(s_cyc), self.hpf_masks(inputs))
            rec_ref, rec_lat, *rec_src = outs.split(b)
            obj.compute("cyc", rec_ref, x_src)
            obj.compute("cyc", rec_lat, x_src)
            if with_id:
                obj.compute("id", rec_src[0], x_src)
            self.update(opt_g, obj.total("G"))

        self.update_ema()

    def frozen_style_encoder(self, x: Tensor, y: Tensor) -> Tensor:
        """``E(x, y)`` with E's parameters out of the graph: gradients reach ``x`` only."""
        params = [p for p in self.style_encoder.parameters() if p.requires_grad]
        for p in params:
            p.requires_grad_(False)
        try:
            return self.style_encoder(x, y)
        finally:
            for p in params:
                p.requires_grad_(True)

    def diversity(self, fake_lat: Tensor, fake_lat2: Tensor | None, fake_ref: Tensor, fake_ref2: Tensor | None) -> None:
        """Record ``ds`` of each path of ``ds_paths``: the distance between its two fakes of the same source
        (summed over paths, as every StarGAN v2 term here); the second fake is detached with
        ``ds_detach_second``."""
        for first, second in ((fake_lat, fake_lat2), (fake_ref, fake_ref2)):
            if second is not None:
                self.objective.compute("ds", first, second.detach() if self.ds_detach_second else second)

    @torch.no_grad()
    def decayed_diversity(self, x_src: Tensor, y_trg: Tensor, z2: Tensor, x_ref2: Tensor | None, fake_lat: Tensor,
                          fake_ref: Tensor, masks: tuple[Tensor, Tensor] | None = None) -> None:
        """``ds`` once ``lambda_ds`` is 0: the same distance, from a forward pass without gradients (it adds
        nothing to ``g_loss``), so that the curve means the same thing in every epoch."""
        b = x_src.shape[0]
        seconds = []
        if "latent" in self.ds_paths:
            seconds.append(self.mapping_network(z2, y_trg))
        if "ref" in self.ds_paths:
            seconds.append(self.style_encoder(x_ref2, y_trg))
        fakes2 = self.generator(x_src.repeat(len(seconds), 1, 1, 1), torch.cat(seconds),
                                _repeat(masks, len(seconds))).split(b)
        fake_lat2 = fakes2[0] if "latent" in self.ds_paths else None
        fake_ref2 = fakes2[-1] if "ref" in self.ds_paths else None
        self.diversity(fake_lat.detach(), fake_lat2, fake_ref.detach(), fake_ref2)

    # ------------------------------------------------------------------ inference
    @torch.no_grad()
    def translate(self, x: Tensor, y_trg: Tensor | int, x_ref: Tensor | None = None, z: Tensor | None = None) -> Tensor:
        """Translate ``x`` into domain ``y_trg`` with the EMA networks.

        Reference-guided when ``x_ref`` is given (its style), latent-guided otherwise (style from ``z``, drawn
        from N(0, I) when ``None``). Inputs and output are in the data's own space (unscaled latents, or
        pixels in [-1, 1]), shapes ``(B, C, H, W)``; ``y_trg`` is an int or ``(B,)``.
        """
        x = self.to_model_space(x.to(self.device))
        b = x.shape[0]
        y = torch.as_tensor(y_trg, dtype=torch.long, device=self.device).expand(b)
        if x_ref is not None:
            s = self.style_encoder_ema(self.to_model_space(x_ref.to(self.device)), y)
        else:
            if z is None:
                z = torch.randn(b, self.net_cfg["latent_dim"], device=self.device)
            s = self.mapping_network_ema(z.to(self.device), y)
        return self.to_data_space(self.generator_ema(x, s, self.hpf_masks(x))).float()

    @torch.no_grad()
    def visuals(self, batch: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """Grid columns: source | reference | reference-guided | latent-guided (EMA nets)."""
        x_src, x_ref, y_trg = batch["x_src"], batch["x_ref"], batch["y_trg"]
        return {
            "source": x_src,
            "reference": x_ref,
            "ref_guided": self.translate(x_src, y_trg, x_ref=x_ref),
            "latent_guided": self.translate(x_src, y_trg, z=batch["z1"]),
        }


def _repeat(masks: tuple[Tensor, Tensor] | None, times: int) -> tuple[Tensor, Tensor] | None:
    return None if masks is None else (masks[0].repeat(times, 1, 1, 1), masks[1].repeat(times, 1, 1, 1))

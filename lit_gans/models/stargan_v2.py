"""StarGAN v2 (Choi et al., 2020) as one LightningModule, on pixels or on SD-VAE latents.

One training step is the latent-StarGAN seed's algorithm: one discriminator update, then one update of
generator G, style encoder E and mapping network F, each over a *reference* path (style ``E(x_ref)``) and a
*latent* path (style ``F(z1)``)::

    d_loss = 0.5 * (adv_d(D(x_ref), D(G(c, s_ref))) + adv_d(D(x_ref), D(G(c, s_lat))))  [+ w_r1*N*r1 every N]
    g_loss = w_adv*g_adv + w_sty*sty + w_cyc*cyc + w_id*id - lambda_ds*ds

Weights come from the ``loss`` config; ``lambda_ds`` and "is this an R1 step" come from callbacks that set
gains on the objective's terms (see :mod:`lit_gans.callbacks.schedules`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from lit_gans.models.base import GANModule, _plain, eager
from lit_gans.nets.stargan_v2 import Discriminator, Generator, MappingNetwork, StyleEncoder

OPTIM_DEFAULTS: dict[str, Any] = {
    "lr": 1e-4,
    "f_lr": 1e-6,
    "betas": (0.0, 0.99),
    "weight_decay": 1e-4,
    "fused": None,  # None: fused kernels on CUDA and CPU
}


class StarGANv2(GANModule):
    """Args:
        img_size: height and width of images/latents (power of two).
        in_channels: 3 for RGB pixels, 4 for SD-VAE latents.
        num_domains: number of domains (set from the data when ``None`` through Hydra).
        dim: base width; ``None`` for the official ``2**14 // img_size``.
        max_conv_dim: width cap of all convolutional nets.
        style_dim: style code size. latent_dim: random code size. mapping_dim: hidden width of F.
        n_down: down-sampling blocks of G; ``None`` for the official ``log2(img_size) - 4``.
        optim: Adam settings for G, E, D (``lr``) and F (``f_lr``), as the original.
        loss: the ``loss`` config block (spec ``stargan_v2``).
        latent_scale: 0.18215 for unscaled SD-VAE latents, 1.0 for pixels.
        ema_beta: decay of the moving averages of G, E, F used for sampling (see ``GANModule``).
        ema_warmup: ramp the EMA decay up from 0.1 to ``ema_beta`` (see ``GANModule``).
        vae: optional ``{"path": ..., "subfolder": ...}`` of an SD VAE used to decode latents for viewing.
        aug: the ``aug`` config block: augmentation of everything the discriminator sees (``None``: none).
    """

    data_layouts = ("domains",)  # the items it trains on (see BaseDataModule.layout)

    def __init__(self, img_size: int = 256, in_channels: int = 3, num_domains: int = 2, dim: int | None = None,
                 max_conv_dim: int = 512, style_dim: int = 64, latent_dim: int = 16, mapping_dim: int = 512,
                 n_down: int | None = None, optim: Mapping[str, Any] | None = None,
                 loss: Mapping[str, Any] | None = None, latent_scale: float = 1.0, ema_beta: float = 0.999,
                 ema_warmup: bool = True, channels_last: bool | str = "auto", compile: bool = False,
                 vae: Mapping[str, Any] | None = None, aug: Mapping[str, Any] | None = None):
        loss = _plain(loss) or {"spec": "stargan_v2", "totals": {"D": "d_loss", "G": "g_loss"}}
        super().__init__(loss=loss, latent_scale=latent_scale, channels_last=channels_last, compile=compile,
                         ema_beta=ema_beta, ema_warmup=ema_warmup, aug=aug)
        if num_domains is None:
            raise ValueError("num_domains must be set (train.py fills it from the data when the config says null)")
        self.net_cfg = {"img_size": img_size, "in_channels": in_channels, "num_domains": num_domains, "dim": dim,
                        "max_conv_dim": max_conv_dim, "style_dim": style_dim, "latent_dim": latent_dim,
                        "mapping_dim": mapping_dim, "n_down": n_down}
        self.optim_cfg = {**OPTIM_DEFAULTS, **(_plain(optim) or {})}
        self.vae_cfg = _plain(vae)
        self.save_hyperparameters(logger=False)
        n = self.net_cfg
        trunk = {"img_size": n["img_size"], "in_channels": n["in_channels"], "dim": n["dim"],
                 "max_conv_dim": n["max_conv_dim"]}
        self.generator = Generator(**trunk, style_dim=n["style_dim"], n_down=n["n_down"])
        self.mapping_network = MappingNetwork(n["latent_dim"], n["style_dim"], n["num_domains"], n["mapping_dim"])
        self.style_encoder = StyleEncoder(**trunk, style_dim=n["style_dim"], num_domains=n["num_domains"])
        self.discriminator = Discriminator(**trunk, num_domains=n["num_domains"])
        for name in ("generator", "mapping_network", "style_encoder"):
            self.add_ema(name)
        self.build_discriminator_augment(in_channels)

    # ------------------------------------------------------------------ configuration
    def expected_data(self) -> dict[str, Any]:
        n = self.net_cfg
        return {"channels": n["in_channels"], "img_size": n["img_size"], "num_domains": n["num_domains"]}

    def compiled_nets(self) -> list[torch.nn.Module]:
        return [self.generator, self.mapping_network, self.style_encoder, self.discriminator]

    def configure_optimizers(self):
        o = self.optim_cfg
        kw = {"lr": o["lr"], "betas": tuple(o["betas"]), "weight_decay": o["weight_decay"],
              "fused": self.use_fused_optimizer(o["fused"])}
        opt_d = torch.optim.Adam(self.discriminator.parameters(), **kw)
        # One optimizer for G, E and F (F at its own learning rate): Adam is per-parameter, so this equals
        # the original's three optimizers and steps them in one fused kernel.
        opt_g = torch.optim.Adam(
            [
                {"params": self.generator.parameters()},
                {"params": self.style_encoder.parameters()},
                {"params": self.mapping_network.parameters(), "lr": o["f_lr"]},
            ],
            **kw,
        )
        return opt_d, opt_g

    # ------------------------------------------------------------------ training
    def training_step(self, batch: Mapping[str, Tensor], batch_idx: int) -> None:
        obj = self.objective
        obj.start_step()
        opt_d, opt_g = self.optimizers()
        x_src, y_src = self.to_model_space(batch["x_src"]), batch["y_src"]
        x_ref, y_trg = self.to_model_space(batch["x_ref"]), batch["y_trg"]
        b = x_src.shape[0]
        with_ds = obj.active("ds")

        # Styles and fakes, computed once: G, E and F do not change during the D update, so these are
        # exactly the fakes both updates see (the D update sees them detached).
        s_ref = self.style_encoder(x_ref, y_trg)
        z = torch.cat([batch["z1"], batch["z2"]]) if with_ds else batch["z1"]
        s_lat_all = self.mapping_network(z, y_trg.repeat(z.shape[0] // b))
        styles = torch.cat([s_ref, s_lat_all])
        fakes_all = self.generator(x_src.repeat(styles.shape[0] // b, 1, 1, 1), styles)
        s_lat = s_lat_all[:b]
        fakes = fakes_all[: 2 * b]  # [ref path; latent path]
        y2 = y_trg.repeat(2)

        # 1) Discriminator: real references vs. the fakes of both paths (+ R1 on R1 steps). Everything it
        # sees goes through augment_d (the identity with aug=none); with aug=apa some references are replaced
        # by reference-guided fakes of the same domain.
        aug = self.augment_d
        with self.toggled_optimizer(opt_d):
            x_real = self.shown_as_real(x_ref, fakes[:b])
            if obj.active("r1"):
                # R1 in float32 with autocast off, w.r.t. the un-augmented reals (augmented inside the graph,
                # as StyleGAN2-ADA); on these steps the same fp32 pass gives the real logits.
                x_real = x_real.detach().float().requires_grad_(True)
                with torch.autocast(self.device.type, enabled=False):
                    real_logits = eager(self.discriminator)(aug(x_real), y_trg)
                    obj.compute("r1", real_logits, x_real)
                fake_logits = self.discriminator(aug(fakes.detach()), y2)
            else:
                logits = self.discriminator(aug(torch.cat([x_real, fakes.detach()])), y_trg.repeat(3))
                real_logits, fake_logits = logits[:b], logits[b:]
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
            s_pred_ref, s_pred_lat, s_src = self.style_encoder(torch.cat([fakes, x_src]),
                                                               torch.cat([y2, y_src])).split(b)
            obj.compute("sty", s_pred_ref, s_ref)
            obj.compute("sty", s_pred_lat, s_lat)
            if with_ds:
                obj.compute("ds", fakes_all[b : 2 * b], fakes_all[2 * b :])
            with_id = obj.active("id")
            inputs = torch.cat([fakes, x_src]) if with_id else fakes
            outs = self.generator(inputs, s_src.repeat(inputs.shape[0] // b, 1))
            rec_ref, rec_lat = outs[:b], outs[b : 2 * b]
            obj.compute("cyc", rec_ref, x_src)
            obj.compute("cyc", rec_lat, x_src)
            if with_id:
                obj.compute("id", outs[2 * b :], x_src)
            self.update(opt_g, obj.total("G"))

        self.update_ema()

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
        return self.to_data_space(self.generator_ema(x, s)).float()

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

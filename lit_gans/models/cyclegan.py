"""CycleGAN (Zhu et al., ICCV 2017) as one LightningModule, with JoliGEN's loss names, any number of
discriminators per domain and optional semantic-mask conservation.

One training step is the original's ``optimize_parameters``::

    fake_B = G_A(A), rec_A = G_B(fake_B), fake_A = G_B(B), rec_B = G_A(fake_A)   [idt_A = G_A(B), idt_B = G_B(A)]
    G_tot = sum_D G_GAN_D_B_* + sum_D G_GAN_D_A_* + lambda_A |rec_A - A| + lambda_B |rec_B - B|
            + lambda_identity (lambda_B |idt_A - B| + lambda_A |idt_B - A|)   [+ semantic-mask terms]
    D_tot = 0.5 sum_D (real + fake) on B with pool_B(fake_B), and on A with pool_A(fake_A)
    [f_s = CE(f_s(A), mask_A) + CE(f_s(B), mask_B)]

The generators are updated first (discriminators frozen), then the discriminators on fakes drawn through the
image pool, then f_s. Each generator translates its real input and (for the identity loss) the other
domain's real image in one batched pass, which instance norm makes exact.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from lit_gans.losses.unpaired_spec import cyclegan
from lit_gans.models.unpaired import UnpairedGAN


class CycleGAN(UnpairedGAN):
    """Generators ``G_A: A -> B`` and ``G_B: B -> A``; discriminators ``D_B[<name>]`` (judge B, i.e.
    ``fake_B``) and ``D_A[<name>]``. Arguments: see :class:`~lit_gans.models.unpaired.UnpairedGAN`
    (``pool_size`` 50 and LSGAN by default, as the original)."""

    loss_spec = staticmethod(cyclegan)
    spec_name = "cyclegan"
    gan_domains = ("A", "B")
    mask_directions = ("AB", "BA")

    def __init__(self, pool_size: int = 50, **kwargs: Any):
        super().__init__(pool_size=pool_size, **kwargs)
        self.G_A = self.make_generator()
        self.G_B = self.make_generator()

    def generator_param_groups(self) -> list[dict[str, Any]]:
        return [{"params": list(self.G_A.parameters()), "name": "G_A"},
                {"params": list(self.G_B.parameters()), "name": "G_B"}]

    def compiled_nets(self) -> list[torch.nn.Module]:
        return [self.G_A, self.G_B, *super().compiled_nets()]

    @staticmethod
    def _translate_with(net: torch.nn.Module, x: Tensor, extra: Tensor | None) -> tuple[Tensor, Tensor | None]:
        """``net(x)`` and, when ``extra`` is given, ``net(extra)`` in one batched pass."""
        if extra is None:
            return net(x), None
        out = net(torch.cat([x, extra]))
        return out[: x.shape[0]], out[x.shape[0]:]

    # ------------------------------------------------------------------ training
    def training_step(self, batch: Mapping[str, Tensor], batch_idx: int) -> None:
        obj = self.objective
        obj.start_step()
        opt_g, opt_d, *opt_s = self.optimizers()
        real_a, real_b = self.to_model_space(batch["A"]), self.to_model_space(batch["B"])
        mask_a, mask_b = self.masks(batch)
        with_idt_a, with_idt_b = obj.active("G_idt_A"), obj.active("G_idt_B")

        # Forward: translations (+ identities), then cycles.
        fake_b, idt_a = self._translate_with(self.G_A, real_a, real_b if with_idt_a else None)
        fake_a, idt_b = self._translate_with(self.G_B, real_b, real_a if with_idt_b else None)
        rec_a, rec_b = self.G_B(fake_b), self.G_A(fake_a)

        # 1) Generators, discriminators frozen.
        with self.toggled_optimizer(opt_g):
            self.generator_adversarial("B", fake_b)
            self.generator_adversarial("A", fake_a)
            obj.compute("G_cycle_A", rec_a, real_a)
            obj.compute("G_cycle_B", rec_b, real_b)
            if with_idt_a:
                obj.compute("G_idt_A", idt_a, real_b)
            if with_idt_b:
                obj.compute("G_idt_B", idt_b, real_a)
            if mask_a is not None:
                self.semantic_terms("AB", fake_b, real_a, mask_a)
                if mask_b is not None and self.use_masks_b:
                    self.semantic_terms("BA", fake_a, real_b, mask_b)
            self.update(opt_g, obj.total("G"))

        # 2) Discriminators: real images against fakes through the pools (the fakes of this step's
        # generators before their update, detached, as the original).
        if self.tag_active("D"):
            with self.toggled_optimizer(opt_d):
                self.discriminator_adversarial("B", real_b, self.pool_B.query(fake_b))
                self.discriminator_adversarial("A", real_a, self.pool_A.query(fake_a))
                self.update(opt_d, obj.total("D"))

        # 3) The segmenter on real images and their masks.
        if opt_s and obj.active("f_s"):
            self.segmenter_step(opt_s[0], real_a, mask_a, real_b, mask_b)

    # ------------------------------------------------------------------ inference
    @torch.no_grad()
    def translate(self, x: Tensor, direction: str = "AtoB") -> Tensor:
        """``G_A(x)`` (``AtoB``) or ``G_B(x)`` (``BtoA``); ``(B, C, H, W)`` in and out, in the data's space."""
        net = {"AtoB": self.G_A, "BtoA": self.G_B}[direction]
        return self.to_data_space(net(self.to_model_space(x.to(self.device)))).float()

    @torch.no_grad()
    def visuals(self, batch: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """Grid columns: real_A | fake_B | rec_A | real_B | fake_A | rec_B."""
        real_a, real_b = batch["A"], batch["B"]
        fake_b, fake_a = self.translate(real_a, "AtoB"), self.translate(real_b, "BtoA")
        return {"real_A": real_a, "fake_B": fake_b, "rec_A": self.translate(fake_b, "BtoA"),
                "real_B": real_b, "fake_A": fake_a, "rec_B": self.translate(fake_a, "AtoB")}

"""CUT and FastCUT (Park et al., "Contrastive learning for unpaired image-to-image translation", ECCV 2020)
as one LightningModule, with JoliGEN's loss names, any number of discriminators and optional
semantic-mask conservation.

One training step is the original's ``optimize_parameters``::

    real = [A; B] (CUT, nce_idt) or A (FastCUT), mirrored with probability 1/2 (FastCUT's flip equivariance)
    [fake_B; idt_B] = G(real)
    D_tot = 0.5 sum_D (real + fake) on B vs fake_B (detached)
    G_tot = sum_D G_GAN_D_B_* + lambda_NCE * (G_NCE + G_NCE_Y) / 2   (FastCUT: + lambda_NCE * G_NCE)
            [+ semantic-mask terms]
    [f_s = CE(f_s(A), mask_A) + CE(f_s(B), mask_B)]

The discriminator is updated first, then G with the projection heads, then f_s. The keys of PatchNCE are
G's encoder features of the real input: the forward pass that produced the fakes already computed them
(G has not changed since), so they are taken from it instead of encoding the input a second time — except
on mirrored steps, where the keys are the features of the un-mirrored input, as CUT computes them.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from lit_gans.losses.unpaired_spec import cut
from lit_gans.models.unpaired import UnpairedGAN
from lit_gans.nets.patch_projection import PatchProjection

# Channels do not depend on the spatial size: the heads' input widths are probed at this size.
_PROBE_SIZE = 32


class CUT(UnpairedGAN):
    """Generator ``G: A -> B``, discriminators ``D_B[<name>]``, projection heads ``patch_heads`` (CUT's
    ``netF``).

    Args:
        nce_layers: generator layers whose features PatchNCE compares (CUT: 0, 4, 8, 12, 16).
        nce_dim: width of the projection heads (CUT's ``netF_nc``: 256).
        flip_equivariance: FastCUT's augmentation (mirror the input of a step with probability 1/2).
        Other arguments: see :class:`~lit_gans.models.unpaired.UnpairedGAN`. CUT's defaults differ from
        CycleGAN's as the official code's (``options/base_options.py``): an anti-aliased generator and
        discriminator, Xavier-normal initialisation with gain 0.02 (``--init_type xavier``), no fake pool.
    """

    loss_spec = staticmethod(cut)
    spec_name = "cut"
    gan_domains = ("B",)
    mask_directions = ("AB",)

    def __init__(self, nce_layers: Sequence[int] = (0, 4, 8, 12, 16), nce_dim: int = 256,
                 flip_equivariance: bool = False, antialias: bool = True, antialias_d: bool = True,
                 init: str = "xavier", pool_size: int = 0, **kwargs: Any):
        super().__init__(antialias=antialias, antialias_d=antialias_d, init=init, pool_size=pool_size, **kwargs)
        self.nce_layers = [int(i) for i in nce_layers]
        self.flip_equivariance = bool(flip_equivariance)
        self.G = self.make_generator()
        # CUT creates its heads at the first forward pass; probing G here gives them the same input widths
        # and makes them exist before the optimizer is built and in every state_dict.
        probe = torch.zeros(1, self.net_cfg["in_channels"], _PROBE_SIZE, _PROBE_SIZE)
        with torch.no_grad():
            self.patch_heads = PatchProjection.from_features(self.G.encode(probe, self.nce_layers), nce_dim,
                                                             init=self.net_cfg["init"], init_gain=self.net_cfg["init_gain"])
        # FastCUT's coin: a Python generator of its own (saved in checkpoints): no tensor read on the host.
        self.flip_rng = random.Random(int(torch.randint(2**62, ())))

    def generator_param_groups(self) -> list[dict[str, Any]]:
        return [{"params": list(self.G.parameters()), "name": "G"},
                {"params": list(self.patch_heads.parameters()), "name": "F"}]

    def compiled_nets(self) -> list[torch.nn.Module]:
        return [self.G, *super().compiled_nets()]

    # ------------------------------------------------------------------ training
    def training_step(self, batch: Mapping[str, Tensor], batch_idx: int) -> None:
        obj = self.objective
        obj.start_step()
        opt_g, opt_d, *opt_s = self.optimizers()
        real_a, real_b = self.to_model_space(batch["A"]), self.to_model_space(batch["B"])
        mask_a, mask_b = self.masks(batch)
        b = real_a.shape[0]
        with_nce, with_nce_y = obj.active("G_NCE"), obj.active("G_NCE_Y")

        real = torch.cat([real_a, real_b]) if with_nce_y else real_a
        flipped = self.flip_equivariance and self.flip_rng.random() < 0.5
        if flipped:
            real = real.flip(3)
        if (with_nce or with_nce_y) and not flipped:
            fake, feats_real = self.G.forward_with_features(real, self.nce_layers)
        else:
            fake, feats_real = self.G(real), None
        fake_b = fake[:b]

        # 1) Discriminators: real B against G(A), detached.
        if self.tag_active("D"):
            with self.toggled_optimizer(opt_d):
                self.discriminator_adversarial("B", real_b, self.pool_B.query(fake_b))
                self.update(opt_d, obj.total("D"))

        # 2) Generator and projection heads.
        with self.toggled_optimizer(opt_g):
            self.generator_adversarial("B", fake_b)
            if with_nce or with_nce_y:
                feats_fake = self.G.encode(fake, self.nce_layers)
                if flipped:  # compare G(mirror(x)), mirrored back, with x
                    feats_fake = [f.flip(3) for f in feats_fake]
                    with torch.no_grad():
                        feats_real = self.G.encode(real.flip(3), self.nce_layers)
                if with_nce:
                    obj.compute("G_NCE", [f[:b] for f in feats_fake], [f[:b] for f in feats_real], self.patch_heads)
                if with_nce_y:
                    obj.compute("G_NCE_Y", [f[b:] for f in feats_fake], [f[b:] for f in feats_real],
                                self.patch_heads)
            if mask_a is not None:
                self.semantic_terms("AB", fake_b.flip(3) if flipped else fake_b, real_a, mask_a)
            self.update(opt_g, obj.total("G"))

        # 3) The segmenter on real images and their masks.
        if opt_s and obj.active("f_s"):
            self.segmenter_step(opt_s[0], real_a, mask_a, real_b, mask_b)

    # ------------------------------------------------------------------ inference
    @torch.no_grad()
    def translate(self, x: Tensor) -> Tensor:
        """``G(x)``: ``(B, C, H, W)`` in and out, in the data's space."""
        return self.to_data_space(self.G(self.to_model_space(x.to(self.device)))).float()

    @torch.no_grad()
    def visuals(self, batch: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """Grid columns: real_A | fake_B | real_B | idt_B (= G(B), which should leave B as it is)."""
        return {"real_A": batch["A"], "fake_B": self.translate(batch["A"]), "real_B": batch["B"],
                "idt_B": self.translate(batch["B"])}

    # ------------------------------------------------------------------ checkpoints
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_save_checkpoint(checkpoint)
        version, internal, gauss = self.flip_rng.getstate()
        checkpoint["flip_rng"] = [version, list(internal), gauss]

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_load_checkpoint(checkpoint)
        if "flip_rng" in checkpoint:
            version, internal, gauss = checkpoint["flip_rng"]
            self.flip_rng.setstate((version, tuple(internal), gauss))

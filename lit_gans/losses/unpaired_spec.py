"""Objectives of the unpaired translation models (CycleGAN, CUT/FastCUT), with JoliGEN's term names.

Terms (raw values are logged; the weights below multiply them in the tag totals ``G_tot`` and ``D_tot``):

- ``G_GAN_D_<X>_<name>`` (G, ``lambda_GAN``) and ``D_GAN_D_<X>_<name>`` (D, 0.5: the discriminator loss is
  the mean of its real and fake halves, as CycleGAN/CUT) for each discriminator ``<name>`` of
  ``model.discriminators`` judging domain ``<X>`` (B only for CUT; A and B for CycleGAN). Multi-scale
  discriminators average their scales.
- CycleGAN: ``G_cycle_A`` (``lambda_A``), ``G_cycle_B`` (``lambda_B``), ``G_idt_A = |G_A(B) - B|``
  (``lambda_B * lambda_identity``), ``G_idt_B = |G_B(A) - A|`` (``lambda_A * lambda_identity``).
- CUT: ``G_NCE`` (PatchNCE of ``A -> G(A)``) and ``G_NCE_Y`` (of ``B -> G(B)``, when ``nce_idt``); CUT adds
  ``lambda_NCE * (G_NCE + G_NCE_Y) / 2`` with the identity term and ``lambda_NCE * G_NCE`` without it.
- With semantic masks (``sem_mask``): ``G_sem_mask_AB`` (``lambda_sem``), ``G_out_mask_AB``
  (``lambda_out_mask``) — and ``_BA`` for CycleGAN — and ``f_s`` (tag ``f_s``: the segmenter's own loss).

A weight of 0 switches a term off: the model does not compute it and it is logged as 0. Each spec's parameters
are its ``loss`` config keys (``conf/loss/cyclegan.yaml``, ``cut.yaml``); ``discriminators`` and ``sem_mask`` come
from the model.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial

from torch import Tensor

from lit_gans.errors import ConfigError
from lit_gans.losses.adversarial import adversarial_loss
from lit_gans.losses.contrastive import multilayer_patch_nce
from lit_gans.losses.objective import LossTerm
from lit_gans.losses.reconstruction import cycle_consistency_loss, identity_loss
from lit_gans.losses.semantic import out_mask_loss, semantic_mask_loss
from lit_gans.nets.discriminators import DISCRIMINATORS

Logits = Tensor | Sequence[Tensor]


def mean_over_scales(fn: Callable[..., Tensor]) -> Callable[..., Tensor]:
    """Lift an adversarial loss on logit maps to discriminators that return one map per scale: each argument
    is a tensor or a list of per-scale tensors, and the result is the mean of ``fn`` over the scales."""

    def lifted(*logits: Logits) -> Tensor:
        per_scale = [list(x) if isinstance(x, (list, tuple)) else [x] for x in logits]
        values = [fn(*xs) for xs in zip(*per_scale, strict=True)]
        total = values[0]
        for v in values[1:]:
            total = total + v
        return total / len(values) if len(values) > 1 else total

    lifted.__name__ = f"mean_over_scales({getattr(fn, '__name__', 'fn')})"
    return lifted


TOTALS = {"G": "G_tot", "D": "D_tot"}
OTHER_KEYS = ("f_s_threshold",)  # read by the model (the gate of the semantic-mask term)


def _adversarial_terms(adversarial: str, domains: Sequence[str], discriminators: Sequence[str]) -> list[LossTerm]:
    unknown = [n for n in discriminators if n not in DISCRIMINATORS]
    if unknown or not discriminators or len(set(discriminators)) != len(discriminators):
        raise ConfigError(f"model.discriminators must be a non-empty list of distinct names from "
                          f"{', '.join(DISCRIMINATORS)}; got {list(discriminators)}")
    adv = adversarial_loss(adversarial)
    g, d = mean_over_scales(adv.g), mean_over_scales(adv.d)
    terms = []
    for dom in domains:
        for name in discriminators:
            terms.append(LossTerm(f"G_GAN_D_{dom}_{name}", g, "lambda_GAN", "G"))
            terms.append(LossTerm(f"D_GAN_D_{dom}_{name}", d, 0.5, "D"))  # the mean of D's real and fake halves
    return terms


def _mask_terms(directions: Sequence[str], sem_mask: bool) -> list[LossTerm]:
    if not sem_mask:
        return []
    terms = [LossTerm("f_s", semantic_mask_loss, 1.0, "f_s")]
    for d in directions:
        terms.append(LossTerm(f"G_sem_mask_{d}", semantic_mask_loss, "lambda_sem", "G"))
        terms.append(LossTerm(f"G_out_mask_{d}", out_mask_loss, "lambda_out_mask", "G"))
    return terms


def cyclegan(adversarial: str = "lsgan", discriminators: Sequence[str] = ("basic",), sem_mask: bool = False,
             lambda_GAN: float = 1.0, lambda_A: float = 10.0, lambda_B: float = 10.0, lambda_identity: float = 0.5,
             lambda_sem: float = 1.0, lambda_out_mask: float = 1.0) -> list[LossTerm]:
    """CycleGAN (Zhu et al., 2017) in both directions, ``G_A: A -> B`` judged by ``D_B_*`` and
    ``G_B: B -> A`` judged by ``D_A_*`` (JoliGEN's naming: a discriminator is named after its domain). The
    identity terms are weighted as the CycleGAN code weights them: ``lambda_identity`` times the cycle weight of
    the domain they reconstruct."""
    return [
        *_adversarial_terms(adversarial, ("A", "B"), discriminators),
        LossTerm("G_cycle_A", cycle_consistency_loss, "lambda_A", "G"),
        LossTerm("G_cycle_B", cycle_consistency_loss, "lambda_B", "G"),
        LossTerm("G_idt_A", identity_loss, lambda w: w["lambda_B"] * w["lambda_identity"], "G"),
        LossTerm("G_idt_B", identity_loss, lambda w: w["lambda_A"] * w["lambda_identity"], "G"),
        *_mask_terms(("AB", "BA"), sem_mask),
    ]


def cut(adversarial: str = "lsgan", discriminators: Sequence[str] = ("basic",), sem_mask: bool = False,
        lambda_GAN: float = 1.0, lambda_NCE: float = 1.0, nce_idt: bool = True, num_patches: int = 256,
        nce_T: float = 0.07, lambda_sem: float = 1.0, lambda_out_mask: float = 1.0) -> list[LossTerm]:
    """CUT / FastCUT (Park et al., 2020): ``G: A -> B`` judged by ``D_B_*``, PatchNCE between the input and
    output of G (and between ``B`` and ``G(B)`` with ``nce_idt``: CUT then adds ``lambda_NCE * (G_NCE +
    G_NCE_Y) / 2``, else ``lambda_NCE * G_NCE``)."""
    nce = partial(multilayer_patch_nce, num_patches=int(num_patches), temperature=float(nce_T))
    terms = [*_adversarial_terms(adversarial, ("B",), discriminators),
             LossTerm("G_NCE", nce, lambda w: w["lambda_NCE"] * (0.5 if w["nce_idt"] else 1.0), "G")]
    if nce_idt:
        terms.append(LossTerm("G_NCE_Y", nce, lambda w: w["lambda_NCE"] * 0.5, "G"))
    return [*terms, *_mask_terms(("AB",), sem_mask)]

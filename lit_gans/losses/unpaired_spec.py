"""Objectives of the unpaired translation models (``loss.spec: cyclegan`` and ``loss.spec: cut``), with
JoliGEN's term names.

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

A weight of 0 switches a term off: the model does not compute it and it is logged as 0.
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
from lit_gans.losses.specs import register_spec
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


def gan_term_names(domains: Sequence[str], discriminators: Sequence[str]) -> list[str]:
    return [f"{side}_GAN_D_{d}_{name}" for d in domains for name in discriminators for side in ("G", "D")]


def _adversarial_terms(adversarial: str, domains: Sequence[str], discriminators: Sequence[str],
                       lambda_GAN: float) -> dict[str, LossTerm]:
    unknown = [n for n in discriminators if n not in DISCRIMINATORS]
    if unknown or not discriminators or len(set(discriminators)) != len(discriminators):
        raise ConfigError(f"model.discriminators must be a non-empty list of distinct names from "
                          f"{', '.join(DISCRIMINATORS)}; got {list(discriminators)}")
    adv = adversarial_loss(adversarial)
    g, d = mean_over_scales(adv.g), mean_over_scales(adv.d)
    terms = {}
    for dom in domains:
        for name in discriminators:
            terms[f"G_GAN_D_{dom}_{name}"] = LossTerm(f"G_GAN_D_{dom}_{name}", g, lambda_GAN, ("G",))
            terms[f"D_GAN_D_{dom}_{name}"] = LossTerm(f"D_GAN_D_{dom}_{name}", d, 0.5, ("D",))
    return terms


def _mask_terms(directions: Sequence[str], sem_mask: bool, lambda_sem: float,
                lambda_out_mask: float) -> dict[str, LossTerm]:
    if not sem_mask:
        return {}
    terms = {"f_s": LossTerm("f_s", semantic_mask_loss, 1.0, ("f_s",))}
    for d in directions:
        terms[f"G_sem_mask_{d}"] = LossTerm(f"G_sem_mask_{d}", semantic_mask_loss, lambda_sem, ("G",))
        terms[f"G_out_mask_{d}"] = LossTerm(f"G_out_mask_{d}", out_mask_loss, lambda_out_mask, ("G",))
    return terms


CYCLEGAN_TERMS = (*gan_term_names("AB", DISCRIMINATORS), "G_cycle_A", "G_cycle_B", "G_idt_A", "G_idt_B",
                  "G_sem_mask_AB", "G_out_mask_AB", "G_sem_mask_BA", "G_out_mask_BA", "f_s")


@register_spec("cyclegan", CYCLEGAN_TERMS)
def cyclegan(adversarial: str = "lsgan", discriminators: Sequence[str] = ("basic",), lambda_GAN: float = 1.0,
             lambda_A: float = 10.0, lambda_B: float = 10.0, lambda_identity: float = 0.5, sem_mask: bool = False,
             lambda_sem: float = 1.0, lambda_out_mask: float = 1.0) -> dict[str, LossTerm]:
    """CycleGAN (Zhu et al., 2017) in both directions, ``G_A: A -> B`` judged by ``D_B_*`` and
    ``G_B: B -> A`` judged by ``D_A_*`` (JoliGEN's naming: a discriminator is named after its domain)."""
    terms = _adversarial_terms(adversarial, ("A", "B"), discriminators, lambda_GAN)
    terms.update({
        "G_cycle_A": LossTerm("G_cycle_A", cycle_consistency_loss, lambda_A, ("G",)),
        "G_cycle_B": LossTerm("G_cycle_B", cycle_consistency_loss, lambda_B, ("G",)),
        "G_idt_A": LossTerm("G_idt_A", identity_loss, lambda_B * lambda_identity, ("G",)),
        "G_idt_B": LossTerm("G_idt_B", identity_loss, lambda_A * lambda_identity, ("G",)),
    })
    terms.update(_mask_terms(("AB", "BA"), sem_mask, lambda_sem, lambda_out_mask))
    return terms


CUT_TERMS = (*gan_term_names("B", DISCRIMINATORS), "G_NCE", "G_NCE_Y", "G_sem_mask_AB", "G_out_mask_AB", "f_s")


@register_spec("cut", CUT_TERMS)
def cut(adversarial: str = "lsgan", discriminators: Sequence[str] = ("basic",), lambda_GAN: float = 1.0,
        lambda_NCE: float = 1.0, nce_idt: bool = True, num_patches: int = 256, nce_T: float = 0.07,
        sem_mask: bool = False, lambda_sem: float = 1.0, lambda_out_mask: float = 1.0) -> dict[str, LossTerm]:
    """CUT / FastCUT (Park et al., 2020): ``G: A -> B`` judged by ``D_B_*``, PatchNCE between the input and
    output of G (and between ``B`` and ``G(B)`` with ``nce_idt``)."""
    terms = _adversarial_terms(adversarial, ("B",), discriminators, lambda_GAN)
    nce = partial(multilayer_patch_nce, num_patches=int(num_patches), temperature=float(nce_T))
    both = 0.5 if nce_idt else 1.0
    terms["G_NCE"] = LossTerm("G_NCE", nce, lambda_NCE * both, ("G",))
    if nce_idt:
        terms["G_NCE_Y"] = LossTerm("G_NCE_Y", nce, lambda_NCE * 0.5, ("G",))
    terms.update(_mask_terms(("AB",), sem_mask, lambda_sem, lambda_out_mask))
    return terms

"""StarGAN v2's objective (Choi et al., CVPR 2020; clovaai/stargan-v2 ``core/solver.py``), with the terms and
curve names of the latent-StarGAN seed (``d_loss``, ``g_loss``, ``g_adv``, ``sty``, ``ds``, ``cyc``, ``id``, ``r1``)::

    d_loss = d_adv + w_mismatch*d_mismatch + w_r1 * gain * r1           (group D; gain: the lazy-R1 schedule)
    g_loss = w_adv*g_adv + w_sty*sty + w_cyc*cyc + w_id*id - lambda_ds*ds   (group G; lambda_ds = w_ds * decay)

The schedules' keys (``ds_decay_epochs``, ``r1_interval``) are read by :mod:`lit_gans.callbacks.schedules`.
"""

from __future__ import annotations

from functools import partial

from lit_gans.losses.adversarial import adversarial_loss
from lit_gans.losses.objective import LossTerm
from lit_gans.losses.reconstruction import (
    cycle_consistency_loss,
    diversity_sensitive_loss,
    identity_loss,
    style_reconstruction_loss,
)
from lit_gans.losses.regularizers import r1_penalty

TOTALS = {"D": "d_loss", "G": "g_loss"}
SCHEDULE_KEYS = ("ds_decay_epochs", "r1_interval")


def stargan_v2(adversarial: str = "hinge", ds_margin: float | None = None, w_adv: float = 1.0, w_sty: float = 1.0,
               w_cyc: float = 1.0, w_id: float = 0.0, w_ds: float = 1.0, w_r1: float = 1.0,
               w_mismatch: float = 0.0) -> list[LossTerm]:
    """The terms; each weight is the ``loss`` key of the same name (``loss.w_sty`` ...).

    Args:
        adversarial: ``hinge`` (the seed), ``nonsat`` (the paper's logistic loss), ``lsgan``, ``vanilla``.
        ds_margin: ``ds`` is clamped to at most this (``None``: not clamped).
    """
    adv = adversarial_loss(adversarial)
    return [
        LossTerm("d_adv", adv.d, 1.0, "D"),
        LossTerm("r1", r1_penalty, "w_r1", "D"),
        LossTerm("d_mismatch", adv.fake, "w_mismatch", "D"),
        LossTerm("g_adv", adv.g, "w_adv", "G"),
        LossTerm("sty", style_reconstruction_loss, "w_sty", "G"),
        LossTerm("ds", partial(diversity_sensitive_loss, margin=ds_margin), "w_ds", "G", maximize=True),
        LossTerm("cyc", cycle_consistency_loss, "w_cyc", "G"),
        LossTerm("id", identity_loss, "w_id", "G"),
    ]

"""Loss callables shared by every model (pure functions and small modules; no Lightning)."""

from lit_gans.losses.adversarial import (
    ADVERSARIAL_LOSSES,
    AdversarialLoss,
    adversarial_loss,
    d_hinge_loss,
    d_lsgan_loss,
    d_nonsat_loss,
    d_vanilla_loss,
    g_adversarial_loss,
    g_lsgan_loss,
    g_nonsat_loss,
    g_vanilla_loss,
)
from lit_gans.losses.diffusion_spec import NOISE_LOSSES, noise_l1, noise_l2
from lit_gans.losses.objective import LossTerm, Objective
from lit_gans.losses.reconstruction import (
    cycle_consistency_loss,
    diversity_sensitive_loss,
    identity_loss,
    style_reconstruction_loss,
)
from lit_gans.losses.regularizers import r1_penalty
from lit_gans.losses.specs import SPECS, build_objective, register_spec

__all__ = [
    "ADVERSARIAL_LOSSES",
    "AdversarialLoss",
    "LossTerm",
    "NOISE_LOSSES",
    "Objective",
    "SPECS",
    "adversarial_loss",
    "build_objective",
    "cycle_consistency_loss",
    "d_hinge_loss",
    "d_lsgan_loss",
    "d_nonsat_loss",
    "d_vanilla_loss",
    "diversity_sensitive_loss",
    "g_adversarial_loss",
    "g_lsgan_loss",
    "g_nonsat_loss",
    "g_vanilla_loss",
    "identity_loss",
    "noise_l1",
    "noise_l2",
    "r1_penalty",
    "register_spec",
    "style_reconstruction_loss",
]

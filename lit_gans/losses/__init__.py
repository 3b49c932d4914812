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
from lit_gans.losses.contrastive import multilayer_patch_nce, patch_nce_loss
from lit_gans.losses.diffusion_spec import NOISE_LOSSES, noise_l1, noise_l2
from lit_gans.losses.objective import LossTerm, Objective, make_objective
from lit_gans.losses.perceptual import VGGPerceptualLoss
from lit_gans.losses.reconstruction import (
    cycle_consistency_loss,
    diversity_sensitive_loss,
    identity_loss,
    style_reconstruction_loss,
)
from lit_gans.losses.regularizers import r1_penalty
from lit_gans.losses.semantic import out_mask_loss, semantic_mask_loss
from lit_gans.losses.structure import laplacian, laplacian_loss, pixel_loss, sobel_loss, sobel_magnitude

__all__ = [
    "ADVERSARIAL_LOSSES",
    "AdversarialLoss",
    "LossTerm",
    "NOISE_LOSSES",
    "Objective",
    "VGGPerceptualLoss",
    "adversarial_loss",
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
    "laplacian",
    "laplacian_loss",
    "multilayer_patch_nce",
    "noise_l1",
    "noise_l2",
    "out_mask_loss",
    "patch_nce_loss",
    "pixel_loss",
    "r1_penalty",
    "make_objective",
    "semantic_mask_loss",
    "sobel_loss",
    "sobel_magnitude",
    "style_reconstruction_loss",
]

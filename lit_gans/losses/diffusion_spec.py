"""The denoising objective of diffusion models: one term, the error of the predicted noise, logged as ``G/G_tot``
(JoliGEN's single descending DDPM curve).

The spec has one term named ``G_tot`` and no totals: the objective's total of group ``G`` (what is back-propagated,
the weighted term) is then not logged a second time under the same name.
"""

from __future__ import annotations

from collections.abc import Callable

import torch.nn.functional as F
from torch import Tensor

from lit_gans.errors import ConfigError
from lit_gans.losses.objective import LossTerm
from lit_gans.utils.precision import float32_or_wider


def noise_l2(eps_pred: Tensor, eps: Tensor) -> Tensor:
    """Mean squared error of the predicted noise (DDPM's ``L_simple``), in float32 under autocast."""
    return F.mse_loss(float32_or_wider(eps_pred), float32_or_wider(eps))


def noise_l1(eps_pred: Tensor, eps: Tensor) -> Tensor:
    """Mean absolute error of the predicted noise (Palette's L1 variant), in float32."""
    return F.l1_loss(float32_or_wider(eps_pred), float32_or_wider(eps))


NOISE_LOSSES: dict[str, Callable[[Tensor, Tensor], Tensor]] = {"l2": noise_l2, "l1": noise_l1}


def diffusion(noise_loss: str = "l2") -> list[LossTerm]:
    """``G_tot = ||eps_hat(x_t, t, source) - eps||`` (``noise_loss``: ``l2`` squared error, or ``l1``), tag ``G``."""
    try:
        fn = NOISE_LOSSES[noise_loss]
    except KeyError:
        raise ConfigError(f"unknown loss.noise_loss {noise_loss!r}: choose {' or '.join(NOISE_LOSSES)}") from None
    return [LossTerm("G_tot", fn, 1.0, "G")]

"""Gradient penalties on the discriminator."""

from __future__ import annotations

import torch
from torch import Tensor

from lit_gans.utils.precision import float32_or_wider


def r1_penalty(real_logits: Tensor, real_inputs: Tensor) -> Tensor:
    """R1 gradient penalty (Mescheder et al. 2018): ``mean over the batch of sum(grad^2)``.

    Args:
        real_logits: discriminator outputs on ``real_inputs``, any shape with batch first.
        real_inputs: the inputs, ``(B, C, H, W)``, with ``requires_grad=True``.

    Returns:
        0-dim tensor, differentiable (``create_graph=True``) so it can be minimised. No 0.5 factor: the
        seed's contract is ``mean(sum(grad^2))``; the weight ``w_r1`` carries any constant.
    """
    (grad,) = torch.autograd.grad(outputs=real_logits.sum(), inputs=real_inputs, create_graph=True)
    return float32_or_wider(grad).square().flatten(1).sum(1).mean()

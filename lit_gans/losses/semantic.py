"""Semantic-mask conservation losses (JoliGEN's ``*_semantic_mask`` models)."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from lit_gans.utils.precision import float32_or_wider


def semantic_mask_loss(logits: Tensor, mask: Tensor) -> Tensor:
    """Cross-entropy of segmenter logits ``(B, K, H, W)`` against class ids ``(B, H, W)`` (long, 0..K-1), mean
    over pixels, in float32. ``f_s`` is trained with it on real images; ``G_sem_mask_AB`` applies it to
    ``f_s(G(A))`` with A's mask, so the translation keeps A's label map."""
    return F.cross_entropy(float32_or_wider(logits), mask)


def out_mask_loss(fake: Tensor, real: Tensor, mask: Tensor) -> Tensor:
    """L1 between a translation and its source over the background (``mask == 0``), which should not change.

    ``fake``, ``real``: ``(B, C, H, W)``; ``mask``: ``(B, H, W)`` class ids. As JoliGEN computes it, the
    difference is zeroed inside the mask and averaged over *all* ``B*C*H*W`` elements, so the value also
    scales with the background's share of the image.
    """
    background = (mask == 0).unsqueeze(1).to(fake.dtype)
    return ((fake - real) * background).abs().mean()

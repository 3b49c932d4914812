"""PatchNCE (Park et al., "Contrastive learning for unpaired image-to-image translation", ECCV 2020).

A patch of the output is pulled towards the input patch at the same position (the positive) and pushed
away from the other sampled patches of the same image (the negatives): an InfoNCE cross-entropy over
``1 + P`` candidates at temperature ``tau``. As in CUT, negatives come from the same image only
(``nce_includes_all_negatives_from_minibatch=False``), the patch's own position among the negatives is
masked with a logit of -10 (before the division by ``tau``), the keys are detached, and the loss of
several layers is their mean.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lit_gans.utils.precision import float32_or_wider


def patch_nce_loss(query: Tensor, key: Tensor, temperature: float = 0.07) -> Tensor:
    """Mean PatchNCE loss of ``B * P`` patches.

    Args:
        query: ``(B, P, D)`` embeddings of output patches (L2-normalised rows); gradients flow through it.
        key: ``(B, P, D)`` embeddings of the input patches at the same positions (detached here).
        temperature: ``tau`` (CUT: 0.07).

    For patch ``i`` of image ``b``, with ``s(j) = <q_bi, k_bj>``: ``-log softmax([s(i), s(j != i), -10])[0]``
    with every logit divided by ``tau`` — computed in float32 whatever the autocast mode (at ``1 / tau ~ 14``
    bf16 similarities would be off by a few hundredths in the logits).
    """
    with torch.autocast(query.device.type, enabled=False):
        q, k = float32_or_wider(query), float32_or_wider(key.detach())
        b, p, _ = q.shape
        l_pos = (q * k).sum(-1, keepdim=True)  # (B, P, 1)
        l_neg = torch.bmm(q, k.transpose(1, 2))  # (B, P, P)
        own = torch.eye(p, dtype=torch.bool, device=q.device)
        l_neg = l_neg.masked_fill(own, -10.0)
        logits = torch.cat([l_pos, l_neg], dim=-1) / temperature
        target = torch.zeros(b * p, dtype=torch.long, device=q.device)
        return F.cross_entropy(logits.flatten(0, 1), target)


def multilayer_patch_nce(feats_q: Sequence[Tensor], feats_k: Sequence[Tensor], heads: nn.Module,
                         num_patches: int = 256, temperature: float = 0.07) -> Tensor:
    """CUT's ``calculate_NCE_loss``: PatchNCE averaged over feature layers.

    Args:
        feats_q: per layer ``(B, C_l, H_l, W_l)`` generator features of the *output* (queries).
        feats_k: the same layers' features of the *input* (keys; no gradient is taken through them).
        heads: a :class:`~lit_gans.nets.patch_projection.PatchProjection` (samples positions, projects).
        num_patches: positions per layer (CUT: 256), the same for every image of the batch and for queries
            and keys.
    """
    ids = heads.sample_ids(feats_k, num_patches)
    with torch.no_grad():
        keys = heads([f.detach() for f in feats_k], ids)
    queries = heads(feats_q, ids)
    losses = [patch_nce_loss(q, k, temperature) for q, k in zip(queries, keys, strict=True)]
    return torch.stack(losses).mean()

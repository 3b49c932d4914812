"""CUT's patch sampler and projection heads (``PatchSampleF`` with ``--netF mlp_sample``).

For each feature layer, the same random spatial positions are taken from every sample of the batch; each
picked feature vector goes through that layer's 2-layer MLP (``Linear-ReLU-Linear``, 256 units) and is
L2-normalised as CUT's ``Normalize`` does, ``x / (||x|| + 1e-7)`` (:func:`l2_normalize`). The PatchNCE loss (:mod:`lit_gans.losses.contrastive`) compares these embeddings.

CUT builds the MLPs lazily at the first forward pass, from the channels of the features it receives, and
creates their optimizer after a first data-dependent pass (``data_dependent_initialize``). Here the widths
also come from the features (:meth:`PatchProjection.from_features`), but the model probes its generator for
them at construction, so the heads exist before the optimizer is built, are in every ``state_dict`` and load
from a checkpoint without a first batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from lit_gans.nets.patchgan import init_weights

NORM_EPS = 1e-7  # CUT's models/networks.py: Normalize(power=2), out = x.div(norm + 1e-7)


def l2_normalize(x: Tensor, dim: int = -1) -> Tensor:
    """``x / (||x||_2 + 1e-7)`` along ``dim``, CUT's ``Normalize``.

    Not ``F.normalize(x, eps=1e-7)``, which divides by ``max(||x||, 1e-7)``: the two agree for norms far above
    1e-7, but CUT's xavier(0.02) heads start with embedding norms of about 1e-5 to 3e-5, where the official
    ``+ 1e-7`` shrinks each embedding by 0.3-1 % and changes PatchNCE and its gradients by as much.
    """
    return x / (x.norm(p=2, dim=dim, keepdim=True) + NORM_EPS)


class PatchProjection(nn.Module):
    """Per-layer MLP heads.

    Args:
        in_channels: channels of each feature layer.
        dim: hidden and output width of each head (CUT's ``netF_nc`` = 256).
        init, init_gain: see :func:`~lit_gans.nets.patchgan.init_weights` (CUT initialises its heads as its
            other networks: ``init_net(self.mlp, init_type, init_gain)``).
    """

    def __init__(self, in_channels: Sequence[int], dim: int = 256, init: str = "normal", init_gain: float = 0.02):
        super().__init__()
        self.in_channels = tuple(int(c) for c in in_channels)
        self.mlps = nn.ModuleList(nn.Sequential(nn.Linear(c, dim), nn.ReLU(), nn.Linear(dim, dim))
                                  for c in self.in_channels)
        init_weights(self, init_gain, init)

    @classmethod
    def from_features(cls, feats: Sequence[Tensor], dim: int = 256, **init: Any) -> PatchProjection:
        """Heads for features shaped like ``feats`` (``(B, C_l, H_l, W_l)`` per layer)."""
        return cls([f.shape[1] for f in feats], dim, **init)

    @staticmethod
    def sample_ids(feats: Sequence[Tensor], num_patches: int) -> list[Tensor]:
        """Per layer, ``min(num_patches, H_l * W_l)`` distinct random positions (flat indices, on the
        features' device)."""
        ids = []
        for f in feats:
            n = f.shape[-2] * f.shape[-1]
            ids.append(torch.randperm(n, device=f.device)[: min(num_patches, n)])
        return ids

    def forward(self, feats: Sequence[Tensor], patch_ids: Sequence[Tensor]) -> list[Tensor]:
        """``(B, C_l, H_l, W_l)`` features and ``(P_l,)`` positions -> ``(B, P_l, dim)`` unit-norm embeddings."""
        if len(feats) != len(self.mlps):
            raise ValueError(f"{len(feats)} feature layers for {len(self.mlps)} heads")
        out = []
        for f, ids, mlp, c in zip(feats, patch_ids, self.mlps, self.in_channels, strict=True):
            if f.shape[1] != c:
                raise ValueError(f"a head built for {c} channels got features with {f.shape[1]}")
            picked = f.flatten(2).index_select(2, ids).transpose(1, 2)  # (B, P, C)
            out.append(l2_normalize(mlp(picked)))
        return out

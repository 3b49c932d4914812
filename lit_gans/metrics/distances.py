"""FID and KID between a set of real and a set of generated images (torchmetrics' metrics on one shared
Inception pass per batch)."""

from __future__ import annotations

import warnings

import torch
from torch import Tensor, nn
from torchmetrics.image.fid import FrechetInceptionDistance
from torchmetrics.image.kid import KernelInceptionDistance


class _Precomputed(nn.Module):
    """The "feature extractor" handed to torchmetrics: the features are computed once by :class:`FeatureDistances`
    and fed to FID and KID as they are (each metric would otherwise run its own Inception pass)."""

    def __init__(self, num_features: int):
        super().__init__()
        self.num_features = num_features

    def forward(self, features: Tensor) -> Tensor:
        return features


class FeatureDistances(nn.Module):
    """FID and KID (torchmetrics) on the features of ``extractor`` (Inception pool features by default).

    Feed images with :meth:`update` (``(N, 3, H, W)`` RGB in [0, 1]); :meth:`compute` returns ``FID``, ``KID``
    (the mean over subsets, as reported in papers; often quoted x 1000) and ``KID_std``. Real features are kept
    across :meth:`reset` when ``keep_real`` so that a validation callback extracts them once.

    Args:
        extractor: ``uint8 (N, 3, H, W)`` -> ``(N, D)``, with a ``num_features`` attribute (see
            :func:`lit_gans.metrics.weights.inception`).
        kid_subsets, kid_subset_size: KID is averaged over this many random subsets of this size (capped at
            the number of samples; the KID paper and torch-fidelity use 100 x 1000).
        seed: seed of KID's subset draws, so that equal inputs give equal numbers.
    """

    def __init__(self, extractor: nn.Module, kid_subsets: int = 100, kid_subset_size: int = 1000, seed: int = 0):
        super().__init__()
        self.extractor = extractor
        d = int(extractor.num_features)
        self.fid = FrechetInceptionDistance(feature=_Precomputed(d), reset_real_features=False)
        with warnings.catch_warnings():  # its note that it keeps all features: known, and they are small here
            warnings.filterwarnings("ignore", message=".*will save all extracted features.*")
            self.kid = KernelInceptionDistance(feature=_Precomputed(d), subsets=kid_subsets,
                                               subset_size=kid_subset_size, reset_real_features=False)
        self.kid_subset_size = kid_subset_size
        self.seed = seed

    @property
    def num_real(self) -> int:
        return int(self.fid.real_features_num_samples)

    @torch.no_grad()
    def features(self, images: Tensor) -> Tensor:
        """``(N, 3, H, W)`` in [0, 1] -> ``(N, D)`` float64 features."""
        x = (images.clamp(0, 1) * 255).round().to(torch.uint8)
        return self.extractor(x.to(next(self.extractor.parameters()).device)).double()

    def update(self, images: Tensor, real: bool) -> None:
        feats = self.features(images)
        self.fid.update(feats.to(self.fid.device), real=real)
        self.kid.update(feats.to(self.kid.device), real=real)

    def compute(self) -> dict[str, float]:
        n = min(int(self.fid.real_features_num_samples), int(self.fid.fake_features_num_samples))
        self.kid.subset_size = max(2, min(self.kid_subset_size, n))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            kid_mean, kid_std = self.kid.compute()
        return {"FID": float(self.fid.compute()), "KID": float(kid_mean), "KID_std": float(kid_std)}

    def reset(self, keep_real: bool = True) -> None:
        """Forget the generated images' features (and the real ones unless ``keep_real``)."""
        for metric in (self.fid, self.kid):
            metric.reset_real_features = not keep_real
            metric.reset()

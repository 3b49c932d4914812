"""The Lightning data module all StarGAN v2 data sources share: loaders, sampling and the grid batch."""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from torch.utils.data import DataLoader, default_collate

from lit_gans.data.multidomain import MultiDomainItems
from lit_gans.data.sampling import EpochSampler
from lit_gans.errors import DataError


class MultiDomainDataModule(L.LightningDataModule):
    """Base of the multi-domain data modules. Subclasses set, in :meth:`setup`, ``train_set`` and
    ``val_set`` (:class:`MultiDomainItems`), ``domain_names``, ``channels`` and ``img_size``.

    Args:
        batch_size: items per batch (the last incomplete batch of an epoch is dropped).
        num_workers: loader processes; 0 loads in the main process.
        latent_dim: size of the style codes ``z1``, ``z2`` in each item.
        balanced: sample domains equally often (inverse-size weights), as the original StarGAN v2.
        seed: base seed of the sampling order and of every item's random choices.
        pin_memory: ``None``: on when CUDA is available.
    """

    def __init__(self, batch_size: int = 8, num_workers: int = 0, latent_dim: int = 16, balanced: bool = True,
                 seed: int = 0, pin_memory: bool | None = None):
        super().__init__()
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.latent_dim = latent_dim
        self.balanced = balanced
        self.seed = seed
        self.pin_memory = torch.cuda.is_available() if pin_memory is None else pin_memory
        self.train_set: MultiDomainItems | None = None
        self.val_set: MultiDomainItems | None = None
        self.domain_names: list[str] = []
        self.channels = 0
        self.img_size = 0

    @property
    def num_domains(self) -> int:
        return len(self.domain_names)

    def data_spec(self) -> dict[str, Any]:
        """What the data is, for the model's compatibility check."""
        return {"channels": self.channels, "img_size": self.img_size, "num_domains": self.num_domains,
                "domain_names": list(self.domain_names)}

    def train_dataloader(self) -> DataLoader:
        assert self.train_set is not None, "call setup() first"
        if len(self.train_set) < self.batch_size:
            raise DataError(
                f"the training set has {len(self.train_set)} items, fewer than one batch "
                f"(data.batch_size={self.batch_size}): add data or lower data.batch_size"
            )
        sampler = EpochSampler(len(self.train_set), self.train_set.labels, balanced=self.balanced, seed=self.seed)
        return DataLoader(
            self.train_set,
            batch_size=self.batch_size,
            sampler=sampler,
            drop_last=True,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            persistent_workers=self.num_workers > 0,
        )

    def sample_batch(self, n: int) -> dict[str, torch.Tensor]:
        """A fixed batch of ``n`` validation items spread over all domains (for sample grids)."""
        data = self.val_set if self.val_set is not None else self.train_set
        assert data is not None, "call setup() first"
        n = min(n, len(data))
        idx = torch.linspace(0, len(data) - 1, n).round().long().tolist()
        return default_collate([data[i] for i in idx])

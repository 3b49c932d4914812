"""Lightning data modules shared by all data sources: loaders, sampling and the fixed batch of the grids."""

from __future__ import annotations

import os
from typing import Any

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset, default_collate

from lit_gans import compat
from lit_gans.data.resumable_loader import ResumableDataLoader
from lit_gans.data.sampling import EpochSampler
from lit_gans.errors import DataError


def resolve_workers(num_workers: int | str | None) -> int:
    """``"auto"``: one loader process per CPU core available to this process, at most 8."""
    if num_workers in (None, "auto"):
        try:
            cores = len(os.sched_getaffinity(0))
        except AttributeError:  # pragma: no cover - not Linux
            cores = os.cpu_count() or 1
        return min(8, cores)
    return int(num_workers)


class BaseDataModule(L.LightningDataModule):
    """Subclasses set, in :meth:`setup`, ``train_set`` (and ``val_set`` when they have a validation split),
    and ``channels`` / ``img_size`` for :meth:`data_spec`. Their class attribute ``layout`` names the items they
    give (``domains``, ``unpaired``, ``paired``), which :mod:`lit_gans.config_checks` matches with the model's
    ``data_layouts`` before anything is built.

    Args:
        batch_size: items per batch (the last incomplete batch of an epoch is dropped).
        num_workers: loader processes; 0 loads in the main process; ``"auto"``: one per core, at most 8.
        seed: base seed of the sampling order and of every item's random choices.
        pin_memory: ``None``: on when CUDA is available.
    """

    layout: str | None = None

    def __init__(self, batch_size: int = 8, num_workers: int | str = 0, seed: int = 0, pin_memory: bool | None = None):
        super().__init__()
        self.batch_size = batch_size
        self.num_workers = resolve_workers(num_workers)
        self.seed = seed
        self.pin_memory = torch.cuda.is_available() if pin_memory is None else pin_memory
        self.train_set: Dataset | None = None
        self.val_set: Dataset | None = None
        self.channels = 0
        self.img_size = 0

    def data_spec(self) -> dict[str, Any]:
        """What the data is, for the model's compatibility check (and to fill the model's null sizes)."""
        spec: dict[str, Any] = {"channels": self.channels, "img_size": self.img_size}
        if isinstance(type(self).layout, str):
            spec["layout"] = type(self).layout
        return spec

    def sampler_labels(self) -> torch.Tensor | None:
        """Labels to balance the sampling over (``None``: a plain shuffle)."""
        return None

    def train_dataloader(self) -> DataLoader:
        assert self.train_set is not None, "call setup() first"
        if len(self.train_set) < self.batch_size:
            raise DataError(
                f"the training set has {len(self.train_set)} items, fewer than one batch "
                f"(data.batch_size={self.batch_size}): add data or lower data.batch_size"
            )
        labels = self.sampler_labels()
        sampler = EpochSampler(len(self.train_set), labels, balanced=labels is not None, seed=self.seed)
        return ResumableDataLoader(
            self.train_set,
            batch_size=self.batch_size,
            sampler=sampler,
            drop_last=True,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            persistent_workers=self.num_workers > 0,
            position=self._training_position,
            seed=self.seed,
        )

    def _training_position(self) -> tuple[int, int]:
        """``(epoch, batches of it trained)`` from the trainer's progress counters (0, 0 without one)."""
        trainer = self.trainer
        if trainer is None:
            return 0, 0
        return compat.epochs_done(trainer), compat.batches_done_in_epoch(trainer)

    def sample_batch(self, n: int) -> dict[str, torch.Tensor]:
        """A fixed batch of ``n`` items (validation split when there is one), spread evenly over the set."""
        data = self.val_set if self.val_set is not None else self.train_set
        assert data is not None, "call setup() first"
        n = min(n, len(data))
        idx = torch.linspace(0, len(data) - 1, n).round().long().tolist()
        return default_collate([data[i] for i in idx])


class MultiDomainDataModule(BaseDataModule):
    """Base of the StarGAN v2 data modules (items of :class:`~lit_gans.data.domain_items.MultiDomainItems`);
    subclasses also set ``domain_names``.

    Args:
        latent_dim: size of the style codes ``z1``, ``z2`` in each item.
        balanced: sample domains equally often (inverse-size weights), as the original StarGAN v2.
        with_ref2: also give a second reference of the target domain (``x_ref2``). ``train.py`` sets it from
            the model (StarGAN v2 with ``model.ds_paths`` including ``ref``), so that no image is decoded for
            nothing.
    """

    def __init__(self, latent_dim: int = 16, balanced: bool = True, with_ref2: bool = False, **kwargs: Any):
        super().__init__(**kwargs)
        self.latent_dim = latent_dim
        self.balanced = balanced
        self.with_ref2 = with_ref2
        self.domain_names: list[str] = []

    @property
    def num_domains(self) -> int:
        return len(self.domain_names)

    def data_spec(self) -> dict[str, Any]:
        return {**super().data_spec(), "num_domains": self.num_domains, "domain_names": list(self.domain_names)}

    def sampler_labels(self) -> torch.Tensor | None:
        return self.train_set.labels if self.balanced and self.train_set is not None else None

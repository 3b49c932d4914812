"""``data=latents data.path=FILE``: SD-VAE latents written by ``python -m lit_gans.latents encode``.

Domain names, latent size, VAE id and scaling factor come from the file. The tensors live in memory (or stay
memory-mapped when the file is large) and never go through PIL. The item format follows the file's layout:
StarGAN v2 items for ``domains``, ``{"A", "B"}`` for ``unpaired`` and ``paired``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from lit_gans.data.datamodule import MultiDomainDataModule
from lit_gans.data.domain_items import MultiDomainItems
from lit_gans.data.pair_items import PairedItems, UnpairedItems
from lit_gans.latents.store import LatentSet, load_latents


class _Rows:
    """``rows(i)`` -> float32 latent ``i`` of a subset, randomly mirrored when ``flip`` (uses torch's RNG,
    pinned per item by the datasets)."""

    def __init__(self, latents: Tensor, index: Tensor, flip: bool):
        self.latents, self.index, self.flip = latents, index, flip

    def __call__(self, i: int) -> Tensor:
        x = self.latents[int(self.index[i])].float()
        if self.flip and bool(torch.rand(()) < 0.5):
            x = x.flip(-1)
        return x


class LatentDataModule(MultiDomainDataModule):
    """Args:
        path: the latent file.
        flip: random horizontal flips of training latents (an SD latent mirrored is close to the latent of
            the mirrored image); off by default.
        mmap: ``auto`` keeps files over 4 GiB memory-mapped; ``true``/``false`` forces it.
        Other arguments: see :class:`~lit_gans.data.datamodule.MultiDomainDataModule`.
    """

    def __init__(self, path: str, flip: bool = False, mmap: bool | str = "auto", num_workers: int | str = 0,
                 **kwargs: Any):
        super().__init__(num_workers=num_workers, **kwargs)
        self.save_hyperparameters(logger=False)
        self.path, self.flip, self.mmap = path, flip, mmap
        self._data: LatentSet | None = None

    @property
    def latents(self) -> LatentSet:
        if self._data is None:
            self._data = load_latents(self.path, mmap=self.mmap)
            self.domain_names = self._data.domain_names
            self.channels, self.img_size = self._data.channels, self._data.size
        return self._data

    @property
    def layout(self) -> str:
        return self.latents.layout

    def data_spec(self) -> dict[str, Any]:
        d = self.latents
        return {**super().data_spec(), "layout": d.layout, "vae": d.vae, "vae_subfolder": d.subfolder,
                "scaling_factor": d.scaling_factor, "image_size": d.image_size}

    def sampler_labels(self) -> Tensor | None:
        return super().sampler_labels() if self.layout == "domains" else None

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        d = self.latents
        self.train_set = self._items(d, split=0, train=True)
        if bool((d.split == 1).any()):
            self.val_set = self._items(d, split=1, train=False)

    def _items(self, d: LatentSet, split: int, train: bool):
        idx = torch.nonzero(d.split == split).flatten()
        flip = self.flip and train
        if d.layout == "domains":
            return MultiDomainItems(_Rows(d.latents, idx, flip), d.labels[idx], len(d.domain_names), self.latent_dim,
                                    with_ref2=self.with_ref2)
        if d.layout == "unpaired":
            ia, ib = idx[d.labels[idx] == 0], idx[d.labels[idx] == 1]
            rows_a, rows_b = _Rows(d.latents, ia, flip), _Rows(d.latents, ib, flip)
            return UnpairedItems(lambda i: {"": rows_a(i)}, len(ia), lambda i: {"": rows_b(i)}, len(ib))
        # paired: A and B of a pair mirrored together
        def pair(i: int) -> tuple[Tensor, Tensor]:
            j = int(idx[i])
            a, b = d.latents[j].float(), d.latents_b[j].float()
            if flip and bool(torch.rand(()) < 0.5):
                a, b = a.flip(-1), b.flip(-1)
            return a, b

        return PairedItems(pair, len(idx))

"""``data=domains``: one sub-folder of images per domain (AFHQ / CelebA-HQ layout) for StarGAN v2."""

from __future__ import annotations

from typing import Any

import torch

from lit_gans.data.datamodule import MultiDomainDataModule
from lit_gans.data.domain_items import MultiDomainItems
from lit_gans.data.file_images import FileImages
from lit_gans.data.layouts import DOMAINS_HINT, DomainFiles, domain_split_folder, existing_root, find_domains
from lit_gans.data.transforms import stargan_transform


class DomainsDataModule(MultiDomainDataModule):
    """Args:
        root: ``ROOT/<domain>/*`` or ``ROOT/train/<domain>/*`` (+ ``ROOT/val/<domain>/*`` for sample grids).
        img_size: images are resized to this square size (the model's ``img_size``).
        crop_prob: probability of the original's random resized crop; ``flip``: random horizontal flips.
        verify: check files at setup (``auto``: decode them all up to 5000 files, else check headers).
        strict: an unreadable file is an error instead of being skipped with a warning.
        Other arguments: see :class:`MultiDomainDataModule`.
    """

    layout = "domains"

    def __init__(self, root: str, img_size: int = 256, crop_prob: float = 0.5, flip: bool = True,
                 verify: bool | str = "auto", strict: bool = False, num_workers: int | str = "auto", **kwargs: Any):
        super().__init__(num_workers=num_workers, **kwargs)
        self.save_hyperparameters(logger=False)
        self.root, self.img_size, self.channels = root, img_size, 3
        self.crop_prob, self.flip, self.verify, self.strict = crop_prob, flip, verify, strict
        self._train_files: DomainFiles | None = None

    def _scan(self) -> DomainFiles:
        if self._train_files is None:
            self._train_files = find_domains(self.root, "train", verify=self.verify, strict=self.strict,
                                             workers=max(1, self.num_workers))
            self.domain_names = self._train_files.domain_names
        return self._train_files

    def data_spec(self) -> dict[str, Any]:
        self._scan()
        return super().data_spec()

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        train = self._scan()
        self.train_set = self._items(train, train=True)
        root = existing_root(self.root, DOMAINS_HINT)
        if (root / "val").is_dir() and domain_split_folder(root, "val") is not None:
            val = find_domains(root, "val", verify=self.verify, strict=self.strict, domain_names=self.domain_names,
                               workers=max(1, self.num_workers))
            self.val_set = self._items(val, train=False)

    def _items(self, files: DomainFiles, train: bool) -> MultiDomainItems:
        transform = stargan_transform(self.img_size, train=train, crop_prob=self.crop_prob, flip=self.flip)
        images = FileImages(files.paths, transform, groups=files.labels, min_size=self.img_size)
        return MultiDomainItems(images.__getitem__, torch.tensor(files.labels), len(files.domain_names),
                                self.latent_dim, with_ref2=self.with_ref2)

"""``data=paired``: pix2pix data, side-by-side ``A|B`` images or ``A/`` and ``B/`` folders matched by file
stem, under ``ROOT/train`` (and ``ROOT/val`` or ``ROOT/test`` for grids) or directly under ``ROOT``.
With ``condition=grayscale|inpaint`` the folder holds target images and each source is derived from its
target (:mod:`lit_gans.data.derived_pairs`)."""

from __future__ import annotations

from typing import Any

from lit_gans.data.conditions import get_condition
from lit_gans.data.datamodule import BaseDataModule
from lit_gans.data.derived_pairs import DerivedPairs, find_targets
from lit_gans.data.layouts import PairedFiles, find_paired
from lit_gans.data.pair_items import FilePairs, PairedItems
from lit_gans.data.transforms import crop_transform
from lit_gans.errors import DataError


class PairedDataModule(BaseDataModule):
    """Args:
        root: see the module docstring.
        direction: ``AtoB`` (A is the source) or ``BtoA``.
        load_size, crop_size, flip: as :class:`~lit_gans.data.unpaired.UnpairedDataModule`; A and B get the
            same crop and flip.
        condition: ``none`` (pairs on disk), or ``grayscale`` / ``inpaint``: the images are targets and each
            source is derived from its target after the crop and flip (see :func:`~lit_gans.data.derived_pairs.find_targets`).
    """

    layout = "paired"

    def __init__(self, root: str, direction: str = "AtoB", load_size: int = 286, crop_size: int = 256,
                 flip: bool = True, verify: bool | str = "auto", strict: bool = False, batch_size: int = 1,
                 num_workers: int | str = "auto", condition: str = "none", **kwargs: Any):
        super().__init__(batch_size=batch_size, num_workers=num_workers, **kwargs)
        self.save_hyperparameters(logger=False)
        self.root, self.direction, self.load_size, self.crop_size, self.flip = root, direction, load_size, crop_size, flip
        self.verify, self.strict = verify, strict
        self.channels, self.img_size = 3, crop_size
        self.derive_source = get_condition(condition)
        self._train: PairedFiles | list | None = None

    def _find(self, split: str, workers: int = 4) -> PairedFiles | list:
        if self.derive_source is not None:
            return find_targets(self.root, split, self.direction, self.verify, self.strict, workers)
        return find_paired(self.root, split, self.verify, self.strict, workers)

    def _scan(self) -> PairedFiles | list:
        if self._train is None:
            self._train = self._find("train", max(1, self.num_workers))
        return self._train

    def data_spec(self) -> dict[str, Any]:
        self._scan()
        return super().data_spec()

    def _items(self, files: PairedFiles | list, train: bool) -> PairedItems:
        tf = crop_transform(self.load_size, self.crop_size, train=train, flip=self.flip)
        if self.derive_source is not None:
            derived = DerivedPairs(files, tf, self.derive_source, min_size=self.crop_size)
            return PairedItems(derived, len(derived))
        pairs = FilePairs(files.paths_a, files.paths_b, tf, self.direction, min_size=self.crop_size)
        return PairedItems(pairs, len(pairs))

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        self.train_set = self._items(self._scan(), train=True)
        for split in ("val", "test"):
            try:
                self.val_set = self._items(self._find(split), train=False)
                break
            except DataError:
                continue

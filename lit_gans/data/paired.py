"""``data=paired``: pix2pix data, side-by-side ``A|B`` images or ``A/`` and ``B/`` folders matched by file
stem, under ``ROOT/train`` (and ``ROOT/val`` or ``ROOT/test`` for grids) or directly under ``ROOT``."""

from __future__ import annotations

from typing import Any

from lit_gans.data.datamodule import BaseDataModule
from lit_gans.data.layouts import PairedFiles, find_paired
from lit_gans.data.pairs import FilePairs, PairedItems
from lit_gans.data.transforms import crop_transform
from lit_gans.errors import DataError


class PairedDataModule(BaseDataModule):
    """Args:
        root: see the module docstring.
        direction: ``AtoB`` (A is the source) or ``BtoA``.
        load_size, crop_size, flip: as :class:`~lit_gans.data.unpaired.UnpairedDataModule`; A and B get the
            same crop and flip.
    """

    def __init__(self, root: str, direction: str = "AtoB", load_size: int = 286, crop_size: int = 256,
                 flip: bool = True, verify: bool | str = "auto", strict: bool = False, batch_size: int = 1,
                 num_workers: int | str = "auto", **kwargs: Any):
        super().__init__(batch_size=batch_size, num_workers=num_workers, **kwargs)
        self.save_hyperparameters(logger=False)
        self.root, self.direction, self.load_size, self.crop_size, self.flip = root, direction, load_size, crop_size, flip
        self.verify, self.strict = verify, strict
        self.channels, self.img_size = 3, crop_size
        self._train: PairedFiles | None = None

    def _scan(self) -> PairedFiles:
        if self._train is None:
            self._train = find_paired(self.root, "train", self.verify, self.strict, max(1, self.num_workers))
        return self._train

    def data_spec(self) -> dict[str, Any]:
        self._scan()
        return super().data_spec()

    def _items(self, files: PairedFiles, train: bool) -> PairedItems:
        tf = crop_transform(self.load_size, self.crop_size, train=train, flip=self.flip)
        pairs = FilePairs(files.paths_a, files.paths_b, tf, self.direction, min_size=self.crop_size)
        return PairedItems(pairs, len(pairs))

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        self.train_set = self._items(self._scan(), train=True)
        for split in ("val", "test"):
            try:
                self.val_set = self._items(find_paired(self.root, split, self.verify, self.strict), train=False)
                break
            except DataError:
                continue

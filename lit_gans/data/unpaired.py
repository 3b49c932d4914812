"""``data=unpaired``: CycleGAN/CUT folders ``trainA/``, ``trainB/`` (``testA/``, ``testB/`` for grids), with
optional semantic masks ``trainA_masks/`` (PNG of class ids, same file stem)."""

from __future__ import annotations

from typing import Any

from lit_gans.data.datamodule import BaseDataModule
from lit_gans.data.images import read_mask
from lit_gans.data.layouts import UnpairedFiles, find_unpaired
from lit_gans.data.pair_items import FileSide, UnpairedItems
from lit_gans.data.transforms import crop_transform
from lit_gans.errors import DataError


class UnpairedDataModule(BaseDataModule):
    """Args:
        root: folder with ``trainA``/``trainB``.
        load_size, crop_size: resize to ``load_size`` square, then random crops of ``crop_size`` (286/256 as
            CycleGAN); flip: random horizontal flips.
        masks: use ``<split>A_masks``/``<split>B_masks`` when present.
        num_classes: classes in the masks; ``None``: the largest id found + 1.
        verify, strict: see :func:`lit_gans.data.layouts.screen`.
    """

    layout = "unpaired"

    def __init__(self, root: str, load_size: int = 286, crop_size: int = 256, flip: bool = True, masks: bool = True,
                 num_classes: int | None = None, verify: bool | str = "auto", strict: bool = False,
                 batch_size: int = 1, num_workers: int | str = "auto", **kwargs: Any):
        super().__init__(batch_size=batch_size, num_workers=num_workers, **kwargs)
        self.save_hyperparameters(logger=False)
        self.root, self.load_size, self.crop_size, self.flip = root, load_size, crop_size, flip
        self.use_masks, self.num_classes, self.verify, self.strict = masks, num_classes, verify, strict
        self.channels, self.img_size = 3, crop_size
        self._train: UnpairedFiles | None = None

    def _scan(self) -> UnpairedFiles:
        if self._train is None:
            self._train = find_unpaired(self.root, "train", self.verify, self.strict, max(1, self.num_workers))
            if not self.use_masks:
                self._train.masks_a = self._train.masks_b = None
            if self._train.masks_a is not None and self.num_classes is None:
                masks = self._train.masks_a + (self._train.masks_b or [])
                self.num_classes = int(max(int(read_mask(p).max()) for p in masks)) + 1
        return self._train

    def data_spec(self) -> dict[str, Any]:
        files = self._scan()
        spec = {**super().data_spec(), "masks_a": files.masks_a is not None, "masks_b": files.masks_b is not None}
        if files.masks_a is not None or files.masks_b is not None:
            spec["num_classes"] = self.num_classes
        return spec

    def _items(self, files: UnpairedFiles, train: bool) -> UnpairedItems:
        tf = crop_transform(self.load_size, self.crop_size, train=train, flip=self.flip)
        side_a = FileSide(files.paths_a, tf, files.masks_a if self.use_masks else None, min_size=self.crop_size)
        side_b = FileSide(files.paths_b, tf, files.masks_b if self.use_masks else None, min_size=self.crop_size)
        return UnpairedItems(side_a, len(files.paths_a), side_b, len(files.paths_b))

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        self.train_set = self._items(self._scan(), train=True)
        try:
            test = find_unpaired(self.root, "test", self.verify, self.strict, max(1, self.num_workers))
        except DataError:
            test = None  # no testA/testB: grids use training images
        if test is not None:
            self.val_set = self._items(test, train=False)

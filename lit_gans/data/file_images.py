"""Reading items from files inside a dataset: an unreadable file found late (after the setup check) is
reported once and replaced by another file of the same group, so a long run never stops on one bad image."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path

from torch import Tensor

from lit_gans.data.images import read_image
from lit_gans.data.transforms import warn_if_small
from lit_gans.errors import DataError

log = logging.getLogger(__name__)


class FileImages:
    """``images[i]`` -> transformed tensor of file ``i``.

    Args:
        paths: image files.
        transform: applied to the decoded ``uint8 (3, H, W)`` image.
        groups: group (domain) of each file; a failing file is replaced by the next of its group.
        min_size: warn (once per file) about images smaller than this.
    """

    def __init__(self, paths: Sequence[Path], transform: Callable[[Tensor], Tensor], groups: Sequence[int] | None = None,
                 min_size: int = 0):
        self.paths = list(paths)
        self.transform = transform
        self.groups = list(groups) if groups is not None else [0] * len(self.paths)
        self.min_size = min_size
        self._bad: set[int] = set()
        self._small: set[str] = set()

    def __len__(self) -> int:
        return len(self.paths)

    def raw(self, i: int) -> Tensor:
        """The decoded ``uint8`` image of item ``i`` (or of a readable replacement)."""
        for j in self._candidates(i):
            try:
                img = read_image(self.paths[j])
            except Exception as err:  # noqa: BLE001 - any decoder failure: report and replace
                self._bad.add(j)
                log.warning("skipping unreadable image %s (%s: %s)", self.paths[j], type(err).__name__, err)
                continue
            if self.min_size:
                warn_if_small(img, self.min_size, self.paths[j], self._small)
            return img
        raise DataError(f"no readable image left in the group of {self.paths[i]}")

    def __getitem__(self, i: int) -> Tensor:
        return self.transform(self.raw(i))

    def _candidates(self, i: int):
        n = len(self.paths)
        for k in range(n):
            j = (i + k) % n
            if j not in self._bad and self.groups[j] == self.groups[i]:
                yield j

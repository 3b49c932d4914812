"""Files are data, never code: every checkpoint, latent file, judge cache and weight file lit_gans reads goes
through :func:`load_data`, i.e. ``torch.load(weights_only=True)``.

A ``torch.save`` file is a pickle. A full unpickler calls whatever function the file names (``__reduce__``), so
``torch.load(weights_only=False)`` of a file from a stranger runs the stranger's code. PyTorch's weights-only
unpickler builds tensors, numbers, strings, ``None`` and plain containers (list, tuple, dict, set,
``OrderedDict``) and refuses any other global (`PyTorch serialization notes
<https://docs.pytorch.org/docs/stable/notes/serialization.html#weights-only>`_). What lit_gans writes (Lightning
checkpoints with plain hyper-parameters and callback states, latent files, judge caches) loads that way; a file
that needs more is refused in one line naming it and the objects it would have created, before any of them is.
"""

from __future__ import annotations

import os
import pickle
import re
from typing import Any

import torch

from lit_gans.errors import ConfigError

PLAIN = "tensors, numbers, strings and lists/dicts of them"


class UnsafeFile(ConfigError):
    """A file that holds pickled objects other than plain data (loading it with a full unpickler runs code)."""


def unsafe_globals(path: str | os.PathLike, err: BaseException | None = None) -> list[str]:
    """The classes/functions a pickle file names besides plain data (``["io.open"]``), read without running
    them; from the unpickler's error when the file's format has no listing (legacy non-zip files)."""
    try:
        names = list(torch.serialization.get_unsafe_globals_in_checkpoint(str(path)))
    except Exception:  # noqa: BLE001 - a legacy (non-zip) or damaged file: fall back to the error's text
        names = []
    if not names and err is not None:
        names = re.findall(r"Unsupported global: GLOBAL (\S+)", str(err))
        if not names:
            found = re.search(r"WeightsUnpickler error: *(.+)", " ".join(str(err).split("\n")))
            if found:
                names = [found.group(1).strip()[:80]]
    return names


def refusal(path: str | os.PathLike, err: BaseException | None, what: str = "file", fix: str = "") -> UnsafeFile:
    """The one-line error for a file that does not load as plain data."""
    names = unsafe_globals(path, err)
    shown = ", ".join(names[:4]) + (" ..." if len(names) > 4 else "") if names else "objects other than plain data"
    return UnsafeFile(f"{path}: refused to load this {what}: it holds pickled code ({shown}) that loading would run, "
                      f"not only {PLAIN}; lit_gans loads files as data only{'; ' + fix if fix else ''}")


def load_data(path: str | os.PathLike, what: str = "file", fix: str = "", mmap: bool = False) -> Any:
    """``torch.load(path, weights_only=True)`` on the CPU; :class:`UnsafeFile` (one line: the file, the globals
    it names, ``fix``) when the file holds anything but plain data. Other failures (a missing, truncated or
    foreign file) propagate for the caller to describe."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as err:
        raise refusal(path, err, what, fix) from None


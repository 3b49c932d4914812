"""Shared behaviour of the command-line entry points: user errors end in one line, not a traceback."""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator

from lit_gans.errors import LitGansError


def user_error(err: BaseException | None) -> LitGansError | None:
    """The user error behind ``err``: itself, or the cause it was raised from (Hydra's ``instantiate`` wraps
    what a constructor raises in an ``InstantiationException``)."""
    while err is not None:
        if isinstance(err, LitGansError):
            return err
        err = err.__cause__
    return None


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Turn :class:`LitGansError` (also when wrapped) into ``error: <message>`` on stderr and exit status 2."""
    try:
        yield
    except Exception as exc:
        err = user_error(exc)
        if err is None:
            raise
        logging.getLogger("lit_gans").debug("user error", exc_info=True)
        print(f"error: {err}", file=sys.stderr, flush=True)
        raise SystemExit(2) from None

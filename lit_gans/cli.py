"""Shared behaviour of the command-line entry points: user errors end in one line, not a traceback."""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator

from lit_gans.errors import LitGansError


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Turn :class:`LitGansError` into ``error: <message>`` on stderr and exit status 2."""
    try:
        yield
    except LitGansError as err:
        logging.getLogger("lit_gans").debug("user error", exc_info=True)
        print(f"error: {err}", file=sys.stderr, flush=True)
        raise SystemExit(2) from None

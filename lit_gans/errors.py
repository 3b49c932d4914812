"""Errors a user can fix: they carry one line that says what is wrong and how to fix it.

Entry points (``train.py``, ``python -m lit_gans.X``) print these as a single line and exit with
status 2 instead of showing a traceback; everything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class LitGansError(Exception):
    """Base class of user-fixable errors. ``str(err)`` is the one-line message."""

    prefix = "error: "
    exit_code = 2


class ConfigError(LitGansError, ValueError):
    """A configuration value or combination that cannot work."""


class DataError(LitGansError, ValueError):
    """Input data that is missing, empty, unreadable or of the wrong shape."""


class TrainingError(LitGansError, RuntimeError):
    """Training cannot go on (e.g. a loss term became NaN/Inf)."""


class Interrupted(LitGansError):
    """A run stopped by a signal (SIGTERM, Ctrl-C) after saving what it could; exits with ``128 + signal``."""

    prefix = ""

    def __init__(self, message: str, exit_code: int = 143):
        super().__init__(message)
        self.exit_code = exit_code

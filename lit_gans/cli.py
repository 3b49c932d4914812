"""Shared behaviour of the command-line entry points: user errors end in one line, not a traceback."""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator

from lit_gans.errors import ConfigError, LitGansError


def user_error(err: BaseException | None) -> LitGansError | None:
    """The user error behind ``err``: itself, or the cause it was raised from (Hydra's ``instantiate`` wraps
    what a constructor raises in an ``InstantiationException``). A config that does not resolve (a missing
    mandatory value, an interpolation to a key the composed config lacks) is one too."""
    from omegaconf.errors import InterpolationResolutionError, MissingMandatoryValue

    while err is not None:
        if isinstance(err, LitGansError):
            return err
        if isinstance(err, MissingMandatoryValue):
            key = getattr(err, "full_key", "") or "a value"
            return ConfigError(f"{key} is required: pass {key}=...")
        if isinstance(err, InterpolationResolutionError):
            msg = str(err).splitlines()[0]
            key = getattr(err, "full_key", "")
            return ConfigError(f"the config does not resolve{f' at {key}' if key else ''}: {msg}; a group refers to "
                               "a key that the chosen options lack (e.g. a model with data it does not train on)")
        err = err.__cause__
    return None


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Turn :class:`LitGansError` (also when wrapped) into ``error: <message>`` on stderr and exit status 2
    (an :class:`~lit_gans.errors.Interrupted` run: its message and ``128 + signal``)."""
    try:
        yield
    except KeyboardInterrupt:
        print("stopped by Ctrl-C", file=sys.stderr, flush=True)
        raise SystemExit(130) from None
    except Exception as exc:
        err = user_error(exc)
        if err is None:
            raise
        logging.getLogger("lit_gans").debug("user error", exc_info=True)
        print(f"{err.prefix}{err}", file=sys.stderr, flush=True)
        raise SystemExit(err.exit_code) from None


def refuse_busy_run_dir(argv: list[str]) -> None:
    """Exit with one line when ``hydra.run.dir=DIR`` names a folder that a live process is training in. Checked
    before Hydra starts, which would otherwise rewrite that run's ``.hydra/`` files; ``lit_gans.train`` takes the
    lock itself (this is only the early refusal)."""
    from lit_gans.utils.rundir import RunLock, is_global_zero_process

    if not is_global_zero_process():  # a DDP process started by the first one, which holds the lock
        return
    with user_errors():
        for arg in argv:
            key, _, value = arg.partition("=")
            if key.lstrip("+") == "hydra.run.dir" and value:
                RunLock(value).check_free()

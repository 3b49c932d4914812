"""Shared behaviour of the command-line entry points: user errors end in one line, not a traceback."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
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


_STARTED = time.time()  # (about) when this process started: files of a run folder newer than this are its own
_EXISTING_RUN_DIRS: set[str] = set()


def note_existing_run_dir(argv: list[str]) -> None:
    """Remember whether ``hydra.run.dir=DIR`` names a folder that exists before Hydra creates it (a start refused
    later then leaves that folder in place; see :func:`no_trace_of_refused_start`)."""
    _EXISTING_RUN_DIRS.clear()
    for arg in argv:
        key, _, value = arg.partition("=")
        value = unquote(value)
        if key.lstrip("+") == "hydra.run.dir" and value and os.path.isdir(os.path.expanduser(value)):
            _EXISTING_RUN_DIRS.add(os.path.abspath(os.path.expanduser(value)))


@contextlib.contextmanager
def no_trace_of_refused_start() -> Iterator[None]:
    """Inside a Hydra job: when a :class:`~lit_gans.errors.ConfigError` or ``DataError`` refuses the start (before
    any training), remove what Hydra and the run lock wrote for it, and the run folder when this start made it
    and it holds nothing else (:func:`lit_gans.utils.rundir.discard_failed_start`)."""
    from lit_gans.errors import DataError

    try:
        yield
    except Exception as exc:
        if isinstance(user_error(exc), (ConfigError, DataError)):
            try:
                from hydra.core.hydra_config import HydraConfig

                from lit_gans.utils.rundir import discard_failed_start

                hc = HydraConfig.get()
                run_dir = str(hc.runtime.output_dir)
                discard_failed_start(run_dir, hc.output_subdir, f"{hc.job.name}.log", _STARTED,
                                     keep_folder=os.path.abspath(run_dir) in _EXISTING_RUN_DIRS)
            except (ValueError, AttributeError, OSError):  # no Hydra job, or a folder that cannot be cleaned
                pass
        raise


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
            value = unquote(value)
            if key.lstrip("+") == "hydra.run.dir" and value:
                RunLock(value).check_free()


# Keys that say where and how a run is (re)started, not what it trains: left out of run names and of the
# overrides a resumed run re-applies.
RUN_KEYS = ("hydra.run.dir", "hydra.sweep.dir", "hydra.output_subdir", "ckpt_path", "resume")


def unquote(value: str) -> str:
    """An override's value without the quotes around it (``'runs/été'`` -> ``runs/été``)."""
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1]
    return value


def _key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")


def run_suffix(override_dirname: str, limit: int = 80) -> str:
    """``_<overrides>`` for a run folder's name (``""`` without overrides): Hydra's ``override_dirname`` made safe
    as one path component (no ``/``) and at most ``limit`` characters."""
    text = override_dirname.replace(os.sep, "-").strip("-. ")
    if not text:
        return ""
    return "_" + (text if len(text) <= limit else text[: limit - 3] + "...")


def _swept(value: str) -> bool:
    """Whether an override's value is a sweep (``1,2``, ``range(...)``, ``choice(...)``...) rather than one value."""
    if value.startswith(("range(", "choice(", "interval(", "glob(", "tag(")):
        return True
    depth = 0
    for ch in value:
        depth += ch in "[{(" and 1 or (-1 if ch in "]})" else 0)
        if ch == "," and depth == 0:
            return True
    return False


def register_resolvers() -> None:
    """OmegaConf resolvers the configs use: ``${run_suffix:...}`` (conf/hydra/default.yaml) and ``${basename:...}``
    (a run folder's own name, the run name MLflow and W&B show)."""
    from omegaconf import OmegaConf

    if not OmegaConf.has_resolver("run_suffix"):
        OmegaConf.register_new_resolver("run_suffix", run_suffix)
    if not OmegaConf.has_resolver("basename"):
        OmegaConf.register_new_resolver("basename", lambda path: os.path.basename(os.path.normpath(str(path))))


CONF = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "conf")


def quote_non_ascii(argv: list[str]) -> list[str]:
    """``key=value`` overrides whose value has non-ASCII characters (``hydra.run.dir=runs/été``), quoted for Hydra,
    whose grammar reads such characters only inside quotes. Values that are already quoted, lists, dicts, sweeps
    and values holding quotes or backslashes are left as they are."""
    out = []
    for arg in argv:
        key, sep, value = arg.partition("=")
        plain = (sep and not arg.startswith("-") and not value.isascii() and value[:1] not in "'\"[{("
                 and not any(c in value for c in "'\"\\") and not _swept(value))
        out.append(f"{key}='{value}'" if plain else arg)
    return out


def check_group_options(argv: list[str], conf: str = CONF) -> None:
    """A one-line :class:`ConfigError` for ``group=option`` naming an option the group does not have
    (``model=stargna``), instead of Hydra's multi-line report. Hydra's own groups (``hydra/...``) are left to it."""
    for arg in argv:
        key, sep, value = arg.partition("=")
        key = key.lstrip("+~").split("@", 1)[0]
        if not sep or arg.startswith("-") or key.startswith("hydra") or "." in key:
            continue
        folder = os.path.join(conf, key)
        if not os.path.isdir(folder):
            continue
        options = [v.strip() for v in (value.split(",") if _swept(value) else [value])]
        for option in options:
            if option in ("", "null") or not all(c.isalnum() or c in "_-/." for c in option):
                continue  # empty, null, or a sweep function: Hydra reads it
            if not os.path.isfile(os.path.join(folder, option + ".yaml")):
                names = sorted(os.path.splitext(f)[0] for f in os.listdir(folder) if f.endswith(".yaml"))
                raise ConfigError(f"{key}={option}: {key} has no option {option!r} (conf/{key}/{option}.yaml); "
                                  f"choose one of: {', '.join(names)}")


def prepare_train_argv(argv: list[str], now: str | None = None) -> list[str]:
    """``train.py``'s arguments before Hydra sees them.

    - ``resume=RUN``: the run's own overrides (``RUN/.hydra/overrides.yaml``, then those of its resumes with
      changes, ``RUN/.hydra/changes.yaml``), then the given ones (which win), in ``hydra.run.dir=RUN`` from
      ``ckpt_path=last``.
    - A ``group=option`` the group lacks is a one-line error; a value with non-ASCII characters is quoted.
    - Any resume into an existing run folder (``resume=``, or ``ckpt_path=`` with ``hydra.run.dir=``): Hydra's
      record of this start goes to ``.hydra/resumed/<time>/``, so the run's original ``.hydra/`` is never
      overwritten.
    """
    import datetime

    import yaml

    from lit_gans.errors import ConfigError

    now = now or datetime.datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
    args = quote_non_ascii(list(argv))
    check_group_options(args)
    resume = next((unquote(a.split("=", 1)[1]) for a in args if _key(a) == "resume" and "=" in a), None)
    if resume not in (None, "", "null"):
        if any(a in ("-m", "--multirun") for a in args):
            raise ConfigError("resume= continues one run: drop -m (a sweep's jobs resume with ckpt_path=auto)")
        record = os.path.join(os.path.expanduser(resume), ".hydra", "overrides.yaml")
        if not os.path.isfile(record):
            raise ConfigError(f"resume={resume} is not a run folder (no .hydra/overrides.yaml in it): pass the folder "
                              "of a run, e.g. resume=outputs/<date>/<time>")
        with open(record, encoding="utf-8") as f:
            original = [str(o) for o in (yaml.safe_load(f) or [])]
        # The overrides of earlier resumes with changes (.hydra/changes.yaml) come after the original ones.
        from lit_gans.resume_changes import read_changes

        original += [str(o) for r in read_changes(os.path.expanduser(resume)) for o in r.get("overrides") or []]
        given = [a for a in args if not a.startswith("-") and _key(a) != "resume"]
        merged = {_key(o): o for o in original if _key(o) not in RUN_KEYS}
        merged.update({_key(o): o for o in given})
        flags = [a for a in args if a.startswith("-")]
        args = [*flags, *merged.values(), f"hydra.run.dir={resume}"]
        if "ckpt_path" not in merged:
            args.append("ckpt_path=last")
    if any(a in ("-m", "--multirun") for a in args):
        # Sweep jobs are named by what is swept (`0_loss.w_sty=1`), not by the overrides they share.
        fixed = [_key(a) for a in args if "=" in a and not a.startswith("-") and not _swept(a.split("=", 1)[1])]
        if not any(_key(a) == "hydra.job.config.override_dirname.exclude_keys" for a in args):
            keys = list(dict.fromkeys([*RUN_KEYS, "hydra.launcher", *fixed]))
            args.append(f"hydra.job.config.override_dirname.exclude_keys=[{','.join(keys)}]")
    run_dir = next((unquote(a.split("=", 1)[1]) for a in args if _key(a) == "hydra.run.dir" and "=" in a), None)
    resuming = any(_key(a) == "ckpt_path" and a.split("=", 1)[1] not in ("", "null") for a in args if "=" in a)
    if run_dir and resuming and os.path.isdir(os.path.join(run_dir, ".hydra")) and \
            not any(_key(a) == "hydra.output_subdir" for a in args):
        args.append(f"hydra.output_subdir=.hydra/resumed/{now}")
    return args

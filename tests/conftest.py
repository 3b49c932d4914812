"""Shared fixtures: composing the real Hydra config in-process, tiny network sizes, reading event files."""

from __future__ import annotations

import glob
import logging
import os
import sys
from collections.abc import Callable

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONF = os.path.join(ROOT, "conf")

# Small enough for a CPU test in seconds, large enough to exercise every block.
TINY_STARGAN = [
    "model.img_size=16",
    "model.dim=8",
    "model.max_conv_dim=16",
    "model.mapping_dim=32",
    "model.style_dim=8",
    "model.latent_dim=4",
    "data.batch_size=4",
]
TINY_SYNTHETIC = ["data.per_domain=8", "data.val_per_domain=2"]
QUIET = [
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
    "trainer.limit_val_batches=0",
    "callbacks.image_grid.every_n_steps=0",
    "trainer.log_every_n_steps=1",
    "callbacks.judge.at_end=false",  # the judge callback is tested where it matters (test_judge, test_presets)
]


@pytest.fixture(autouse=True, scope="session")
def _judge_cache(tmp_path_factory):
    """Judges of built-in data are cached in a folder of the test session, not in the user's ~/.cache (the
    variable reaches train.py / evaluate subprocesses through their environment). pytest-xdist's workers share
    the folder (the parent of their own temporary folders): a judge trained by one is read by the other (files
    are written whole and renamed into place)."""
    base = tmp_path_factory.getbasetemp()
    folder = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "judges"
    folder.mkdir(exist_ok=True)
    mp = pytest.MonkeyPatch()
    mp.setenv("LIT_GANS_JUDGE_CACHE", str(folder))
    yield
    mp.undo()


def torch_threads(workers: int) -> int:
    """Torch threads of a test process: ``OMP_NUM_THREADS`` when it is set (the one-thread run of the suite), else
    the cores (at most two) shared among pytest-xdist's ``workers``. Two threads on a core that another process is
    using make small ops many times slower than one (measured: the judge's 300 training steps at 32 px, 11 s on
    one thread, 133 s on two beside one busy process)."""
    if os.environ.get("OMP_NUM_THREADS", "").isdigit():
        return max(1, int(os.environ["OMP_NUM_THREADS"]))
    return max(1, min(2, os.cpu_count() or 1) // workers)


THREADS = 1


def pytest_configure(config):
    global THREADS
    if getattr(config.option, "dist", "no") != "no" and not hasattr(config, "workerinput"):
        return  # pytest-xdist's controller runs no test (and must not hand its count down to the workers)
    workers = getattr(config, "workerinput", {}).get("workercount", 1)  # pytest-xdist's worker: the count
    THREADS = torch_threads(int(workers))
    # train.py and the other commands the tests start inherit the count, so that a value computed here and one
    # computed in a subprocess come from the same kernels.
    os.environ["OMP_NUM_THREADS"] = str(THREADS)
    torch.set_num_threads(THREADS)


@pytest.fixture(autouse=True)
def _torch_threads():
    torch.set_num_threads(THREADS)
    yield


@pytest.fixture(scope="session")
def trained(tmp_path_factory) -> Callable[[str], str]:
    """``trained(name)``: the ``last.ckpt`` of the tiny model ``name`` of tests/trained.py, trained once per test
    session and shared by every test that reads a checkpoint."""
    from trained import tiny_checkpoint

    made: dict[str, str] = {}

    def get(name: str):
        if name not in made:
            made[name] = tiny_checkpoint(name, tmp_path_factory.mktemp(name))
        return made[name]

    return get


def compose_config(overrides: list[str], output_dir: str) -> DictConfig:
    """Compose conf/train.yaml as ``python train.py <overrides>`` would, with outputs in ``output_dir``."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        cfg = compose(config_name="train", overrides=overrides, return_hydra_config=True)
    with open_dict(cfg):
        cfg.hydra.runtime.output_dir = output_dir
        cfg.hydra.runtime.cwd = ROOT
        cfg.hydra.job.num = 0
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        del cfg["hydra"]
    return cfg


@pytest.fixture
def make_cfg(tmp_path) -> Callable[..., DictConfig]:
    def _make(*overrides: str, tiny: bool = True, quiet: bool = True) -> DictConfig:
        synthetic = not any(o.startswith("data=") for o in overrides)
        ov = (TINY_STARGAN + (TINY_SYNTHETIC if synthetic else []) if tiny else []) + (QUIET if quiet else [])
        ov += list(overrides)
        return compose_config(ov, str(tmp_path))

    yield _make
    GlobalHydra.instance().clear()


def read_scalars(root: str) -> dict[str, list[tuple[int, float]]]:
    """All scalar series of the TensorBoard runs under ``root``: ``{tag: [(step, value), ...]}``. Each folder of
    event files is read as TensorBoard reads a run: a resumed run's file purges the points an earlier, killed
    process logged from the resume step on."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out: dict[str, list[tuple[int, float]]] = {}
    files = glob.glob(os.path.join(root, "**", "events.out.tfevents.*"), recursive=True)
    for folder in sorted({os.path.dirname(f) for f in files}):
        ea = EventAccumulator(folder, size_guidance={"scalars": 0})
        ea.Reload()
        for tag in ea.Tags()["scalars"]:
            out.setdefault(tag, []).extend((e.step, e.value) for e in ea.Scalars(tag))
    return {k: sorted(v) for k, v in out.items()}


def run_cli(main, argv, capsys, monkeypatch, prog="train.py"):
    """``main()`` with ``sys.argv = [prog, *argv]``: (exit status, non-empty stderr lines, stdout). What a
    command changes for its process (Hydra's logging handlers, evaluate's global no-grad mode) is put back."""
    monkeypatch.setattr(sys, "argv", [prog, *map(str, argv)])
    GlobalHydra.instance().clear()
    capsys.readouterr()
    handlers, level, grad = logging.root.handlers[:], logging.root.level, torch.is_grad_enabled()
    try:
        main()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        GlobalHydra.instance().clear()
        logging.root.handlers[:] = handlers
        logging.root.setLevel(level)
        torch.set_grad_enabled(grad)
    out = capsys.readouterr()
    return code, [line for line in out.err.splitlines() if line.strip()], out.out

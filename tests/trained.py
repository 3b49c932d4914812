"""Training tiny models for the tests: one helper in-process, one for ``python train.py`` in a subprocess.

``tiny_checkpoint(name)`` (through conftest's session fixture ``trained``) trains each family once per test
session, for two steps at the sizes below, and every test of a tool that reads a checkpoint (translate,
evaluate, export, serve, the judge, inference, the trust checks) shares it. ``run_train`` is for the tests
whose subject is the process itself: signals, exit codes, the one-line errors, DDP.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from conftest import QUIET, ROOT, TINY_STARGAN, compose_config

TINY_CUT = ["model=cut", "model.nce_dim=8", "model.ngf=4", "model.n_blocks=1", "model.ndf=4", "data.img_size=32",
            "data.size=4", "data.val_size=3", "data.batch_size=2"]
TINY_PALETTE = ["model=palette", "model.channels=16", "model.channel_mults=[1,2]", "model.num_res_blocks=1",
                "model.attn_res=[8]", "model.num_head_channels=8", "model.norm_groups=8", "data.img_size=16",
                "data.size=8", "data.val_size=2", "data.batch_size=4", "model.optimizer.lr=1e-2",
                "model.scheduler.warmup_steps=0", "model.ema_beta=0.0"]  # EMA = the trained UNet: outputs depend on t
# name -> (overrides, training steps)
TINY: dict[str, tuple[list[str], int]] = {
    # three domains (circle, square, triangle) of 16 px shapes
    "stargan": ([*TINY_STARGAN, "data.per_domain=4", "data.val_per_domain=2"], 2),
    # two domains: evaluate's per-domain tables and the judge's pairs stay small
    "stargan_two_domains": ([*TINY_STARGAN, "data.num_domains=2", "data.per_domain=4", "data.val_per_domain=2"], 2),
    "cut": (TINY_CUT, 2),
    "palette": (TINY_PALETTE, 3),
}
SHORT = [*QUIET, "logger=[]", "callbacks.model_checkpoint=null"]


def tiny_checkpoint(name: str, out: Path) -> Path:
    """Train ``TINY[name]`` in this process into ``out``; its ``last.ckpt``."""
    from lit_gans.train import train

    overrides, steps = TINY[name]
    train(compose_config([*overrides, *SHORT, f"trainer.max_steps={steps}"], str(out)))
    return out / "checkpoints" / "last.ckpt"


def run_train(run_dir: Path | str | None, *args: str, timeout: int = 600, check: bool = True,
              env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """``python train.py <args> hydra.run.dir=<run_dir>`` (no run dir: as given, e.g. a sweep) in a subprocess, with
    ``tests/`` on ``PYTHONPATH`` (for the fault-injecting callbacks of ``tests/helpers``) and ``env`` added;
    asserts exit 0 unless ``check=False``."""
    env = {**os.environ, "PYTHONPATH": os.path.join(ROOT, "tests"), **(env or {})}
    run = [f"hydra.run.dir={run_dir}"] if run_dir is not None else []
    p = subprocess.run([sys.executable, "train.py", *args, *run], cwd=ROOT, env=env, capture_output=True, text=True,
                       timeout=timeout)
    if check:
        assert p.returncode == 0, p.stderr[-3000:]
    return p

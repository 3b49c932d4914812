"""One-shot GPU check: ``python -m lit_gans.bench.gpu_check [--dry-run] [--out-dir DIR] [--budget-s 480]``
(``scripts/gpu_check.sh`` installs what a bare GPU machine lacks and runs this).

In one process, within a time budget, it runs and reports:

* **env**: GPU, driver, torch/CUDA/cuDNN/Lightning versions, and the measured bf16 matmul peak.
* **correctness**: every model (``stargan``, ``stargan_latent``, ``cyclegan``, ``cut``, ``fastcut``, ``pix2pix``,
  ``palette``, ``palette_latent``) x ``trainer.precision`` in {32-true, bf16-mixed, 16-mixed}, eager, and compiled
  (``model.compile=true``) for StarGAN v2 and pix2pix, each for a few steps on built-in data at realistic sizes
  (3x256x256 pixels, 4x32x32 latents) with :class:`lit_gans.bench.checks.StepChecks`: finite losses, weights
  changed, no host sync in the step (``torch.cuda.set_sync_debug_mode("error")``), channels_last in effect,
  fused optimizers, R1 in fp32 (equal to an fp32 recomputation within 1e-3).
* **ddp**: ``trainer=ddp trainer.devices=1`` (NCCL) starts and trains, in a subprocess.
* **speed**: :func:`lit_gans.bench.runner.run_benchmark` side by side with the official StarGAN v2 iteration
  (:mod:`lit_gans.bench.official`, fp32 as published and with bf16 autocast) at the same device and batch:
  official 256 px nets at batch 8 and 32, 4x32x32 latents at batch 32 and 128 (bf16-mixed, R1 every step),
  CycleGAN at 256 px batch 1 and 8; images/s, ms/step, peak memory, TFLOP/s and its share of the bf16 peak,
  the Lightning-vs-plain-loop overhead; compiled StarGAN v2: warm-up seconds and speed-up.

Every item runs in its own ``try`` with a time limit; one that fails is recorded and the rest still run. Items
that no longer fit the budget are skipped with that reason (the plan's order puts the rows behind the issue's
targets first). ``gpu_check.json`` and ``gpu_check.md`` are rewritten after every item, so an interrupted run
still leaves its report. Exit status: 0 when nothing failed, 1 otherwise. ``--resume gpu_check.json`` keeps the
finished items of an earlier report and runs the rest; ``--only SECTION,...`` (env, correctness, ddp, speed,
compile) and ``--models`` narrow a run.

``--dry-run`` runs the same plan on the CPU at tiny sizes (32-true and bf16-mixed; 16-mixed needs CUDA;
compilation is skipped, see ``--dry-run-compile``; one speed row per config, the official iteration at
batch 1): the test suite runs it to prove the script itself. Its figures mean nothing.

``--update-docs gpu_check.json`` writes a real (CUDA, not dry-run) report into docs/performance.md (between
its ``gpu-check`` markers) and copies it to docs/gpu_check.json.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import gc
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SECTIONS = ("env", "correctness", "ddp", "speed", "compile")
MODELS = ("stargan", "stargan_latent", "cyclegan", "cut", "fastcut", "pix2pix", "palette", "palette_latent")
PRECISIONS = ("bf16-mixed", "32-true", "16-mixed")
COMPILED_MODELS = ("stargan", "pix2pix")
DOC_BEGIN, DOC_END = "<!-- gpu-check:begin -->", "<!-- gpu-check:end -->"
CYCLEGAN_REFERENCE = ("pytorch/benchmark's CycleGAN (pytorch_CycleGAN_and_pix2pix) trains at about 392 ms/step at "
                      "batch 1 on an A100 (the common reference; not measured here)")

# ---------------------------------------------------------------------------------------------------- sizes
# Realistic sizes on the GPU: 256 px pixels, 4x32x32 latents, each model's default nets (StarGAN v2: its
# CPU-sized nets at 256 px here; the official 256 px nets run in the speed section).
GPU_MODELS: dict[str, list[str]] = {
    "stargan": ["model=stargan", "model.img_size=256", "data.per_domain=16", "loss.r1_interval=2"],
    "stargan_latent": ["model=stargan_latent", "data.per_domain=16", "loss.r1_interval=2"],
    "cyclegan": ["model=cyclegan", "data.img_size=256", "data.size=8"],
    "cut": ["model=cut", "data.img_size=256", "data.size=8"],
    "fastcut": ["model=fastcut", "data.img_size=256", "data.size=8"],
    "pix2pix": ["model=pix2pix", "data.img_size=256", "data.size=8"],
    "palette": ["model=palette", "data.img_size=256", "data.size=16"],
    "palette_latent": ["model=palette_latent", "data.img_size=32", "data.size=16"],
}
_TINY_STARGAN = ["model.img_size=16", "model.dim=8", "model.max_conv_dim=16", "model.mapping_dim=32",
                 "model.style_dim=8", "model.latent_dim=4", "data.per_domain=8", "data.val_per_domain=2"]
_TINY_PAIR = ["model.ngf=8", "model.ndf=8", "data.img_size=32", "data.size=8"]
_TINY_PALETTE = ["model.channels=16", "model.channel_mults=[1,2]", "model.num_res_blocks=1", "model.attn_res=[8]",
                 "model.num_head_channels=8", "model.norm_groups=8", "data.img_size=16", "data.size=8",
                 "data.batch_size=2", "model.scheduler.warmup_steps=2"]
DRY_MODELS: dict[str, list[str]] = {
    "stargan": ["model=stargan", *_TINY_STARGAN, "data.batch_size=4", "loss.r1_interval=2"],
    "stargan_latent": ["model=stargan_latent", *_TINY_STARGAN, "data.batch_size=4", "loss.r1_interval=2"],
    "cyclegan": ["model=cyclegan", *_TINY_PAIR, "model.n_blocks=1"],
    "cut": ["model=cut", *_TINY_PAIR, "model.n_blocks=1"],
    "fastcut": ["model=fastcut", *_TINY_PAIR, "model.n_blocks=1"],
    "pix2pix": ["model=pix2pix", *_TINY_PAIR],
    "palette": ["model=palette", *_TINY_PALETTE],
    "palette_latent": ["model=palette_latent", *_TINY_PALETTE],
}


@dataclass
class SpeedConfig:
    """One speed comparison: our overrides per batch size, and the official iteration's image size/channels."""

    key: str
    title: str
    overrides: Callable[[int], list[str]]
    batches: tuple[int, ...]
    official: tuple[int, int] | None = None  # (img_size, in_channels)
    precisions: tuple[str, ...] = ("bf16-mixed",)


def _stargan_speed(net: str, model: str, per_domain: Callable[[int], int]) -> Callable[[int], list[str]]:
    return lambda b: [f"model={model}", f"net={net}", "data.num_domains=2", f"data.per_domain={per_domain(b)}",
                      f"data.batch_size={b}", "loss.r1_interval=1"]


GPU_SPEED = [
    SpeedConfig("stargan_256", "StarGAN v2, official nets, 3x256x256", _stargan_speed(
        "stargan_official", "stargan", lambda b: 2 * b), (8, 32), official=(256, 3)),
    SpeedConfig("stargan_latent_32", "StarGAN v2, official nets at 32, 4x32x32 latents", _stargan_speed(
        "stargan_official_latent", "stargan_latent", lambda b: 2 * b), (32, 128), official=(32, 4)),
    SpeedConfig("cyclegan_256", "CycleGAN, ResNet-9 + 70x70 PatchGAN, 3x256x256",
                lambda b: ["model=cyclegan", "data.img_size=256", f"data.size={4 * b}", f"data.batch_size={b}"],
                (1, 8), precisions=("32-true", "bf16-mixed")),
]
DRY_SPEED = [
    SpeedConfig("stargan_256", "StarGAN v2 (dry run: tiny nets, 16 px)",
                lambda b: ["model=stargan", *_TINY_STARGAN, f"data.batch_size={b}", "loss.r1_interval=1"], (2, 4),
                official=(32, 3)),
    SpeedConfig("stargan_latent_32", "StarGAN v2 latents (dry run: tiny nets, 4x16x16)",
                lambda b: ["model=stargan_latent", *_TINY_STARGAN, f"data.batch_size={b}", "loss.r1_interval=1"],
                (4, 8), official=(32, 4)),
    SpeedConfig("cyclegan_256", "CycleGAN (dry run: tiny nets, 32 px)",
                lambda b: ["model=cyclegan", *_TINY_PAIR, "model.n_blocks=1", f"data.batch_size={b}"], (1, 2),
                precisions=("32-true", "bf16-mixed")),
]


# ---------------------------------------------------------------------------------------------------- plan
class ItemTimeout(Exception):
    """An item ran past its time limit (SIGALRM)."""


class Terminated(BaseException):
    """SIGTERM: stop, record, write the report."""


@dataclass
class Item:
    id: str
    section: str
    fn: Callable[[], dict[str, Any]]
    est_s: float  # expected seconds: the item is skipped when less than this is left
    timeout_s: float
    meta: dict[str, Any] = field(default_factory=dict)
    skip: str | None = None  # a reason to skip it up front


@dataclass
class Options:
    dry_run: bool = False
    budget_s: float = 480.0
    out_dir: str = "."
    report_name: str = "gpu_check.json"
    official_dir: str | None = None
    only: tuple[str, ...] = SECTIONS
    models: tuple[str, ...] = MODELS
    dry_run_compile: bool = False
    steps: int | None = None  # override the speed runs' timed steps
    done: dict[str, dict[str, Any]] = field(default_factory=dict)  # --resume: finished items of an earlier report


def _accelerator(opts: Options) -> list[str]:
    return ["trainer.accelerator=cpu", "trainer.devices=1"] if opts.dry_run else ["trainer.accelerator=gpu",
                                                                                  "trainer.devices=1"]


def _device(opts: Options):
    import torch

    return torch.device("cpu" if opts.dry_run else "cuda")


CUDA_ONLY = "16-mixed needs CUDA (Lightning's fp16 AMP with a GradScaler)"
DRY_ONE_ROW = "dry run: one row per speed config (the other rows take the same code path)"


def build_plan(opts: Options) -> list[Item]:
    """Every item, in phases so that a short budget skips the least: what the issue's figures and targets need
    first, then the other precisions, then compilation and the remaining speed rows (see the comments)."""
    from lit_gans.bench import official as off

    dry = opts.dry_run
    models = DRY_MODELS if dry else GPU_MODELS
    speed_cfgs = DRY_SPEED if dry else GPU_SPEED
    found = off.find_official(opts.official_dir)
    compile_skip = None
    if dry and not opts.dry_run_compile:
        compile_skip = ("torch.compile is skipped in --dry-run: compiling even the tiny StarGAN v2 takes about 2 min "
                        "on a 2-core CPU (inductor builds C++); --dry-run-compile includes it")

    def correctness(precision: str, compiled: bool = False) -> list[Item]:
        names = [n for n in opts.models if not compiled or n in COMPILED_MODELS]
        skip = CUDA_ONLY if dry and precision == "16-mixed" else (compile_skip if compiled else None)
        return [_correctness_item(opts, n, models[n], precision, compiled, skip) for n in names]

    def speed(cfg: SpeedConfig, b: int) -> list[Item]:
        # A dry run proves the code path with one row of ours per config (first batch size and precision) and
        # the official rows of the first batch size: the others add no new path.
        skip = DRY_ONE_ROW if dry and b != cfg.batches[0] else None
        out = [_speed_item(opts, cfg, b, precision, skip=skip or (DRY_ONE_ROW if dry and k else None))
               for k, precision in enumerate(cfg.precisions)]
        if cfg.official is not None:
            missing = None if found else f"official StarGAN v2 code not found; get it with: {off.HOW_TO_GET}"
            out += [_official_item(opts, cfg, b, dtype, found, skip or missing) for dtype in (None, "bfloat16")]
        return out

    first, latent, cyclegan = speed_cfgs
    items: list[Item] = [Item("env", "env", lambda: env_info(opts), 10, 120)]
    # Phase 1: every model in bf16, DDP, the speed comparisons behind the targets (256 px at both batch sizes,
    # latents at the first).
    items += correctness("bf16-mixed")
    items.append(Item("ddp/stargan", "ddp", lambda: ddp_check(opts), 40, 240,
                      meta={"trainer": "ddp_cpu (gloo)" if dry else "ddp (nccl)", "devices": 1}))
    items += speed(first, first.batches[0]) + speed(latent, latent.batches[0])
    for b in first.batches[1:]:
        items += speed(first, b)
    # Phase 2: the other precisions (cheap), then compiled StarGAN v2 and pix2pix in bf16.
    items += correctness("32-true") + correctness("16-mixed")
    items += correctness("bf16-mixed", compiled=True)
    # Phase 3: the rest of the speed rows, the compile speed-up, compiled in the other precisions.
    for b in latent.batches[1:]:
        items += speed(latent, b)
    for b in cyclegan.batches:
        items += speed(cyclegan, b)
    items.append(_speed_item(opts, first, first.batches[0], "bf16-mixed", compiled=True, skip=compile_skip))
    items += correctness("32-true", compiled=True) + correctness("16-mixed", compiled=True)
    items.append(_speed_item(opts, first, first.batches[0], "32-true", skip=DRY_ONE_ROW if dry else None))
    return [i for i in items if i.section in opts.only or i.section == "env"]


def _correctness_item(opts: Options, name: str, overrides: list[str], precision: str, compiled: bool,
                      skip: str | None) -> Item:
    mode = "compiled" if compiled else "eager"
    # The warm-up covers both step variants (R1 and not, loss.r1_interval=2) so that the checked steps see no
    # new shapes (cudnn autotuning) and, compiled, no recompilation.
    warmup = 4 if compiled else 2
    ovr = [*overrides, *_accelerator(opts), f"trainer.precision={precision}", f"model.compile={str(compiled).lower()}"]
    if opts.dry_run:
        ovr.append("model.channels_last=true")  # "auto" is off on the CPU: the dry run checks it anyway
    section = "compile" if compiled else "correctness"
    est = (150 if not opts.dry_run else 200) if compiled else 8
    return Item(f"correctness/{name}/{precision}/{mode}", section,
                lambda: correctness_check(ovr, warmup=warmup, steps=1), est, 300 if compiled else 120,
                meta={"model": name, "precision": precision, "compile": compiled, "overrides": ovr}, skip=skip)


def _speed_item(opts: Options, cfg: SpeedConfig, batch: int, precision: str, compiled: bool = False,
                skip: str | None = None) -> Item:
    dry = opts.dry_run
    steps = opts.steps or (1 if dry else 8)
    warmup = 1 if dry else 3
    ovr = [*cfg.overrides(batch), *_accelerator(opts), f"trainer.precision={precision}",
           f"model.compile={str(compiled).lower()}"]
    if dry:
        ovr.append("model.channels_last=true")
    big = (not dry) and batch >= 32
    est = 150 if compiled else (40 if big else 20)
    suffix = "/compiled" if compiled else ""
    return Item(f"speed/{cfg.key}/b{batch}/lit_gans/{precision}{suffix}", "compile" if compiled else "speed",
                lambda: speed_check(ovr, steps=steps, warmup=warmup, compare_plain=not compiled), est,
                300 if compiled else 180,
                meta={"config": cfg.key, "title": cfg.title, "batch_size": batch, "impl": "lit_gans",
                      "precision": precision, "compile": compiled, "overrides": ovr,
                      "command": f"python -m lit_gans.bench {' '.join(ovr)} --steps {steps} --warmup {warmup}"
                                 + ("" if compiled else " --compare-plain")}, skip=skip)


def _official_item(opts: Options, cfg: SpeedConfig, batch: int, dtype: str | None, path: str | None,
                   skip: str | None) -> Item:
    dry = opts.dry_run
    img_size, channels = cfg.official  # type: ignore[misc]
    # The official nets cannot be shrunk (widths follow img_size, 32 px at least): about 0.7 TFLOP per image
    # and iteration, minutes on a CPU. A dry run times one iteration of batch 1 and counts no FLOPs.
    steps, warmup = (1, 0) if dry else (opts.steps or 5, 2)
    batch = 1 if dry and skip != DRY_ONE_ROW else batch
    precision = "32-true" if dtype is None else f"{dtype} autocast"
    big = (not dry) and img_size == 256 and batch >= 32
    return Item(f"speed/{cfg.key}/b{batch}/official/{'fp32' if dtype is None else dtype}", "speed",
                lambda: official_check(path, _device(opts), batch, img_size, channels, dtype, steps, warmup,
                                       count_flops=not dry),
                40 if big else 20, 180,
                meta={"config": cfg.key, "batch_size": batch, "impl": "official",
                      "title": f"official nets, {channels}x{img_size}x{img_size} (dry run)" if dry else cfg.title,
                      "precision": precision, "compile": False, "img_size": img_size, "in_channels": channels,
                      "command": f"lit_gans.bench.official.time_official(batch_size={batch}, img_size={img_size}, "
                                 f"in_channels={channels}, autocast_dtype={dtype and 'torch.' + dtype}, "
                                 f"steps={steps}, warmup={warmup})"},
                skip=skip)


# ---------------------------------------------------------------------------------------------------- checks
def _verdict(checks: dict[str, dict[str, Any]]) -> str:
    return "passed" if all(c.get("ok") is not False for c in checks.values()) else "failed"


_BENCH_KEYS = ("device", "precision", "batch_size", "steps", "s_per_step", "img_per_s", "peak_memory_gb",
               "outside_step_share", "compile_s", "tflop_per_step", "achieved_tflops", "plain",
               "lightning_overhead_pct", "torch", "cuda")


def _is_sync_error(exc: BaseException) -> bool:
    from lit_gans.bench.checks import HostSyncError

    return isinstance(exc, HostSyncError) or "synchronizing CUDA operation" in str(exc)


def correctness_check(overrides: list[str], warmup: int = 1, steps: int = 1,
                      sync_mode: str = "error") -> dict[str, Any]:
    """A few Lightning steps of one model with every :class:`StepChecks` check; ``status`` passed/failed.

    A run stopped by a host sync (``sync_mode="error"``) or by the NaN/Inf guard fails that check; any other
    exception propagates (an error of the item)."""
    import torch

    from lit_gans.bench.checks import StepChecks
    from lit_gans.bench.runner import run_benchmark
    from lit_gans.errors import TrainingError

    if any(o == "model.compile=true" for o in overrides):
        torch.compiler.reset()  # fresh dynamo caches: earlier models' graphs do not count against its limits
    checks = StepChecks(warmup=warmup, sync_mode=sync_mode)
    with tempfile.TemporaryDirectory(prefix="gpu_check_") as tmp:
        try:
            bench = run_benchmark(overrides, steps=steps, warmup=warmup, callbacks=[checks], count_flops=False,
                                  output_dir=tmp)
        except Exception as exc:
            if _is_sync_error(exc):
                check = "no_host_sync"
            elif isinstance(exc, TrainingError) and "NaN/Inf" in str(exc):
                check = "finite"
            else:
                raise
            msg = str(exc).strip().splitlines()[0]
            return {"status": "failed", "checks": {check: {"ok": False, "error": msg}},
                    "error": f"{type(exc).__name__}: {msg}"}
    return {"status": _verdict(checks.results), "checks": checks.results,
            "bench": {k: bench.get(k) for k in _BENCH_KEYS if k in bench}}


def speed_check(overrides: list[str], steps: int, warmup: int, compare_plain: bool) -> dict[str, Any]:
    """:func:`run_benchmark` with the cheap checks (host syncs counted, not raised, so figures always come)."""
    import torch

    from lit_gans.bench.checks import StepChecks
    from lit_gans.bench.runner import run_benchmark

    if any(o == "model.compile=true" for o in overrides):
        torch.compiler.reset()
    checks = StepChecks(warmup=warmup, sync_mode="count", full=False)
    with tempfile.TemporaryDirectory(prefix="gpu_check_") as tmp:
        bench = run_benchmark(overrides, steps=steps, warmup=warmup, compare_plain=compare_plain,
                              callbacks=[checks], output_dir=tmp)
    return {"status": _verdict(checks.results), "checks": checks.results,
            "bench": {k: bench.get(k) for k in _BENCH_KEYS if k in bench}}


def official_check(path: str | None, device, batch: int, img_size: int, channels: int, dtype: str | None,
                   steps: int, warmup: int, count_flops: bool = True) -> dict[str, Any]:
    import torch

    from lit_gans.bench.official import time_official

    result = time_official(path, device, batch, img_size=img_size, in_channels=channels,
                           autocast_dtype=getattr(torch, dtype) if dtype else None, steps=steps, warmup=warmup,
                           count_flops=count_flops)
    return {"status": "measured", "bench": result}


def env_info(opts: Options) -> dict[str, Any]:
    import lightning
    import torch

    from lit_gans.bench.checks import measure_matmul_peak

    device = _device(opts)
    info: dict[str, Any] = {"python": platform.python_version(), "torch": torch.__version__,
                            "lightning": lightning.__version__, "cuda": torch.version.cuda,
                            "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
                            "cpu_count": os.cpu_count(), "platform": platform.platform()}
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError("no CUDA device: run on a GPU machine, or pass --dry-run for the CPU rehearsal")
        props = torch.cuda.get_device_properties(device)
        info.update(gpu=torch.cuda.get_device_name(device), capability=f"{props.major}.{props.minor}",
                    gpu_memory_gb=props.total_memory / 2**30, multiprocessors=props.multi_processor_count,
                    bf16_supported=torch.cuda.is_bf16_supported(), driver=_nvidia_driver())
    else:
        info["gpu"] = None
    peak = measure_matmul_peak(device, n=512 if opts.dry_run else 8192, iters=3 if opts.dry_run else 10)
    info["bf16_matmul_peak"] = peak
    return {"status": "measured", "env": info}


def _nvidia_driver() -> str | None:
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=20)
        return out.stdout.strip().splitlines()[0] if out.returncode == 0 and out.stdout.strip() else None
    except Exception:
        return None


# ---------------------------------------------------------------------------------------------------- DDP
def ddp_overrides(opts: Options) -> list[str]:
    if opts.dry_run:
        return ["model=stargan", *_TINY_STARGAN, "data.batch_size=4", "trainer=ddp_cpu", "trainer.devices=1",
                "trainer.max_epochs=1", "trainer.limit_train_batches=4", "loss.r1_interval=2",
                "trainer.precision=bf16-mixed", "model.channels_last=true"]
    return ["model=stargan", "data.per_domain=16", "trainer=ddp", "trainer.devices=1", "trainer.max_epochs=1",
            "trainer.limit_train_batches=4", "loss.r1_interval=2", "trainer.precision=bf16-mixed"]


def ddp_check(opts: Options) -> dict[str, Any]:
    """``trainer=ddp`` (``ddp_cpu`` in a dry run) with one device, in a subprocess: it must initialise the
    process group (NCCL on CUDA), wrap the model in DistributedDataParallel and train."""
    with tempfile.TemporaryDirectory(prefix="gpu_check_ddp_") as tmp:
        out = os.path.join(tmp, "ddp.json")
        cmd = [sys.executable, "-m", "lit_gans.bench.gpu_check", "--ddp-child", out, "--", *ddp_overrides(opts)]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")]))}
        proc = subprocess.run(cmd, cwd=tmp, env=env, capture_output=True, text=True, timeout=220)
        if not os.path.exists(out):
            tail = (proc.stdout + proc.stderr).strip().splitlines()[-15:]
            return {"status": "failed", "error": f"the DDP run exited with {proc.returncode}", "log_tail": tail,
                    "command": " ".join(cmd[1:])}
        with open(out) as f:
            child = json.load(f)
    want_backend = "gloo" if opts.dry_run else "nccl"
    probe = child["probe"]
    checks = dict(child["checks"])
    checks["ddp_started"] = {"ok": probe.get("initialized") is True and probe.get("backend") == want_backend
                             and probe.get("world_size") == 1 and probe.get("wrapped") == "DistributedDataParallel",
                             **probe, "expected_backend": want_backend}
    checks["trained"] = {"ok": child["global_step"] > 0, "global_step": child["global_step"]}
    checks.pop("r1_fp32", None)  # covered by the correctness runs; under DDP the discriminator is wrapped
    return {"status": _verdict(checks), "checks": checks, "command": "python " + " ".join(cmd[1:])}


def ddp_child(out: str, overrides: list[str]) -> int:
    """Run in the subprocess of :func:`ddp_check`: compose, build, fit, write what it saw to ``out``."""
    import torch
    from lightning.pytorch.callbacks import Callback

    from lit_gans.bench.checks import StepChecks
    from lit_gans.bench.runner import compose_config
    from lit_gans.train import build

    class Probe(Callback):
        seen: dict[str, Any] = {}

        def on_train_start(self, trainer, pl_module):
            dist = torch.distributed
            init = dist.is_available() and dist.is_initialized()
            self.seen = {"initialized": init, "backend": dist.get_backend() if init else None,
                         "world_size": dist.get_world_size() if init else None,
                         "strategy": type(trainer.strategy).__name__,
                         "wrapped": type(trainer.strategy.model).__name__, "device": str(pl_module.device)}

    cfg = compose_config(overrides, os.getcwd())
    datamodule, model, trainer = build(cfg)
    probe, checks = Probe(), StepChecks(warmup=2, sync_mode="count")
    trainer.callbacks.extend([probe, checks])
    trainer.fit(model, datamodule=datamodule)
    with open(out, "w") as f:
        json.dump({"probe": probe.seen, "checks": checks.results, "global_step": int(trainer.global_step)}, f,
                  default=str)
    return 0


# ---------------------------------------------------------------------------------------------------- running
@contextlib.contextmanager
def _time_limit(seconds: float) -> Iterator[None]:
    def expire(signum, frame):
        raise ItemTimeout(f"ran past its {seconds:.0f} s limit")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, max(1.0, seconds))
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _cleanup() -> None:
    gc.collect()
    try:
        import torch

        if torch.cuda.is_available() and torch.cuda.is_initialized():
            torch.cuda.synchronize()
            torch.cuda.empty_cache()
    except Exception:
        pass


def run_plan(items: list[Item], opts: Options, report: dict[str, Any], write: Callable[[dict[str, Any]], None],
             started: float | None = None) -> dict[str, Any]:
    """Run ``items`` in order within ``opts.budget_s`` (counted from ``started``), each in its own ``try`` and
    time limit, writing the report after each one. Returns the report."""
    started = time.monotonic() if started is None else started
    results = report.setdefault("items", [])
    terminated = False

    def on_term(signum, frame):
        raise Terminated(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, on_term)
    try:
        for item in items:
            entry: dict[str, Any] = {"id": item.id, "section": item.section, **item.meta}
            left = opts.budget_s - (time.monotonic() - started)
            if item.id in opts.done and item.id != "env":
                entry = {**opts.done[item.id], "resumed": True}
            elif terminated:
                entry.update(status="skipped", reason="the run was terminated")
            elif item.skip:
                entry.update(status="skipped", reason=item.skip)
            elif left < item.est_s:
                entry.update(status="skipped", reason=f"time budget: {max(left, 0):.0f} s left of {opts.budget_s:.0f} s, "
                                                      f"needs about {item.est_s:.0f} s (rerun with --resume)")
            else:
                t0, cpu0 = time.monotonic(), time.process_time()
                print(f"[gpu_check] {item.id} ...", flush=True)
                try:
                    with _time_limit(min(item.timeout_s, left)):
                        entry.update(item.fn())
                except ItemTimeout as exc:
                    if left < item.timeout_s:  # the budget ran out, not the item's own limit
                        entry.update(status="skipped", reason=f"time budget ran out during this item ({left:.0f} s "
                                                              f"were left; rerun with --resume)")
                    else:
                        entry.update(status="timeout", error=str(exc))
                except Terminated as exc:
                    terminated = True
                    entry.update(status="interrupted", error=f"terminated ({exc})")
                except (KeyboardInterrupt, SystemExit) as exc:
                    terminated = True
                    entry.update(status="interrupted", error=f"{type(exc).__name__}: {exc}")
                except Exception as exc:
                    entry.update(status="error", error=f"{type(exc).__name__}: {str(exc).strip()[:2000]}",
                                 traceback=traceback.format_exc().strip().splitlines()[-12:])
                entry["elapsed_s"] = round(time.monotonic() - t0, 2)
                entry["cpu_s"] = round(time.process_time() - cpu0, 2)  # this process's CPU time (not children's)
                print(f"[gpu_check] {item.id}: {entry['status']} ({entry['elapsed_s']:.1f} s)"
                      + (f" {entry.get('error') or entry.get('reason') or ''}"
                         if entry["status"] not in ("passed", "measured") else ""), flush=True)
                _cleanup()
            results.append(entry)
            report["meta"]["elapsed_s"] = round(time.monotonic() - started, 1)
            report["summary"] = summarize(report)
            write(report)
    finally:
        signal.signal(signal.SIGTERM, previous)
    report["meta"]["finished"] = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    report["meta"]["terminated"] = terminated
    report["summary"] = summarize(report)
    write(report)
    return report


# ---------------------------------------------------------------------------------------------------- summary
def _find(report: dict[str, Any], item_id: str) -> dict[str, Any] | None:
    return next((e for e in report.get("items", []) if e["id"] == item_id), None)


def _img_per_s(entry: dict[str, Any] | None) -> float | None:
    if entry is None or entry.get("status") in ("skipped", "error", "timeout", "interrupted"):
        return None
    return (entry.get("bench") or {}).get("img_per_s")


def summarize(report: dict[str, Any]) -> dict[str, Any]:
    """Counts by status, and the performance targets of docs/performance.md (met: true/false, or null when a figure is missing)."""
    items = report.get("items", [])
    counts: dict[str, int] = {}
    for e in items:
        counts[e["status"]] = counts.get(e["status"], 0) + 1
    env = next((e.get("env") for e in items if e["id"] == "env" and "env" in e), None) or {}
    peak = (env.get("bf16_matmul_peak") or {}).get("tflops")
    speed = [e for e in items if e["section"] in ("speed", "compile") and e.get("impl") == "lit_gans"]

    def ours(key: str, index: int, precision: str = "bf16-mixed", compiled: bool = False) -> dict[str, Any] | None:
        rows = [e for e in speed if e.get("config") == key and e.get("precision") == precision
                and bool(e.get("compile")) == compiled]
        batches = sorted({e["batch_size"] for e in rows})
        if len(batches) <= index:
            return None
        return next(e for e in rows if e["batch_size"] == batches[index])

    def official(key: str, batch: int, which: str = "fp32") -> dict[str, Any] | None:
        return _find(report, f"speed/{key}/b{batch}/official/{which}")

    def ratio(a: float | None, b: float | None) -> float | None:
        return a / b if a is not None and b else None

    targets = []
    for key, index, label, need, goal in (("stargan_256", 0, "StarGAN v2 official 256 px, bf16, first batch", 3.0, 5.0),
                                          ("stargan_latent_32", 0, "StarGAN v2 4x32x32 latents, first batch", 3.0, None)):
        row = ours(key, index)
        b = row["batch_size"] if row else None
        value = ratio(_img_per_s(row), _img_per_s(official(key, b))) if row else None
        targets.append({"target": f"{label} (batch {b}): img/s vs the official code (fp32, as published)",
                        "value": value, "unit": "x", "threshold": need, "goal": goal,
                        "met": None if value is None else value >= need})
    row = ours("stargan_256", 1)
    achieved = (row.get("bench") or {}).get("achieved_tflops") if row and _img_per_s(row) else None
    share = achieved / peak if achieved is not None and peak else None
    targets.append({"target": f"StarGAN v2 official 256 px, batch {row['batch_size'] if row else '?'}: share of the "
                              "measured bf16 matmul peak", "value": share, "unit": "share", "threshold": 0.25,
                    "goal": None, "met": None if share is None else share >= 0.25})
    overheads = [(e["id"], (e.get("bench") or {}).get("lightning_overhead_pct")) for e in speed
                 if (e.get("bench") or {}).get("lightning_overhead_pct") is not None]
    worst = max(overheads, key=lambda t: t[1]) if overheads else None
    targets.append({"target": "Lightning overhead over the plain loop (worst speed row)",
                    "value": worst[1] if worst else None, "unit": "%", "threshold": 3.0, "goal": None,
                    "met": None if worst is None else worst[1] <= 3.0, "row": worst[0] if worst else None})
    eager, compiled = ours("stargan_256", 0), ours("stargan_256", 0, compiled=True)
    speedup = ratio(_img_per_s(compiled), _img_per_s(eager))
    if report.get("meta", {}).get("dry_run"):
        for t in targets:  # tiny nets on a CPU say nothing about these
            t.update(met=None, note="dry run: not meaningful")
    failed = [e["id"] for e in items if e["status"] in ("failed", "error", "timeout", "interrupted")]
    return {"counts": counts, "failed": failed, "targets": targets, "compile_speedup": speedup,
            "ok": not failed}


# ---------------------------------------------------------------------------------------------------- markdown
def _fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        if 0 < abs(value) < 10 ** -digits * 5:  # small figures (tiny dry-run rates) keep 3 significant digits
            return f"{value:.3g}"
        return f"{value:,.{digits}f}"
    return str(value)


def _mark(check: dict[str, Any] | None) -> str:
    if not check:
        return "—"
    return {True: "ok", False: "**FAIL**", None: "n/a"}[check.get("ok")]


def render_markdown(report: dict[str, Any]) -> str:
    meta, items = report["meta"], report.get("items", [])
    env = next((e.get("env") for e in items if e["id"] == "env" and "env" in e), None) or {}
    peak = (env.get("bf16_matmul_peak") or {}).get("tflops")
    out = [f"### GPU check{' (DRY RUN on the CPU: tiny sizes, no GPU figures)' if meta.get('dry_run') else ''}", ""]
    out.append(f"- device: **{env.get('gpu') or 'cpu'}**"
               + (f" (compute capability {env.get('capability')}, {_fmt(env.get('gpu_memory_gb'))} GiB, "
                  f"driver {env.get('driver')})" if env.get("gpu") else ""))
    out.append(f"- torch {env.get('torch')}, CUDA {env.get('cuda')}, cuDNN {env.get('cudnn')}, Lightning "
               f"{env.get('lightning')}, Python {env.get('python')}")
    if peak:
        out.append(f"- measured bf16 matmul peak: {_fmt(peak)} TFLOP/s "
                   f"({env['bf16_matmul_peak']['n']}³ products)")
    out.append(f"- command: `{meta.get('command')}`; started {meta.get('started')}, {_fmt(meta.get('elapsed_s'))} s "
               f"of a {_fmt(meta.get('budget_s'), 0)} s budget" + ("; **terminated early**" if meta.get("terminated") else ""))
    peer = meta.get("official_peer") or {}
    if peer:
        out.append(f"- official peer: {peer.get('repository')} ({'in ' + str(peer.get('dir')) if peer.get('present') else 'not fetched: make official'})")
    summary = report.get("summary") or summarize(report)
    counts = ", ".join(f"{n} {k}" for k, n in sorted(summary["counts"].items()))
    out += [f"- items: {counts}", ""]

    corr = [e for e in items if e["id"].startswith("correctness/")]
    if corr:
        out += ["#### Correctness (a few steps each on built-in data)", "",
                "| model | precision | compile | status | finite | weights changed | no host sync | channels_last "
                "| fused optim | R1 fp32 | ms/step | notes |",
                "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
        for e in corr:
            c = e.get("checks") or {}
            bench = e.get("bench") or {}
            note = "see Skipped" if e["status"] == "skipped" else (e.get("error") or "")
            r1 = c.get("r1_fp32") or {}
            if r1.get("ok") is not None and "max_rel_diff" in r1:
                note = (note + "; " if note else "") + f"R1 rel. diff {r1['max_rel_diff']:.1e}"
            for name in ("no_host_sync", "finite"):
                if (c.get(name) or {}).get("error"):
                    note = c[name]["error"]
            ms = bench.get("s_per_step")
            out.append(f"| `{e.get('model')}` | {e.get('precision')} | {'yes' if e.get('compile') else 'no'} | "
                       f"{e['status']} | {_mark(c.get('finite'))} | {_mark(c.get('weights_changed'))} | "
                       f"{_mark(c.get('no_host_sync'))} | {_mark(c.get('channels_last'))} | "
                       f"{_mark(c.get('fused_optimizer'))} | {_mark(c.get('r1_fp32'))} | "
                       f"{_fmt(ms * 1e3 if ms else None)} | {_cell(note)} |")
        out.append("")

    ddp = [e for e in items if e["section"] == "ddp"]
    for e in ddp:
        started = (e.get("checks") or {}).get("ddp_started") or {}
        out += ["#### DDP with one device", "",
                f"- `{e.get('trainer')}`: **{e['status']}**; backend {started.get('backend')}, world size "
                f"{started.get('world_size')}, strategy {started.get('strategy')}, model wrapped in "
                f"{started.get('wrapped')}; trained {((e.get('checks') or {}).get('trained') or {}).get('global_step')} "
                f"optimizer steps; host syncs in the step: {((e.get('checks') or {}).get('no_host_sync') or {}).get('count')}"
                + (f"; {_cell(e.get('reason') or e.get('error'))}" if e.get("reason") or e.get("error") else ""), ""]

    speed = [e for e in items if e["id"].startswith("speed/") and e["status"] != "skipped"]  # skips: listed below
    if speed:
        out += ["#### Speed (same device, same batches on the device)", "",
                "| config | batch | implementation | precision | img/s | ms/step | peak GiB | TFLOP/step | TFLOP/s "
                "| % of bf16 peak | vs plain loop | compile warm-up s | status / notes |",
                "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
        for e in speed:
            b = e.get("bench") or {}
            tf = b.get("achieved_tflops")
            share = f"{100 * tf / peak:.1f} %" if tf and peak else "—"
            over = b.get("lightning_overhead_pct")
            impl = e.get("impl") + (" (compiled)" if e.get("compile") else "")
            note = e["status"] if e["status"] in ("measured", "passed") else f"{e['status']}: {e.get('reason') or e.get('error')}"
            syncs = ((e.get("checks") or {}).get("no_host_sync") or {}).get("count")
            if syncs:
                note += f"; {syncs} host syncs in the timed steps"
            out.append(f"| {e.get('title')} | {e.get('batch_size')} | {impl} | {e.get('precision')} | "
                       f"{_fmt(b.get('img_per_s'))} | {_fmt(b['s_per_step'] * 1e3 if b.get('s_per_step') else None)} | "
                       f"{_fmt(b.get('peak_memory_gb'), 2)} | {_fmt(b.get('tflop_per_step'), 3)} | {_fmt(tf, 2)} | "
                       f"{share} | {_fmt(over, 1) + ' %' if over is not None else '—'} | {_fmt(b.get('compile_s'))} | "
                       f"{_cell(note)} |")
        out.append("")
        out += ["#### Against the official StarGAN v2 iteration", "",
                "| config | batch | official fp32 img/s | official bf16-autocast img/s | lit_gans bf16-mixed img/s "
                "| × official fp32 | × official bf16 |", "| --- | --- | --- | --- | --- | --- | --- |"]
        keys = sorted({(e.get("config"), e.get("title"), e.get("batch_size")) for e in speed if e.get("impl") == "official"},
                      key=lambda t: (t[0], t[2]))
        for key, title, batch in keys:
            ours = _img_per_s(_find(report, f"speed/{key}/b{batch}/lit_gans/bf16-mixed"))
            o32 = _img_per_s(_find(report, f"speed/{key}/b{batch}/official/fp32"))
            o16 = _img_per_s(_find(report, f"speed/{key}/b{batch}/official/bfloat16"))
            out.append(f"| {title} | {batch} | {_fmt(o32)} | {_fmt(o16)} | {_fmt(ours)} | "
                       f"{_fmt(ours / o32 if ours and o32 else None, 2)} | {_fmt(ours / o16 if ours and o16 else None, 2)} |")
        if not keys:
            out.append("| — | — | not run | not run | — | — | — |")
        out += ["", f"CycleGAN reference: {CYCLEGAN_REFERENCE}.", ""]
        if summary.get("compile_speedup"):
            out += [f"Compiled StarGAN v2 (256 px, first batch) runs {summary['compile_speedup']:.2f}× the eager "
                    "img/s.", ""]

    commands = [e for e in speed if e.get("command")]
    if commands:
        out += ["<details><summary>Command lines of the speed rows</summary>", ""]
        out += [f"- `{e['command']}`" for e in commands]
        out += ["", "</details>", ""]

    out += ["#### Targets (benchmarks, not pass/fail of the script)", "",
            "| target | measured | needed | met |", "| --- | --- | --- | --- |"]
    for t in summary["targets"]:
        v = t["value"]
        shown = "—" if v is None else (f"{100 * v:.1f} %" if t["unit"] == "share" else f"{v:.2f}{' ' if t['unit'] == '%' else ''}{t['unit']}")
        need = f"≥ {100 * t['threshold']:.0f} %" if t["unit"] == "share" else (
            f"≤ {t['threshold']:.0f} %" if t["unit"] == "%" else f"≥ {t['threshold']:.0f}×" + (f" (goal {t['goal']:.0f}×)" if t.get("goal") else ""))
        met = t.get("note") or {True: "yes", False: "**no**", None: "not measured"}[t["met"]]
        out.append(f"| {t['target']} | {shown} | {need} | {met} |")
    out.append("")
    skipped = [e for e in items if e["status"] == "skipped"]
    if skipped:
        out += ["#### Skipped", ""]
        reasons: dict[str, list[str]] = {}
        for e in skipped:
            reasons.setdefault(e.get("reason", ""), []).append(e["id"])
        for reason, ids in reasons.items():
            out.append(f"- {reason}: {', '.join(f'`{i}`' for i in ids)}")
        out.append("")
    return "\n".join(out)


def _cell(text: Any) -> str:
    return str(text or "").replace("|", "\\|").replace("\n", " ")[:300]


# ---------------------------------------------------------------------------------------------------- files
def _writer(json_path: str) -> Callable[[dict[str, Any]], None]:
    """Writes the report to ``json_path`` and its markdown beside it (same name, ``.md``)."""
    os.makedirs(os.path.dirname(os.path.abspath(json_path)), exist_ok=True)
    md_path = os.path.splitext(json_path)[0] + ".md"

    def write(report: dict[str, Any]) -> None:
        for path, text in ((json_path, json.dumps(report, indent=2, default=str)), (md_path, render_markdown(report))):
            with open(path + ".tmp", "w") as f:
                f.write(text + "\n")
            os.replace(path + ".tmp", path)

    return write


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                             timeout=10)
        return out.stdout.strip() or None
    except Exception:
        return None


def update_docs(report_path: str, docs: str = os.path.join(ROOT, "docs", "performance.md")) -> str:
    """Write a real report's markdown between the ``gpu-check`` markers of ``docs`` and copy the JSON next to
    it as ``gpu_check.json``. Refuses dry runs and CPU reports: the GPU tables come only from a GPU."""
    from lit_gans.errors import ConfigError

    with open(report_path) as f:
        report = json.load(f)
    env = next((e.get("env") for e in report.get("items", []) if e["id"] == "env" and "env" in e), None) or {}
    if report["meta"].get("dry_run") or not env.get("gpu"):
        raise ConfigError(f"{report_path} is a dry run or was made without a GPU: docs/performance.md takes GPU "
                          "reports only (run scripts/gpu_check.sh on a GPU machine)")
    with open(docs) as f:
        text = f.read()
    if DOC_BEGIN not in text or DOC_END not in text:
        raise ConfigError(f"{docs} has no '{DOC_BEGIN}' ... '{DOC_END}' block to write the report into")
    head, rest = text.split(DOC_BEGIN, 1)
    _, tail = rest.split(DOC_END, 1)
    block = render_markdown(report).replace("### GPU check", "### GPU check report", 1)
    with open(docs, "w") as f:
        f.write(f"{head}{DOC_BEGIN}\n{block}\n{DOC_END}{tail}")
    copy = os.path.join(os.path.dirname(docs), "gpu_check.json")
    with open(copy, "w") as f:
        json.dump(report, f, indent=2)
        f.write("\n")
    return copy


# ---------------------------------------------------------------------------------------------------- CLI
def _official_peer(opts: Options) -> dict[str, Any]:
    """The official StarGAN v2 training code the speed section times beside lit_gans, and whether it is here."""
    from lit_gans.bench import official as off

    return {"repository": off.REPOSITORY, "dir": opts.official_dir or off.DEFAULT_DIR,
            "present": off.find_official(opts.official_dir) is not None}


def run(opts: Options, argv: list[str] | None = None, resumed_from: str | None = None) -> dict[str, Any]:
    started = time.monotonic()
    report: dict[str, Any] = {"meta": {
        "dry_run": opts.dry_run, "budget_s": opts.budget_s, "command": "python -m lit_gans.bench.gpu_check "
        + " ".join(argv or []), "started": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "git_commit": _git_commit(), "sections": list(opts.only), "resumed_from": resumed_from,
        "resumed_items": len(opts.done), "official_peer": _official_peer(opts)}, "items": []}
    import torch

    from lit_gans.errors import ConfigError

    if opts.dry_run:
        torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    elif not torch.cuda.is_available():
        raise ConfigError("no CUDA device is visible to torch here: run this on a GPU machine, or pass --dry-run "
                          "for the CPU rehearsal")
    return run_plan(build_plan(opts), opts, report, _writer(os.path.join(opts.out_dir, opts.report_name)), started)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--ddp-child"]:
        rest = argv[2:]
        return ddp_child(argv[1], rest[1:] if rest[:1] == ["--"] else rest)
    parser = argparse.ArgumentParser(prog="python -m lit_gans.bench.gpu_check", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dry-run", action="store_true", help="the same plan on the CPU at tiny sizes")
    parser.add_argument("--budget-s", type=float, default=480.0, help="overall time budget in seconds (default 480)")
    parser.add_argument("--out-dir", default=".", help="where gpu_check.json and gpu_check.md go (default: .)")
    parser.add_argument("--out", metavar="FILE.json", help="the report's path instead (its markdown: FILE.md)")
    parser.add_argument("--official-dir", default=None, help="the official StarGAN v2 code (default third_party/stargan-v2)")
    parser.add_argument("--only", default=",".join(SECTIONS), help=f"sections to run, of {','.join(SECTIONS)}")
    parser.add_argument("--models", default=",".join(MODELS), help="models of the correctness matrix")
    parser.add_argument("--steps", type=int, default=None, help="timed steps of the speed runs (default 8; 1 dry)")
    parser.add_argument("--dry-run-compile", action="store_true", help="include torch.compile in --dry-run (slow)")
    parser.add_argument("--resume", metavar="REPORT", help="keep the finished items (passed, failed, measured) of "
                        "an earlier gpu_check.json and run only the others (skipped, errors, timeouts)")
    parser.add_argument("--update-docs", metavar="REPORT", help="write REPORT (gpu_check.json of a GPU run) into "
                        "docs/performance.md and docs/gpu_check.json, then exit")
    args = parser.parse_args(argv)
    from lit_gans.cli import user_errors
    from lit_gans.errors import ConfigError

    with user_errors():
        if args.update_docs:
            print(f"docs/performance.md updated; report copied to {update_docs(args.update_docs)}")
            return 0
        only = tuple(s for s in args.only.split(",") if s)
        models = tuple(m for m in args.models.split(",") if m)
        for name, given, allowed in (("--only", only, SECTIONS), ("--models", models, MODELS)):
            unknown = sorted(set(given) - set(allowed))
            if unknown:
                raise ConfigError(f"{name} has unknown value(s) {', '.join(unknown)}: choose from {', '.join(allowed)}")
        done = {}
        if args.resume:
            try:
                with open(args.resume) as f:
                    previous = json.load(f)
            except (OSError, ValueError) as exc:
                raise ConfigError(f"--resume {args.resume}: cannot read the report ({exc}); pass a gpu_check.json") from None
            if bool(previous.get("meta", {}).get("dry_run")) != args.dry_run:
                raise ConfigError(f"--resume {args.resume}: one of that report and this run is a dry run and the "
                                  "other is not: they cannot be merged")
            done = {e["id"]: e for e in previous.get("items", [])
                    if e.get("status") in ("passed", "failed", "measured") and e["id"] != "env"}  # env: measured anew
        out_dir, report_name = args.out_dir, "gpu_check.json"
        if args.out:
            if not args.out.endswith(".json") or os.path.isdir(args.out):
                raise ConfigError(f"--out {args.out}: pass the report's file name, ending in .json (or --out-dir DIR)")
            out_dir, report_name = os.path.dirname(args.out) or ".", os.path.basename(args.out)
        opts = Options(dry_run=args.dry_run, budget_s=args.budget_s, out_dir=out_dir, report_name=report_name,
                       official_dir=args.official_dir, only=only, models=models,
                       dry_run_compile=args.dry_run_compile, steps=args.steps, done=done)
        report = run(opts, argv, resumed_from=args.resume)
    print(render_markdown(report))
    json_path = os.path.join(opts.out_dir, opts.report_name)
    print(f"[gpu_check] report: {json_path} and {os.path.splitext(json_path)[0]}.md")
    return 0 if report["summary"]["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())

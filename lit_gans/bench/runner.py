"""The benchmark's machinery (see ``python -m lit_gans.bench --help``)."""

from __future__ import annotations

import contextlib
import copy
import gc
import os
import resource
import time
from collections.abc import Iterator
from typing import Any

import lightning as L
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from lightning.pytorch.callbacks import Callback
from omegaconf import DictConfig, open_dict
from torch.utils.flop_counter import FlopCounterMode

CONF = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "conf")
# The bench measures training: no checkpoints, grids, progress bar or validation.
BENCH_OVERRIDES = ["callbacks.model_checkpoint=null", "callbacks.image_grid=null", "callbacks.progress_bar=null",
                   "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false",
                   "trainer.limit_val_batches=0", "trainer.num_sanity_val_steps=0", "logger=[]"]


def compose_config(overrides: list[str], output_dir: str) -> DictConfig:
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        cfg = compose(config_name="train", overrides=BENCH_OVERRIDES + list(overrides), return_hydra_config=True)
    with open_dict(cfg):
        cfg.hydra.runtime.output_dir = output_dir
        cfg.hydra.runtime.cwd = os.getcwd()
        cfg.hydra.job.num = 0
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        del cfg["hydra"]
    return cfg


class _GlobalOnly:
    """Stands in for FlopCounterMode's module tracker: everything is counted under "Global"."""

    parents = {"Global"}

    def __enter__(self):
        return self

    def __exit__(self, *args):
        return None


class StepFlopCounter(FlopCounterMode):
    """torch's FLOP counter (its dispatch mode and FLOP formulas) without the per-module breakdown: the module
    tracker's backward hooks fail inside ``torch.autograd.grad`` (R1's gradient w.r.t. the input), and only
    the step's total is reported here."""

    def __init__(self):
        super().__init__(display=False)
        self.mod_tracker = _GlobalOnly()


class DeviceBatches:
    """``length`` batches cycling through a few distinct ones that already live on the device."""

    def __init__(self, batches: list[dict[str, torch.Tensor]], length: int):
        self.batches, self.length = batches, length

    def __len__(self) -> int:
        return self.length

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        for i in range(self.length):
            yield self.batches[i % len(self.batches)]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class StepTimer(Callback):
    """Wall time of the timed window and the part of it spent inside ``training_step`` calls (the rest is
    data fetching and Lightning's per-batch work). Synchronises the device only at the window's ends.

    The window runs from the start of batch ``warmup`` to the start of batch ``warmup + steps`` (one more
    batch is run), so it holds every per-batch cost of exactly ``steps`` batches and none of the epoch's end
    (the epoch-end checkpoint, validation)."""

    def __init__(self, warmup: int, steps: int):
        self.warmup, self.steps = warmup, steps
        self.start = self.end = self.warmup_end = 0.0
        self.fit_start = 0.0
        self.in_step = 0.0
        self._t = 0.0

    def on_train_start(self, trainer, pl_module):
        self.fit_start = time.perf_counter()

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if batch_idx in (self.warmup, self.warmup + self.steps):
            _sync(pl_module.device)
            if batch_idx == self.warmup:
                self.start = self.warmup_end = time.perf_counter()
            else:
                self.end = time.perf_counter()
        self._t = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if self.warmup <= batch_idx < self.warmup + self.steps:
            self.in_step += time.perf_counter() - self._t


class _Epoch0:
    current_epoch = 0


_EPOCH0 = _Epoch0()


def _optimizers_and_step_schedulers(config: Any) -> tuple[list[torch.optim.Optimizer], list[Any]]:
    """The optimizers and per-step schedulers of ``configure_optimizers``' return value, parsed by Lightning's
    own parser (:func:`lit_gans.compat.configure_optimizers`) so that the plain loop sees exactly what the
    Trainer sees. Epoch-interval schedulers are left out: the benchmark times batches within one epoch."""
    from lit_gans.compat import configure_optimizers

    optimizers, configs = configure_optimizers(config)
    return optimizers, [c.scheduler for c in configs if c.interval == "step"]


class PlainRunner:
    """Runs a model's own ``training_step`` without a Trainer: optimizers from ``configure_optimizers``,
    ``loss.backward()`` for ``manual_backward``, ``requires_grad`` toggling for ``toggled_optimizer``, the
    configured precision's autocast, and the schedule callbacks' hooks called by hand."""

    def __init__(self, model: L.LightningModule, callbacks: list[Callback], precision: str):
        self.model, self.callbacks = model, callbacks
        self.optimizers, self.step_schedulers = _optimizers_and_step_schedulers(model.configure_optimizers())
        model.optimizers = lambda: self.optimizers if len(self.optimizers) > 1 else self.optimizers[0]
        model.manual_backward = lambda loss, *a, **k: loss.backward()
        model.toggled_optimizer = self._toggled
        model.log = model.log_dict = lambda *a, **k: None
        self.autocast = precision in ("bf16-mixed", "16-mixed")
        self.dtype = torch.bfloat16 if precision == "bf16-mixed" else torch.float16
        self.batch_idx = 0

    @contextlib.contextmanager
    def _toggled(self, optimizer):
        own = {id(p) for g in optimizer.param_groups for p in g["params"]}
        saved = {}
        for opt in self.optimizers:
            for g in opt.param_groups:
                for p in g["params"]:
                    saved[p] = p.requires_grad
                    p.requires_grad_(id(p) in own and saved[p])
        try:
            yield
        finally:
            for p, flag in saved.items():
                p.requires_grad_(flag)

    def step(self, batch: dict[str, torch.Tensor]) -> None:
        for cb in self.callbacks:
            cb.on_train_batch_start(_EPOCH0, self.model, batch, self.batch_idx)
        with torch.autocast(self.model.device.type, dtype=self.dtype, enabled=self.autocast):
            self.model.training_step(batch, self.batch_idx)
        for scheduler in self.step_schedulers:
            scheduler.step()
        for cb in self.callbacks:
            cb.on_train_batch_end(None, self.model, None, batch, self.batch_idx)
        self.batch_idx += 1


def _peak_memory_gb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux


def _time_plain(model: L.LightningModule, channels_last: bool, schedule_callbacks: list[Callback], precision: str,
                batches: list[dict[str, torch.Tensor]], warmup: int, steps: int, device: torch.device) -> float:
    """Seconds per step of the plain loop (:class:`PlainRunner`) on ``model`` after ``warmup`` steps."""
    model = model.to(device)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    runner = PlainRunner(model, [copy.deepcopy(c) for c in schedule_callbacks], precision)
    for i in range(warmup):
        runner.step(batches[i % len(batches)])
    _sync(device)
    start = time.perf_counter()
    for i in range(steps):
        runner.step(batches[(warmup + i) % len(batches)])
    _sync(device)
    return (time.perf_counter() - start) / steps


def run_benchmark(overrides: list[str], steps: int = 20, warmup: int = 3, compare_plain: bool = False,
                  output_dir: str = ".", callbacks: list[Callback] | None = None,
                  count_flops: bool = True) -> dict[str, Any]:
    """Train ``warmup + steps`` batches with the Trainer (plus one that closes the timed window) and report the
    figures of the ``steps`` timed ones (see the module's ``--help``).

    Args:
        callbacks: extra callbacks for the Trainer's run only (e.g. :class:`lit_gans.bench.checks.StepChecks`);
            the plain loop and the FLOP count run on copies of the model made before the fit.
        count_flops: count one step's FLOPs (an extra step under ``torch.utils.flop_counter``).
    """
    from lit_gans.train import build

    cfg = compose_config(overrides, output_dir)
    datamodule, model, trainer = build(cfg)
    device = torch.device("cuda" if torch.cuda.is_available() and cfg.trainer.accelerator in ("auto", "gpu", "cuda")
                          else "cpu")
    datamodule.setup("fit")
    loader = iter(datamodule.train_dataloader())
    batches = [{k: v.to(device) for k, v in next(loader).items()} for _ in range(min(4, steps + warmup))]
    batch_size = int(next(iter(batches[0].values())).shape[0])
    pristine = copy.deepcopy(model)
    schedule_callbacks = [c for c in trainer.callbacks if type(c).__module__.startswith("lit_gans.callbacks.schedules")]

    # The plain loop is timed before and after the Trainer's run, and their mean is the reference: a single
    # run after (or before) the Trainer's measures the order (allocator and cache warm-up) as much as Lightning.
    if compare_plain:
        plain_before = _time_plain(copy.deepcopy(pristine), model.channels_last, schedule_callbacks,
                                   str(trainer.precision), batches, warmup, steps, device)
    timer = StepTimer(warmup, steps)
    trainer.callbacks.append(timer)
    trainer.callbacks.extend(callbacks or [])
    trainer.fit_loop.max_epochs = 1
    trainer.limit_train_batches = warmup + steps + 1
    if device.type == "cuda":
        gc.collect()  # the plain loop's copy (a reference cycle) must not count in the Trainer's peak
        torch.cuda.reset_peak_memory_stats(device)
    model.check_data(datamodule.data_spec())
    trainer.fit(model, train_dataloaders=DeviceBatches(batches, warmup + steps + 1))
    elapsed = timer.end - timer.start
    result: dict[str, Any] = {
        "model": cfg.model._target_.rsplit(".", 1)[-1],
        "overrides": overrides,
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "torch": torch.__version__,
        "cuda": torch.version.cuda if device.type == "cuda" else None,
        "precision": str(trainer.precision),
        "batch_size": batch_size,
        "steps": steps,
        "s_per_step": elapsed / steps,
        "img_per_s": batch_size * steps / elapsed,
        "peak_memory_gb": _peak_memory_gb(device),
        "outside_step_share": max(0.0, 1.0 - timer.in_step / elapsed),
        "compile_s": (timer.warmup_end - timer.fit_start) if cfg.model.get("compile") else None,
    }

    if count_flops:
        flop_model = copy.deepcopy(pristine).to(device)
        runner = PlainRunner(flop_model, [copy.deepcopy(c) for c in schedule_callbacks], result["precision"])
        with StepFlopCounter() as counter:
            runner.step(batches[0])
        result["tflop_per_step"] = counter.get_total_flops() / 1e12
        result["achieved_tflops"] = result["tflop_per_step"] / result["s_per_step"]
        del flop_model, runner

    if compare_plain:
        after = _time_plain(copy.deepcopy(pristine), model.channels_last, schedule_callbacks, result["precision"],
                            batches, warmup, steps, device)
        plain = 0.5 * (plain_before + after)
        result["plain"] = {"s_per_step": plain, "img_per_s": batch_size / plain,
                           "s_per_step_before": plain_before, "s_per_step_after": after}
        result["lightning_overhead_pct"] = 100.0 * (result["s_per_step"] / plain - 1.0)
    return result

"""What a short training run must show on the device it runs on, checked from inside the Trainer's run.

:class:`StepChecks` is a Lightning callback for :func:`lit_gans.bench.runner.run_benchmark` (or any fit). Over
the *checked* batches (``batch_idx >= warmup``, after compilation and autotuning) it verifies:

* ``no_host_sync``: ``training_step`` issues no host synchronisation. On CUDA it runs under
  ``torch.cuda.set_sync_debug_mode("error")`` (a synchronising CUDA call raises); on the CPU, where that mode
  does nothing, ``Tensor.item/.cpu/.tolist/.numpy/bool()/int()/float()`` raise instead.
* ``finite``: every loss term and total the objective logs is finite on every batch.
* ``weights_changed``: every parameter group of every optimizer changed some weight over the run.
* ``channels_last``: the model asked for channels_last (``model.channels_last``), its 4-D weights are
  channels_last, and (eager runs) every convolution's output is channels_last contiguous.
* ``fused_optimizer``: every Adam/AdamW parameter group has ``fused=True``.
* ``r1_fp32`` (models with an ``r1`` term): R1 ran with autocast off on float32 logits and inputs, and its
  value equals an independent float32 recomputation (the discriminator's eager forward with autocast off, the
  input gradient squared and summed in float32) within ``r1_rtol``.

Each check's verdict is ``{"ok": bool | None, ...details}``; ``None`` means "does not apply" (no R1 term).
Everything is read back from the device once, at the end of the run (:meth:`StepChecks.report`).
"""

from __future__ import annotations

import contextlib
import math
import time
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import torch
from lightning.pytorch.callbacks import Callback
from torch import Tensor, nn

HOST_SYNCS = ("item", "cpu", "tolist", "numpy", "__bool__", "__int__", "__float__", "__index__")


class HostSyncError(RuntimeError):
    """A host synchronisation inside a guarded training step (CPU stand-in of CUDA's sync debug mode)."""


@contextlib.contextmanager
def host_sync_guard(device: torch.device, mode: str = "error", seen: list[str] | None = None) -> Iterator[None]:
    """Fail (``mode="error"``) or count into ``seen`` (``mode="count"``) the host synchronisations issued inside.

    CUDA: ``torch.cuda.set_sync_debug_mode`` (``"error"``, or ``"warn"`` with the warnings counted). CPU: the
    Python-level reads of a tensor's value (:data:`HOST_SYNCS`) raise :class:`HostSyncError` or are counted.
    """
    seen = [] if seen is None else seen
    if device.type == "cuda":
        previous = torch.cuda.get_sync_debug_mode()
        if mode == "error":
            torch.cuda.set_sync_debug_mode("error")
            try:
                yield
            finally:
                torch.cuda.set_sync_debug_mode(previous)
            return
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            torch.cuda.set_sync_debug_mode("warn")
            try:
                yield
            finally:
                torch.cuda.set_sync_debug_mode(previous)
        seen.extend(str(w.message).splitlines()[0] for w in caught if "synchroniz" in str(w.message))
        return

    originals = {name: getattr(torch.Tensor, name) for name in HOST_SYNCS}

    def guarded(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def call(self: Tensor, *args: Any, **kwargs: Any) -> Any:
            if self.numel() > 0:
                if mode == "error":
                    raise HostSyncError(f"host synchronisation inside the training step: Tensor.{name}()")
                seen.append(name)
            return fn(self, *args, **kwargs)

        return call

    for name, fn in originals.items():
        setattr(torch.Tensor, name, guarded(name, fn))
    try:
        yield
    finally:
        for name, fn in originals.items():
            setattr(torch.Tensor, name, fn)


def measure_matmul_peak(device: torch.device, n: int = 8192, dtype: torch.dtype = torch.bfloat16,
                        iters: int = 10, warmup: int = 3) -> dict[str, Any]:
    """Achieved TFLOP/s of an ``n x n x n`` matrix product in ``dtype`` (the mean of ``iters`` timed products
    after ``warmup``): the device's practical ceiling that the training steps' TFLOP/s is compared with."""
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(warmup):
        a @ b
    _sync(device)
    start = time.perf_counter()
    for _ in range(iters):
        a @ b
    _sync(device)
    seconds = (time.perf_counter() - start) / iters
    return {"n": n, "dtype": str(dtype).replace("torch.", ""), "s_per_matmul": seconds,
            "tflops": 2 * n**3 / seconds / 1e12}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _is_conv(module: nn.Module) -> bool:
    return isinstance(module, (nn.Conv2d, nn.ConvTranspose2d))


def _compiled(module: nn.Module) -> bool:
    return any(getattr(m, "_compiled_call_impl", None) is not None for m in module.modules())


class StepChecks(Callback):
    """The checks of the module docstring over the batches from ``warmup`` on.

    Args:
        warmup: batches before the checked ones (compilation, cudnn autotuning, lazy optimizer state).
        sync_mode: ``"error"`` (a host sync inside a checked step raises and fails the run) or ``"count"``
            (syncs are counted and reported; for timed benchmark runs that must not be cut short).
        r1_rtol: relative tolerance of the R1 recomputation.
        full: all checks. ``False``: only those that add no work to the step (host syncs, weights changed,
            channels_last of the weights, fused optimizers), for timed runs: no per-step loss read-out, no
            convolution hooks, no R1 recomputation.
    """

    def __init__(self, warmup: int, sync_mode: str = "error", r1_rtol: float = 1e-3, full: bool = True):
        self.warmup, self.sync_mode, self.r1_rtol, self.full = warmup, sync_mode, r1_rtol, full
        self.checked_steps = 0
        self.syncs: list[str] = []
        self._loss_rows: list[tuple[list[str], Tensor]] = []
        self._before: list[list[list[Tensor]]] = []
        self._r1: list[dict[str, Any]] = []
        self._conv_outputs: list[bool] = []
        self._hooks: list[Any] = []
        self._y_trg: Tensor | None = None
        self._checking = False
        self._watch_convs = False
        self.results: dict[str, dict[str, Any]] = {}

    # ------------------------------------------------------------------ set-up
    def on_train_start(self, trainer, pl_module):
        # After the module's on_fit_start: channels_last applied, nets compiled, optimizers built.
        self._before = [[[p.detach().clone() for p in g["params"]] for g in opt.param_groups]
                        for opt in trainer.optimizers]
        self._watch_convs = self.full and not _compiled(pl_module)
        if self._watch_convs:
            for m in pl_module.modules():
                if _is_conv(m):
                    self._hooks.append(m.register_forward_hook(self._conv_hook))
        term = getattr(getattr(pl_module, "objective", None), "terms", {}).get("r1")
        if term is not None and self.full:
            term.fn = self._r1_recorder(pl_module, term.fn)
        step = pl_module.training_step

        def checked_step(batch, batch_idx, *args, **kwargs):
            if batch_idx < self.warmup:
                return step(batch, batch_idx, *args, **kwargs)
            self._y_trg = batch.get("y_trg") if isinstance(batch, dict) else None
            self._checking = True
            try:
                with host_sync_guard(pl_module.device, self.sync_mode, self.syncs):
                    out = step(batch, batch_idx, *args, **kwargs)
            finally:
                self._checking = False
            self.checked_steps += 1
            if self.full:
                self._record_losses(pl_module)
            return out

        pl_module.training_step = checked_step

    def _conv_hook(self, module: nn.Module, args: Any, output: Any) -> None:
        if self._checking and isinstance(output, Tensor) and output.dim() == 4:
            self._conv_outputs.append(output.is_contiguous(memory_format=torch.channels_last))

    def _record_losses(self, pl_module) -> None:
        objective = getattr(pl_module, "objective", None)
        if objective is None:
            return
        scalars = objective.scalars()
        names = list(scalars)
        values = torch.stack([v.detach().float().reshape(()).to(pl_module.device) for v in scalars.values()])
        self._loss_rows.append((names, values))

    def _r1_recorder(self, pl_module, fn: Callable[..., Tensor]) -> Callable[..., Tensor]:
        from lit_gans.models.base import eager

        def recorded(real_logits: Tensor, real_inputs: Tensor, *args: Any, **kwargs: Any) -> Tensor:
            value = fn(real_logits, real_inputs, *args, **kwargs)
            if not self._checking or self._y_trg is None or getattr(pl_module, "augment", None) is not None:
                return value  # warm-up batch, or augmented inputs: nothing to recompute against
            device_type = pl_module.device.type
            entry = {"autocast_on": torch.is_autocast_enabled(device_type),
                     "logits_dtype": str(real_logits.dtype), "inputs_dtype": str(real_inputs.dtype),
                     "value": value.detach().float()}
            # The reference: the same discriminator weights, eager, float32, autocast off, and the penalty
            # written out again here rather than through the model's loss function.
            with torch.autocast(device_type, enabled=False), torch.enable_grad():
                x = real_inputs.detach().float().clone().requires_grad_(True)
                logits = eager(pl_module.discriminator)(x, self._y_trg)
                (grad,) = torch.autograd.grad(logits.float().sum(), x)
                entry["reference"] = grad.float().pow(2).flatten(1).sum(1).mean().detach()
            self._r1.append(entry)
            return value

        return recorded

    # ------------------------------------------------------------------ verdicts
    def on_train_end(self, trainer, pl_module):
        for h in self._hooks:
            h.remove()
        self._hooks = []
        self.results = self.report(trainer, pl_module)

    def report(self, trainer, pl_module) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        out["no_host_sync"] = {"ok": not self.syncs and self.checked_steps > 0, "mode": self.sync_mode,
                               "checked_steps": self.checked_steps, "syncs": self.syncs[:5],
                               "count": len(self.syncs)}
        out["finite"] = self._finite_verdict() if self.full else {"ok": None, "reason": "not checked (timed run)"}
        out["weights_changed"] = self._weights_verdict(trainer)
        out["channels_last"] = self._channels_last_verdict(pl_module)
        out["fused_optimizer"] = self._fused_verdict(trainer)
        out["r1_fp32"] = self._r1_verdict(pl_module) if self.full else {"ok": None, "reason": "not checked (timed run)"}
        return out

    def _finite_verdict(self) -> dict[str, Any]:
        if not self._loss_rows:
            return {"ok": False, "reason": "no checked step recorded any loss"}
        bad: list[str] = []
        last: dict[str, float] = {}
        for names, values in self._loss_rows:
            vals = values.tolist()
            bad += [n for n, v in zip(names, vals, strict=True) if not math.isfinite(v)]
            last = dict(zip(names, vals, strict=True))
        return {"ok": not bad, "nonfinite": sorted(set(bad)), "last": {k: round(v, 5) for k, v in last.items()}}

    def _weights_verdict(self, trainer) -> dict[str, Any]:
        groups, unchanged = 0, []
        for i, (opt, before) in enumerate(zip(trainer.optimizers, self._before, strict=True)):
            for j, (group, old) in enumerate(zip(opt.param_groups, before, strict=True)):
                if not old:
                    continue
                groups += 1
                if all(torch.equal(p.detach(), q) for p, q in zip(group["params"], old, strict=True)):
                    unchanged.append(group.get("name", f"optimizer {i} group {j}"))
        out: dict[str, Any] = {"ok": groups > 0 and not unchanged, "param_groups": groups, "unchanged": unchanged}
        scaler = getattr(trainer.precision_plugin, "scaler", None)
        if scaler is not None:
            out["grad_scale"] = float(scaler.get_scale())
        return out

    def _channels_last_verdict(self, pl_module) -> dict[str, Any]:
        wanted = bool(getattr(pl_module, "channels_last", False))
        weights = [p for p in pl_module.parameters() if p.dim() == 4]
        cl_weights = sum(p.is_contiguous(memory_format=torch.channels_last) for p in weights)
        out: dict[str, Any] = {"model_channels_last": wanted, "weights_4d": len(weights),
                               "weights_channels_last": int(cl_weights)}
        ok = wanted and cl_weights == len(weights)
        if not self.full:
            out["conv_outputs"] = "not inspected (timed run)"
        elif self._watch_convs:
            outputs = self._conv_outputs
            out.update(conv_calls=len(outputs), conv_outputs_channels_last=int(sum(outputs)))
            ok = ok and bool(outputs) and all(outputs)
        else:
            out["conv_outputs"] = "not inspected (compiled nets)"
        out["ok"] = ok
        return out

    def _fused_verdict(self, trainer) -> dict[str, Any]:
        groups = [(type(opt).__name__, g.get("fused")) for opt in trainer.optimizers for g in opt.param_groups]
        adam = [(name, fused) for name, fused in groups if name in ("Adam", "AdamW")]
        unfused = sorted({name for name, fused in adam if not fused})
        return {"ok": bool(adam) and not unfused, "optimizers": sorted({n for n, _ in groups}),
                "adam_groups": len(adam), "unfused": unfused}

    def _r1_verdict(self, pl_module) -> dict[str, Any]:
        terms = getattr(getattr(pl_module, "objective", None), "terms", {})
        if "r1" not in terms:
            return {"ok": None, "reason": "no R1 term"}
        if not self._r1:
            return {"ok": False, "reason": "no R1 step among the checked batches (lower loss.r1_interval)"}
        worst, problems = 0.0, []
        for e in self._r1:
            value, ref = float(e["value"]), float(e["reference"])
            worst = max(worst, abs(value - ref) / max(abs(ref), 1e-12))
            if e["autocast_on"]:
                problems.append("autocast was on")
            if e["logits_dtype"] != "torch.float32" or e["inputs_dtype"] != "torch.float32":
                problems.append(f"logits {e['logits_dtype']}, inputs {e['inputs_dtype']}")
        if worst > self.r1_rtol:
            problems.append(f"differs from the fp32 recomputation by {worst:.2e} (relative)")
        last = self._r1[-1]
        return {"ok": not problems, "r1_steps": len(self._r1), "max_rel_diff": worst, "problems": sorted(set(problems)),
                "value": float(last["value"]), "reference": float(last["reference"])}

"""The one place lit_gans uses library internals (names with a leading underscore), where no public way exists.
Each has a test in tests/test_compat.py that fails loudly when the library changes it.

- Lightning's loop progress: how many epochs and batches of the current epoch are done. The resumable loader
  needs the batch count of the *interrupted* epoch to skip exactly those batches when a run resumes, and
  Lightning exposes no public counter that survives a checkpoint (``trainer.current_epoch`` does; the batch
  position does not).
- Lightning's logging step of a training batch and whether its loggers write that batch's step values
  (``log_every_n_steps``): a term computed on some batches only writes the values Lightning skips itself.
- ``DataLoader._index_sampler``: the sampler a loader iterator draws batches of indices from. Skipping the
  batches already trained *without loading them* needs a hook before the iterator is made; replacing the batch
  sampler through the public constructor breaks Lightning's distributed-sampler injection.
- Lightning's parser of ``configure_optimizers`` return values, so that the benchmark's plain loop sees the
  optimizers and schedulers the Trainer sees.
- torchmetrics' LPIPS network class, the only way to build LPIPS from local weights (its public metric
  downloads its backbone).
- ``torch._foreach_copy_``: one fused copy of all EMA buffers (a Python loop of ``copy_`` is a kernel per buffer).
- torch.fx's ``backed_size_oblivious`` flag, which the ONNX exporter itself sets, for torch.export programs
  that accept batches of 0 and 1.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader


# ---------------------------------------------------------------------------------------------- Lightning loops
def epochs_done(trainer: Any) -> int:
    """Training epochs finished (also right after a resume, before the first batch)."""
    return int(trainer.fit_loop.epoch_progress.current.processed)


def batches_done_in_epoch(trainer: Any) -> int:
    """Batches of the current epoch trained so far (the checkpoint of an interrupted epoch restores it)."""
    return int(trainer.fit_loop.epoch_loop.batch_progress.current.processed)


def batches_completed_in_epoch(trainer: Any) -> int:
    """Batches of the current epoch whose end-of-batch hooks have all run."""
    return int(trainer.fit_loop.epoch_loop.batch_progress.current.completed)


def checkpoint_progress(ckpt: dict[str, Any]) -> tuple[int | None, int]:
    """``(epochs trained to their end, batches of the interrupted epoch)`` from the fit-loop progress a Lightning
    checkpoint saves (the counters of :func:`epochs_done` and :func:`batches_completed_in_epoch` on a live
    trainer); ``(None, 0)`` when the checkpoint has none."""
    try:
        loop = ckpt["loops"]["fit_loop"]
        epochs = loop["epoch_progress"]["current"]
        done, started = int(epochs["processed"]), int(epochs["started"])
        batches = int(loop["epoch_loop.batch_progress"]["current"]["completed"]) if started > done else 0
        return done, batches
    except (KeyError, TypeError, ValueError):
        return None, 0


def train_logging_step(trainer: Any) -> tuple[int, bool]:
    """``(step, written)``: the step Lightning's loggers give the current training batch's step values, and
    whether Lightning writes them after this batch. Valid in ``on_train_batch_end``."""
    return int(trainer.fit_loop.epoch_loop._batches_that_stepped), bool(trainer._logger_connector.should_update_logs)


def configure_optimizers(config: Any) -> tuple[list[torch.optim.Optimizer], list[Any]]:
    """``(optimizers, lr scheduler configs)`` of a ``configure_optimizers`` return value, parsed as Lightning
    parses it for manual optimisation (each config has ``scheduler`` and ``interval``)."""
    from lightning.pytorch.core.optimizer import _configure_optimizers, _configure_schedulers_manual_opt

    optimizers, schedulers, _ = _configure_optimizers(config)
    return optimizers, _configure_schedulers_manual_opt(schedulers)


# ---------------------------------------------------------------------------------------------- DataLoader
class _SkipFirst:
    """A batch sampler without its first ``k`` batches."""

    def __init__(self, batch_sampler: Iterable, k: int):
        self.batch_sampler, self.k = batch_sampler, k

    def __iter__(self) -> Iterator:
        import itertools

        return itertools.islice(iter(self.batch_sampler), self.k, None)

    def __len__(self) -> int:
        return max(0, len(self.batch_sampler) - self.k)  # type: ignore[arg-type]


class SkippingDataLoader(DataLoader):
    """A ``DataLoader`` whose next iterator starts after ``skip_batches`` batches of indices (set before calling
    ``iter``; reset to 0 by the subclass afterwards). The skipped indices are drawn but their items are never
    loaded, in the main process and in worker processes alike."""

    skip_batches = 0

    @property
    def _index_sampler(self):  # noqa: D401 - overrides DataLoader's private property
        base = super()._index_sampler
        return _SkipFirst(base, self.skip_batches) if self.skip_batches else base


# ---------------------------------------------------------------------------------------------- torch
def foreach_copy_(dst: list[Tensor], src: list[Tensor]) -> None:
    """``d.copy_(s)`` for every pair, as one fused operation."""
    torch._foreach_copy_(dst, src)


@contextlib.contextmanager
def size_oblivious_tracing() -> Iterator[None]:
    """Trace with sizes 0 and 1 treated like any other size (torch.export programs then accept empty inputs and
    batches of one instead of guarding ``size >= 2``); what ``torch.onnx.export(dynamo=True)`` sets itself."""
    from torch.fx.experimental import _config

    with _config.patch(backed_size_oblivious=True):
        yield


# ---------------------------------------------------------------------------------------------- torchmetrics
def lpips_network(net: str) -> nn.Module:
    """torchmetrics' LPIPS network with a random backbone (to be filled from local weights) and its shipped
    linear heads: ``(img1, img2)`` in [-1, 1] -> ``(N, 1, 1, 1)``."""
    from torchmetrics.functional.image.lpips import _NoTrainLpips

    return _NoTrainLpips(net=net, pnet_rand=True)

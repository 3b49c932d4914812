"""What the terminal shows while a run trains: a progress bar with the generator's and discriminator's totals,
a model summary without the empty FLOPs column, and no known third-party noise."""

from __future__ import annotations

import logging
import math
import warnings
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import ModelSummary, TQDMProgressBar
from lightning.pytorch.utilities.model_summary import get_human_readable_count

log = logging.getLogger("lightning.pytorch.callbacks.model_summary")


class LossProgressBar(TQDMProgressBar):
    """Lightning's bar plus each tag's total of the model's objective (``D 1.93 G 12.4``). The totals are read
    from the device only when the bar refreshes (every ``refresh_rate`` batches), never in between."""

    def get_metrics(self, trainer: L.Trainer, pl_module: L.LightningModule) -> dict[str, Any]:
        metrics = super().get_metrics(trainer, pl_module)
        metrics.pop("v_num", None)
        objective = getattr(pl_module, "objective", None)
        if objective is not None:
            for tag, value in objective.scalars().items():
                group, name = tag.split("/", 1)
                if objective.totals.get(group) == name:
                    v = float(value)
                    metrics[group] = f"{v:.3g}" if math.isfinite(v) else str(v)
        return metrics


class CompactModelSummary(ModelSummary):
    """Lightning's model summary without the FLOPs column and total when they are 0 (they are counted only for
    a model with an ``example_input_array``, which a GAN of several networks has not)."""

    @staticmethod
    def summarize(summary_data: list[tuple[str, list[str]]], total_parameters: int, trainable_parameters: int,
                  model_size: float, total_training_modes: dict[str, int], total_flops: int,
                  **summarize_kwargs: Any) -> None:
        if total_flops:
            return ModelSummary.summarize(summary_data, total_parameters, trainable_parameters, model_size,
                                          total_training_modes, total_flops, **summarize_kwargs)
        cols = [c for c in summary_data if c[0] != "FLOPs"]
        widths = [max([len(c[0]), *(len(str(v)) for v in c[1])]) for c in cols]
        rule = "-" * (sum(widths) + 3 * len(cols))
        lines = [" | ".join(c[0].ljust(w) for c, w in zip(cols, widths, strict=True)), rule]
        for i in range(len(cols[0][1]) if cols else 0):
            lines.append(" | ".join(str(c[1][i]).ljust(w) for c, w in zip(cols, widths, strict=True)))
        lines += [rule,
                  f"{get_human_readable_count(trainable_parameters):<10}Trainable params",
                  f"{get_human_readable_count(total_parameters - trainable_parameters):<10}Non-trainable params "
                  "(EMA copies, frozen nets)",
                  f"{get_human_readable_count(total_parameters):<10}Total params",
                  f"{model_size:<10.3f}Total estimated model params size (MB)"]
        log.info("\n" + "\n".join(lines))
        return None


class _DropMessages(logging.Filter):
    def __init__(self, *fragments: str):
        super().__init__()
        self.fragments = fragments

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(f in message for f in self.fragments)


def silence_known_noise() -> None:
    """Filters at the source for messages that say nothing about the run: Lightning's advertisement for its cloud
    logger, and PyTorch's deprecation of ``LeafSpec`` that Lightning triggers (not lit_gans' code)."""
    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero",
                 "lightning.pytorch.trainer.connectors.logger_connector"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropMessages) for f in logger.filters):
            logger.addFilter(_DropMessages("litlogger", "litmodels", "Lightning Experiments platform"))
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\).*")

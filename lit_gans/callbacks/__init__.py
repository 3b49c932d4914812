"""Callbacks: schedules (diversity decay, lazy R1, ADA), loss logging, sample grids, validation metrics,
last.ckpt on epochs, time and signals."""

from lit_gans.callbacks.augment import AdaptiveAugmentation
from lit_gans.callbacks.checkpointing import LastCheckpoint
from lit_gans.callbacks.console import CompactModelSummary, LossProgressBar
from lit_gans.callbacks.guards import NonFiniteGuard
from lit_gans.callbacks.hparams import HParams
from lit_gans.callbacks.image_grid import ImageGrid
from lit_gans.callbacks.loss_logging import LossLogger, log_step_and_epoch
from lit_gans.callbacks.metrics import JudgeMetrics, ValidationMetrics
from lit_gans.callbacks.resume import RNGState, RunRecord
from lit_gans.callbacks.schedules import DiversityDecay, R1Schedule, diversity_factor

__all__ = ["AdaptiveAugmentation", "CompactModelSummary", "DiversityDecay", "HParams", "ImageGrid", "JudgeMetrics", "LastCheckpoint",
           "LossLogger", "LossProgressBar",
           "NonFiniteGuard", "R1Schedule", "RNGState", "RunRecord", "ValidationMetrics", "diversity_factor", "log_step_and_epoch"]

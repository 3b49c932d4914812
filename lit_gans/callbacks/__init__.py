"""Callbacks: schedules (diversity decay, lazy R1), per-tag loss logging, sample grids."""

from lit_gans.callbacks.guards import NonFiniteGuard
from lit_gans.callbacks.image_grid import ImageGrid
from lit_gans.callbacks.loss_logging import LossLogger, log_step_and_epoch
from lit_gans.callbacks.preemption import CheckpointOnSignal
from lit_gans.callbacks.resume import RNGState
from lit_gans.callbacks.schedules import DiversityDecay, R1Schedule, diversity_factor

__all__ = ["CheckpointOnSignal", "DiversityDecay", "ImageGrid", "LossLogger", "NonFiniteGuard", "R1Schedule", "RNGState", "diversity_factor",
           "log_step_and_epoch"]

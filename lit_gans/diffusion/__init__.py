"""Diffusion maths in plain torch (no Lightning): noise schedules, the forward process, DDPM and DDIM."""

from lit_gans.diffusion.samplers import SAMPLERS, ddim_sample, ddpm_sample, sample, sampling_timesteps
from lit_gans.diffusion.schedules import (
    NOISE_SCHEDULES,
    NoiseSchedule,
    cosine_alpha_bar,
    cosine_betas,
    linear_betas,
)

__all__ = [
    "NOISE_SCHEDULES",
    "NoiseSchedule",
    "SAMPLERS",
    "cosine_alpha_bar",
    "cosine_betas",
    "ddim_sample",
    "ddpm_sample",
    "linear_betas",
    "sample",
    "sampling_timesteps",
]

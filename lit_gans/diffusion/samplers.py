"""Reverse processes: DDPM ancestral sampling (Ho et al., 2020, Algorithm 2) and DDIM (Song et al., 2021).

Both take an ``eps_fn(x_t, t) -> predicted noise`` (``x_t``: ``(B, C, H, W)``, ``t``: ``(B,)`` long) and start
from pure noise ``x_T``. Both run over a descending subsequence of the ``T`` training steps (``steps`` of
them, evenly spaced, always ending at ``t = 0``); the last step lands on ``alpha_bar = 1``, so a perfect
noise predictor returns exactly the clean image. The per-step coefficients are Python floats from the
schedule's host copy: the loop never waits on the device.

Written here rather than taken from ``diffusers`` schedulers because those keep host-side step state, step
the whole batch at one timestep by index bookkeeping, and mix NumPy and float64 tensors; these few lines
are the formulas themselves, testable against an oracle predictor (``tests/test_palette_diffusion.py``).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from lit_gans.diffusion.schedules import NoiseSchedule
from lit_gans.errors import ConfigError

EpsFn = Callable[[Tensor, Tensor], Tensor]
StepFn = Callable[[int, Tensor], None]
SAMPLERS = ("ddim", "ddpm")


def sampling_timesteps(timesteps: int, steps: int | None = None) -> list[int]:
    """``steps`` distinct timesteps evenly spaced from ``T-1`` down to 0 (all ``T`` when ``None`` or larger)."""
    if steps is None or steps >= timesteps:
        return list(range(timesteps - 1, -1, -1))
    if steps < 1:
        raise ValueError(f"sampling needs at least 1 step, got {steps}")
    # Spacing (T-1)/(steps-1) >= 1, so the rounded values are distinct.
    return torch.linspace(timesteps - 1, 0, steps, dtype=torch.float64).round().long().tolist()


def _noise_like(x: Tensor, generator: torch.Generator | None) -> Tensor:
    return torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)


def _x0_and_eps(eps_fn: EpsFn, x: Tensor, t: int, ab: float, clip: float | None) -> tuple[Tensor, Tensor]:
    """The model's noise and the clean image it implies at step ``t``; with ``clip`` the image is clamped to
    ``[-clip, clip]`` and the noise re-derived from it (as ADM does), so both stay consistent."""
    eps = eps_fn(x, torch.full((x.shape[0],), t, device=x.device, dtype=torch.long)).to(x.dtype)
    x0 = (x - math.sqrt(1 - ab) * eps) / math.sqrt(ab)
    if clip is not None:
        x0 = x0.clamp(-clip, clip)
        eps = (x - math.sqrt(ab) * x0) / math.sqrt(1 - ab)
    return x0, eps


@torch.no_grad()
def ddpm_sample(eps_fn: EpsFn, x_T: Tensor, schedule: NoiseSchedule, steps: int | None = None,
                generator: torch.Generator | None = None, clip: float | None = None,
                on_step: StepFn | None = None) -> Tensor:
    """Ancestral sampling: ``x_s ~ q(x_s | x_t, x0_hat)``, the Gaussian posterior of the forward process,
    from each timestep ``t`` to the next one ``s`` of the sequence (``s = t - 1`` with all ``T`` steps)::

        mean = sqrt(abar_s) (1 - a) / (1 - abar_t) * x0_hat + sqrt(a) (1 - abar_s) / (1 - abar_t) * x_t
        var  = (1 - abar_s) / (1 - abar_t) * (1 - a),        a = abar_t / abar_s

    (the posterior variance ``beta_tilde``). With fewer steps this is the respaced DDPM of Nichol & Dhariwal.

    Args:
        eps_fn: noise predictor. x_T: ``(B, C, H, W)`` starting noise (model space).
        steps: number of denoising steps (``None``: all ``T``). generator: for the added noise.
        clip: clamp the predicted clean image to ``[-clip, clip]`` (1 for pixels; ``None``: no clamp).
        on_step: called as ``on_step(s, x_s)`` after each step (progress views, tests).

    Returns:
        ``(B, C, H, W)`` sample ``x_0``.
    """
    ts = sampling_timesteps(schedule.timesteps, steps)
    x = x_T
    for i, t in enumerate(ts):
        s = ts[i + 1] if i + 1 < len(ts) else -1
        ab_t, ab_s = schedule.alpha_bar(t), schedule.alpha_bar(s)
        a = ab_t / ab_s
        x0, _ = _x0_and_eps(eps_fn, x, t, ab_t, clip)
        x = (math.sqrt(ab_s) * (1 - a) / (1 - ab_t)) * x0 + (math.sqrt(a) * (1 - ab_s) / (1 - ab_t)) * x
        if s >= 0:
            x = x + math.sqrt((1 - ab_s) / (1 - ab_t) * (1 - a)) * _noise_like(x, generator)
        if on_step is not None:
            on_step(s, x)
    return x


@torch.no_grad()
def ddim_sample(eps_fn: EpsFn, x_T: Tensor, schedule: NoiseSchedule, steps: int | None = 50, eta: float = 0.0,
                generator: torch.Generator | None = None, clip: float | None = None,
                on_step: StepFn | None = None) -> Tensor:
    """DDIM (Song et al., 2021, eq. 12) from each timestep ``t`` to the next ``s``::

        x_s = sqrt(abar_s) x0_hat + sqrt(1 - abar_s - sigma^2) eps_hat + sigma z,
        sigma = eta * sqrt((1 - abar_s) / (1 - abar_t) * (1 - abar_t / abar_s))

    ``eta = 0``: deterministic; ``eta = 1`` over all ``T`` steps is DDPM ancestral sampling. Arguments as
    :func:`ddpm_sample`.
    """
    ts = sampling_timesteps(schedule.timesteps, steps)
    x = x_T
    for i, t in enumerate(ts):
        s = ts[i + 1] if i + 1 < len(ts) else -1
        ab_t, ab_s = schedule.alpha_bar(t), schedule.alpha_bar(s)
        x0, eps = _x0_and_eps(eps_fn, x, t, ab_t, clip)
        sigma = eta * math.sqrt((1 - ab_s) / (1 - ab_t) * (1 - ab_t / ab_s))
        x = math.sqrt(ab_s) * x0 + math.sqrt(max(0.0, 1 - ab_s - sigma**2)) * eps
        if sigma > 0:
            x = x + sigma * _noise_like(x, generator)
        if on_step is not None:
            on_step(s, x)
    return x


def sample(eps_fn: EpsFn, x_T: Tensor, schedule: NoiseSchedule, sampler: str = "ddim", steps: int | None = 50,
           eta: float = 0.0, generator: torch.Generator | None = None, clip: float | None = None,
           on_step: StepFn | None = None) -> Tensor:
    """Dispatch to :func:`ddim_sample` or :func:`ddpm_sample` (which ignores ``eta``)."""
    if sampler == "ddim":
        return ddim_sample(eps_fn, x_T, schedule, steps, eta, generator, clip, on_step)
    if sampler == "ddpm":
        return ddpm_sample(eps_fn, x_T, schedule, steps, generator, clip, on_step)
    raise ConfigError(f"unknown sampler {sampler!r}: choose {' or '.join(SAMPLERS)}")

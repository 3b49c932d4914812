"""Noise schedules of discrete-time diffusion (Ho et al., 2020; Nichol & Dhariwal, 2021) and the forward
process ``q(x_t | x_0)``.

Timesteps are 0-based: ``t = 0 .. T-1``, ``alpha_bar[t] = prod_{s <= t} (1 - beta_s)``, so ``t = 0`` is one
step of noise and ``t = -1`` (used by the samplers for "clean") has ``alpha_bar = 1``. The schedule is built
in float64 and kept as float32 buffers on the model's device (for training) and as Python floats on the
host (for the samplers' per-step coefficients, so that sampling never reads from the device).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from lit_gans.errors import ConfigError

NOISE_SCHEDULES = ("linear", "cosine")


def linear_betas(timesteps: int, beta_start: float = 1e-4, beta_end: float = 0.02) -> Tensor:
    """DDPM's schedule: ``beta_t`` evenly spaced from ``beta_start`` to ``beta_end`` (float64, ``(T,)``)."""
    return torch.linspace(beta_start, beta_end, timesteps, dtype=torch.float64)


def cosine_alpha_bar(t: Tensor | float, timesteps: int, s: float = 0.008) -> Tensor:
    """Improved DDPM's ``f(t) / f(0)`` with ``f(t) = cos^2(pi/2 * (t/T + s) / (1 + s))``, for continuous ``t``
    in ``[0, T]``."""
    t = torch.as_tensor(t, dtype=torch.float64)

    def f(u: Tensor) -> Tensor:
        return torch.cos((u / timesteps + s) / (1 + s) * math.pi / 2) ** 2

    return f(t) / f(torch.zeros((), dtype=torch.float64))


def cosine_betas(timesteps: int, s: float = 0.008, max_beta: float = 0.999) -> Tensor:
    """Improved DDPM's cosine schedule as betas: ``beta_t = 1 - abar(t+1) / abar(t)``, clipped at ``max_beta``
    (only the last steps reach it), so that ``alpha_bar[t] = abar(t + 1)`` of :func:`cosine_alpha_bar`."""
    steps = torch.arange(timesteps + 1, dtype=torch.float64)
    abar = cosine_alpha_bar(steps, timesteps, s)
    return (1 - abar[1:] / abar[:-1]).clamp(max=max_beta)


class NoiseSchedule(nn.Module):
    """``T`` diffusion steps and the forward process.

    Args:
        timesteps: ``T`` (1000 in DDPM; Palette trains with 2000).
        kind: ``linear`` or ``cosine``.
        beta_start, beta_end: range of the linear schedule.
        cosine_s: offset ``s`` of the cosine schedule.

    Buffers (float32, not saved in checkpoints: the config rebuilds them): ``betas``, ``alphas_cumprod``,
    ``sqrt_alphas_cumprod``, ``sqrt_one_minus_alphas_cumprod``, each ``(T,)``.
    """

    def __init__(self, timesteps: int = 1000, kind: str = "linear", beta_start: float = 1e-4, beta_end: float = 0.02,
                 cosine_s: float = 0.008):
        super().__init__()
        if timesteps < 1:
            raise ConfigError(f"model.diffusion.timesteps must be at least 1, got {timesteps}")
        if kind == "linear":
            if not 0 < beta_start <= beta_end < 1:
                raise ConfigError(f"the linear schedule needs 0 < beta_start <= beta_end < 1, got {beta_start}, {beta_end}")
            betas = linear_betas(timesteps, beta_start, beta_end)
        elif kind == "cosine":
            betas = cosine_betas(timesteps, cosine_s)
        else:
            raise ConfigError(f"unknown model.diffusion.noise_schedule {kind!r}: choose {' or '.join(NOISE_SCHEDULES)}")
        self.kind = kind
        alphas_cumprod = torch.cumprod(1 - betas, dim=0)
        self.alpha_bars: tuple[float, ...] = tuple(alphas_cumprod.tolist())  # host copy for the samplers
        for name, value in (("betas", betas), ("alphas_cumprod", alphas_cumprod),
                            ("sqrt_alphas_cumprod", alphas_cumprod.sqrt()),
                            ("sqrt_one_minus_alphas_cumprod", (1 - alphas_cumprod).sqrt())):
            self.register_buffer(name, value.float(), persistent=False)

    @property
    def timesteps(self) -> int:
        return len(self.alpha_bars)

    def alpha_bar(self, t: int) -> float:
        """Host value of ``alpha_bar[t]``; 1 for ``t = -1`` (the clean image)."""
        return 1.0 if t < 0 else self.alpha_bars[t]

    def q_sample(self, x0: Tensor, t: Tensor, noise: Tensor) -> Tensor:
        """Forward noising ``x_t = sqrt(alpha_bar_t) * x0 + sqrt(1 - alpha_bar_t) * noise``.

        ``x0``, ``noise``: ``(B, C, H, W)``; ``t``: ``(B,)`` long, one timestep per item.
        """
        return _per_item(self.sqrt_alphas_cumprod, t, x0) * x0 + _per_item(self.sqrt_one_minus_alphas_cumprod, t, x0) * noise

    def predict_x0(self, x_t: Tensor, t: Tensor, eps: Tensor) -> Tensor:
        """Invert :meth:`q_sample` for ``x0`` given the noise: ``(x_t - sqrt(1 - abar) eps) / sqrt(abar)``."""
        return (x_t - _per_item(self.sqrt_one_minus_alphas_cumprod, t, x_t) * eps) / _per_item(self.sqrt_alphas_cumprod, t, x_t)


def _per_item(values: Tensor, t: Tensor, like: Tensor) -> Tensor:
    """``values[t]`` shaped ``(B, 1, 1, 1)`` to broadcast over an image batch (an on-device gather: no sync)."""
    return values.gather(0, t).to(like.dtype).view(-1, *([1] * (like.dim() - 1)))

"""Diffusion maths: schedules against their closed forms (and diffusers), the forward process's statistics,
and the samplers checked analytically with an oracle noise predictor that knows the clean image."""

import math

import pytest
import torch

from lit_gans.diffusion import (
    NoiseSchedule,
    cosine_alpha_bar,
    ddim_sample,
    ddpm_sample,
    sample,
    sampling_timesteps,
)
from lit_gans.errors import ConfigError


def linear_alpha_bar(t, T=1000, b0=1e-4, b1=0.02):
    return math.prod(1 - (b0 + (b1 - b0) * s / (T - 1)) for s in range(t + 1))


@pytest.mark.parametrize("t", [0, 1, 250, 500, 999])
def test_linear_alpha_bar_is_the_product_of_one_minus_beta(t):
    s = NoiseSchedule(1000, "linear", 1e-4, 0.02)
    assert s.alpha_bar(t) == pytest.approx(linear_alpha_bar(t), rel=1e-12)
    assert s.alphas_cumprod[t].item() == pytest.approx(linear_alpha_bar(t), rel=1e-6)


def test_linear_schedule_end_values():
    s = NoiseSchedule(1000, "linear")
    assert s.alpha_bar(0) == pytest.approx(1 - 1e-4, rel=1e-12)
    assert s.alpha_bar(999) == pytest.approx(4.0358e-5, rel=1e-4)  # DDPM's: sqrt(abar_T) ~ 0.0064
    assert s.alpha_bar(-1) == 1.0 and s.betas[-1].item() == pytest.approx(0.02)


@pytest.mark.parametrize("t", [0, 100, 500, 900])
def test_cosine_alpha_bar_matches_the_closed_form(t):
    T, s_ = 1000, 0.008
    s = NoiseSchedule(T, "cosine", cosine_s=s_)

    def f(u):
        return math.cos((u / T + s_) / (1 + s_) * math.pi / 2) ** 2

    assert s.alpha_bar(t) == pytest.approx(f(t + 1) / f(0), rel=1e-9)
    assert cosine_alpha_bar(t + 1, T, s_).item() == pytest.approx(f(t + 1) / f(0), rel=1e-12)


def test_cosine_betas_are_clipped_and_schedules_agree_with_diffusers():
    from diffusers import DDPMScheduler

    cos = NoiseSchedule(1000, "cosine")
    assert cos.betas.max().item() == pytest.approx(0.999) and (cos.betas > 0).all()
    for kind, name in (("linear", "linear"), ("cosine", "squaredcos_cap_v2")):
        ours = NoiseSchedule(1000, kind).alphas_cumprod
        theirs = DDPMScheduler(num_train_timesteps=1000, beta_schedule=name).alphas_cumprod
        assert torch.allclose(ours, theirs.float(), rtol=1e-4, atol=1e-9), kind


def test_schedule_errors_are_one_line():
    with pytest.raises(ConfigError, match="noise_schedule 'sigmoid'"):
        NoiseSchedule(10, "sigmoid")
    with pytest.raises(ConfigError, match="beta_start <= beta_end"):
        NoiseSchedule(10, "linear", 0.1, 0.01)


def test_forward_noising_statistics():
    s = NoiseSchedule(1000, "linear")
    g = torch.Generator().manual_seed(0)
    n = 200_000
    x0 = torch.tensor([-1.0, 0.5, 0.9]).view(3, 1, 1, 1).expand(3, 1, 1, n).contiguous()
    t = torch.tensor([10, 500, 990])
    x_t = s.q_sample(x0, t, torch.randn(x0.shape, generator=g))
    for i in range(3):
        ab = s.alpha_bar(int(t[i]))
        mean, var = x_t[i].mean().item(), x_t[i].var().item()
        assert mean == pytest.approx(math.sqrt(ab) * x0[i, 0, 0, 0].item(), abs=5 * math.sqrt((1 - ab) / n))
        assert var == pytest.approx(1 - ab, rel=0.02)
    # predict_x0 inverts q_sample.
    noise = torch.randn(x0.shape, generator=g)
    assert torch.allclose(s.predict_x0(s.q_sample(x0, t, noise), t, noise), x0, atol=1e-3)


def test_sampling_timesteps_are_even_descending_and_end_at_zero():
    ts = sampling_timesteps(1000, 50)
    assert len(ts) == len(set(ts)) == 50 and ts[0] == 999 and ts[-1] == 0 and ts == sorted(ts, reverse=True)
    assert sampling_timesteps(10, None) == list(range(9, -1, -1)) == sampling_timesteps(10, 20)
    assert sampling_timesteps(1000, 1) == [999]


def oracle(x0: torch.Tensor, schedule: NoiseSchedule):
    """The exact noise of ``x_t`` given the clean image (float64 host alpha-bars)."""
    abar = torch.tensor(schedule.alpha_bars, dtype=torch.float64)

    def eps_fn(x, t):
        ab = abar[t].view(-1, *([1] * (x.dim() - 1))).to(x.dtype)
        return (x - ab.sqrt() * x0) / (1 - ab).sqrt()

    return eps_fn


@pytest.mark.parametrize("kind", ["linear", "cosine"])
@pytest.mark.parametrize("sampler,steps,eta", [("ddpm", None, 0.0), ("ddpm", 25, 0.0), ("ddim", 50, 0.0),
                                               ("ddim", 10, 1.0), ("ddim", 1, 0.0)])
def test_a_perfect_noise_predictor_makes_the_samplers_return_the_target(kind, sampler, steps, eta):
    s = NoiseSchedule(1000, kind)
    g = torch.Generator().manual_seed(1)
    x0 = torch.rand(2, 3, 8, 8, generator=g, dtype=torch.float64) * 2 - 1
    x_T = torch.randn(x0.shape, generator=g, dtype=torch.float64)
    out = sample(oracle(x0, s), x_T, s, sampler, steps, eta, generator=g)
    assert torch.allclose(out, x0, atol=1e-9)
    if steps != 1:  # one step from t = T-1 divides by sqrt(abar_T) (5e-5 for cosine): beyond float32
        # In float32 too, with clipping on (the target is inside [-1, 1]).
        out32 = sample(oracle(x0.float(), s), x_T.float(), s, sampler, steps, eta, generator=g, clip=1.0)
        assert torch.allclose(out32, x0.float(), atol=1e-5)


def test_deterministic_ddim_follows_the_forward_process_exactly():
    # With the true noise eps0 of x_T, every DDIM(eta=0) iterate is q_sample(x0, s, eps0).
    s = NoiseSchedule(1000, "linear")
    g = torch.Generator().manual_seed(2)
    x0 = torch.rand(2, 3, 4, 4, generator=g, dtype=torch.float64) * 2 - 1
    eps0 = torch.randn(x0.shape, generator=g, dtype=torch.float64)
    x_T = math.sqrt(s.alpha_bar(999)) * x0 + math.sqrt(1 - s.alpha_bar(999)) * eps0
    seen = []
    ddim_sample(oracle(x0, s), x_T, s, steps=20, eta=0.0, on_step=lambda t, x: seen.append((t, x)))
    assert [t for t, _ in seen] == sampling_timesteps(1000, 20)[1:] + [-1]
    for t, x in seen:
        ab = s.alpha_bar(t)
        assert torch.allclose(x, math.sqrt(ab) * x0 + math.sqrt(1 - ab) * eps0, atol=1e-9), t


def test_ddpm_iterates_have_the_forward_marginals():
    # With the oracle, x_s ~ q(x_s | x_t, x0) applied to x_t ~ q(x_t | x0) gives x_s ~ q(x_s | x0).
    s = NoiseSchedule(1000, "linear")
    g = torch.Generator().manual_seed(3)
    n = 20_000
    x0 = torch.full((n, 1, 1, 1), 0.7, dtype=torch.float64)
    ab_T = s.alpha_bar(999)
    x_T = math.sqrt(ab_T) * x0 + math.sqrt(1 - ab_T) * torch.randn(x0.shape, generator=g, dtype=torch.float64)
    seen = {}
    ddpm_sample(oracle(x0, s), x_T, s, steps=20, generator=g, on_step=lambda t, x: seen.__setitem__(t, x.clone()))
    for t in sampling_timesteps(1000, 20)[1:-1:4]:
        ab = s.alpha_bar(t)
        x = seen[t]
        assert x.mean().item() == pytest.approx(math.sqrt(ab) * 0.7, abs=5 * math.sqrt((1 - ab) / n)), t
        assert x.var().item() == pytest.approx(1 - ab, rel=0.05), t


def test_ddim_with_eta_one_over_all_steps_is_ddpm():
    s = NoiseSchedule(200, "cosine")
    x_T = torch.randn(2, 3, 4, 4, generator=torch.Generator().manual_seed(4), dtype=torch.float64)

    def eps_fn(x, t):  # any predictor: the two update rules must agree step for step
        return 0.3 * torch.tanh(x) + 1e-3 * t.view(-1, 1, 1, 1)

    a = ddpm_sample(eps_fn, x_T, s, generator=torch.Generator().manual_seed(5))
    b = ddim_sample(eps_fn, x_T, s, steps=None, eta=1.0, generator=torch.Generator().manual_seed(5))
    assert torch.allclose(a, b, atol=1e-9)
    c = ddim_sample(eps_fn, x_T, s, steps=None, eta=0.0)
    assert not torch.allclose(a, c, atol=1e-3)  # eta matters


def test_unknown_sampler_is_a_config_error():
    s = NoiseSchedule(10)
    with pytest.raises(ConfigError, match="unknown sampler 'euler'"):
        sample(lambda x, t: x, torch.zeros(1, 1, 2, 2), s, "euler")

"""The shared loss callables against hand computation."""

import math

import pytest
import torch

from lit_gans.errors import ConfigError
from lit_gans.losses import (
    adversarial_loss,
    cycle_consistency_loss,
    d_hinge_loss,
    d_lsgan_loss,
    d_nonsat_loss,
    d_vanilla_loss,
    diversity_sensitive_loss,
    g_adversarial_loss,
    g_lsgan_loss,
    g_nonsat_loss,
    g_vanilla_loss,
    identity_loss,
    r1_penalty,
    style_reconstruction_loss,
)


def test_hinge_by_hand():
    real = torch.tensor([2.0, 0.5, -1.0])  # relu(1-r) = 0, 0.5, 2
    fake = torch.tensor([-2.0, 0.0, 1.0])  # relu(1+f) = 0, 1, 2
    assert d_hinge_loss(real, fake).item() == pytest.approx(2.5 / 3 + 3 / 3)
    assert g_adversarial_loss(fake).item() == pytest.approx(1 / 3)
    # Logits at 0: the hinge loss sits at 2 (the seed's "d_loss near 2").
    assert d_hinge_loss(torch.zeros(4), torch.zeros(4)).item() == 2.0


def test_nonsat_and_vanilla_by_hand():
    real, fake = torch.tensor([1.0, -2.0]), torch.tensor([0.5, 3.0])
    sp = lambda x: math.log1p(math.exp(x))  # noqa: E731
    want_d = (sp(-1.0) + sp(2.0)) / 2 + (sp(0.5) + sp(3.0)) / 2
    assert d_nonsat_loss(real, fake).item() == pytest.approx(want_d, rel=1e-6)
    assert d_vanilla_loss(real, fake).item() == pytest.approx(want_d, rel=1e-6)
    want_g = (sp(-0.5) + sp(-3.0)) / 2
    assert g_nonsat_loss(fake).item() == pytest.approx(want_g, rel=1e-6)
    assert g_vanilla_loss(fake).item() == pytest.approx(want_g, rel=1e-6)


def test_lsgan_by_hand():
    real, fake = torch.tensor([1.0, 0.0]), torch.tensor([0.5, -1.0])
    assert d_lsgan_loss(real, fake).item() == pytest.approx((0 + 1) / 2 + (0.25 + 1) / 2)
    assert g_lsgan_loss(fake).item() == pytest.approx((0.25 + 4) / 2)


def test_adversarial_registry_and_error():
    assert adversarial_loss("hinge").d is d_hinge_loss
    with pytest.raises(ConfigError, match="unknown adversarial loss 'wgan'"):
        adversarial_loss("wgan")


def test_r1_is_mean_over_batch_of_sum_of_squared_grads():
    # D(x) = sum(w * x^2) per sample: grad = 2 w x, so R1 = mean_b sum((2 w x_b)^2).
    torch.manual_seed(0)
    x = torch.randn(3, 2, 4, 4, requires_grad=True)
    w = torch.randn(2, 4, 4)
    logits = (w * x**2).flatten(1).sum(1)
    want = ((2 * w * x.detach()) ** 2).flatten(1).sum(1).mean()
    got = r1_penalty(logits, x)
    assert got.item() == pytest.approx(want.item(), rel=1e-5)
    assert got.requires_grad  # it can be minimised (create_graph=True)
    (gw,) = torch.autograd.grad(got, x)
    assert torch.isfinite(gw).all()


def test_l1_losses_by_hand():
    a = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    b = torch.tensor([[1.5, 2.0], [1.0, 4.0]])
    for fn in (style_reconstruction_loss, cycle_consistency_loss, identity_loss):
        assert fn(a, b).item() == pytest.approx((0.5 + 0 + 2 + 0) / 4)


def test_diversity_margin_clamps_only_above():
    a, b = torch.zeros(2, 3), torch.full((2, 3), 0.8)
    assert diversity_sensitive_loss(a, b).item() == pytest.approx(0.8)
    assert diversity_sensitive_loss(a, b, margin=0.5).item() == pytest.approx(0.5)
    assert diversity_sensitive_loss(a, b, margin=1.0).item() == pytest.approx(0.8)
    # Clamped: no gradient pushes past the margin.
    b.requires_grad_(True)
    diversity_sensitive_loss(a, b, margin=0.5).backward()
    assert b.grad.abs().sum() == 0


@pytest.mark.parametrize("mode", ["hinge", "nonsat", "vanilla", "lsgan"])
def test_discriminator_halves_add_up(mode):
    torch.manual_seed(1)
    real, fake = torch.randn(4, 1, 3, 3), torch.randn(4, 1, 3, 3)
    adv = adversarial_loss(mode)
    assert (adv.real(real) + adv.fake(fake)).item() == pytest.approx(adv.d(real, fake).item(), rel=1e-6)

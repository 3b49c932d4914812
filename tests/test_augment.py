"""The discriminator augmentation modules (no Lightning): identities, per-op effects, gradients, latents,
dtype/memory format, and StyleGAN2-ADA's heuristic through the callback."""

from types import SimpleNamespace

import pytest
import torch

from lit_gans.augment import (
    ADA_OPS,
    POLICIES,
    AdaptiveAugment,
    DiscriminatorAugment,
    adjust_probability,
    build_augment,
)
from lit_gans.callbacks import AdaptiveAugmentation
from lit_gans.errors import ConfigError


def images(b=16, c=3, size=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, c, size, size, generator=g) * 2 - 1


def test_empty_diffaugment_policy_is_the_identity():
    aug = DiscriminatorAugment("diffaugment", policy="")
    x = images()
    assert aug(x) is x


def test_ada_at_p0_is_the_identity():
    aug = DiscriminatorAugment("ada", ops=ADA_OPS, p=0.0)
    x = images()
    torch.testing.assert_close(aug(x), x, atol=1e-5, rtol=0)


@pytest.mark.parametrize("op", ADA_OPS)
def test_every_ada_op_changes_the_batch_at_p1(op):
    torch.manual_seed(0)
    x = images()
    y = AdaptiveAugment([op])(x, torch.tensor(1.0))
    changed = (y - x).flatten(1).abs().amax(1) > 1e-3
    assert changed.any(), op
    if op not in ("xflip", "rotate90", "xint"):  # those draw the identity with probability 1/2, 1/4, ~1/9
        assert changed.float().mean() > 0.9, op


@pytest.mark.parametrize("policy", POLICIES)
def test_every_diffaugment_policy_changes_every_sample(policy):
    torch.manual_seed(0)
    x = images()
    y = DiscriminatorAugment("diffaugment", policy=policy)(x)
    assert ((y - x).flatten(1).abs().amax(1) > 1e-3).float().mean() > 0.8


def test_ops_are_drawn_per_sample_with_probability_p():
    torch.manual_seed(0)
    x = images(b=512, size=4)
    y = AdaptiveAugment(["brightness"])(x, torch.tensor(0.3))
    changed = ((y - x).flatten(1).abs().amax(1) > 1e-6).float().mean()
    assert abs(changed.item() - 0.3) < 0.06


def test_xflip_and_integer_translation_move_pixels_exactly():
    torch.manual_seed(0)
    x = images()
    y = AdaptiveAugment(["xflip"])(x, torch.tensor(1.0))
    for xi, yi in zip(x, y, strict=True):
        assert torch.allclose(yi, xi, atol=1e-5) or torch.allclose(yi, xi.flip(-1), atol=1e-5)
    # integer shifts with reflection padding only move values: every output value is an input value
    y = AdaptiveAugment(["xint"])(x, torch.tensor(1.0))
    assert ((y.flatten(1)[:, :, None] - x.flatten(1)[:, None, :]).abs().amin(-1) < 1e-4).all()


def test_translation_and_cutout_zero_what_they_uncover():
    torch.manual_seed(0)
    ones = torch.ones(32, 3, 16, 16)
    y = DiscriminatorAugment("diffaugment", policy="cutout")(ones)
    zeros = (y == 0).flatten(1).float().mean(1)
    assert ((zeros > 0) & (zeros <= 0.25 + 1e-6)).all()  # a hole of at most half the side per axis
    y = DiscriminatorAugment("diffaugment", policy="translation")(ones)
    assert set(y.unique().tolist()) <= {0.0, 1.0}


@pytest.mark.parametrize("kind,kw", [("diffaugment", {"policy": "color,translation,cutout"}),
                                     ("ada", {"ops": ADA_OPS, "p": 1.0})])
def test_gradients_flow_through_the_augmentation(kind, kw):
    torch.manual_seed(0)
    x = images(b=4).requires_grad_(True)
    DiscriminatorAugment(kind, **kw)(x).square().sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_pix2pix_pairs_get_one_transform():
    """A (source, target) pair of identical images stays identical: geometry and colour are drawn per pair."""
    torch.manual_seed(0)
    img = images(b=8)
    aug = DiscriminatorAugment("ada", ops=[*ADA_OPS], p=1.0, channels=6, ada={})
    out = aug(torch.cat([img, img], dim=1))
    torch.testing.assert_close(out[:, :3], out[:, 3:])
    out = DiscriminatorAugment("diffaugment", policy="color,translation,cutout", channels=6)(torch.cat([img, img], 1))
    torch.testing.assert_close(out[:, :3], out[:, 3:])


def test_latents_allow_only_flips_translation_and_cutout():
    with pytest.raises(ConfigError, match="'brightness' is a colour op that 4-channel latents do not allow"):
        build_augment({"kind": "ada"}, channels=4)
    with pytest.raises(ConfigError, match="'color' is a colour op"):
        build_augment({"kind": "diffaugment", "policy": "color,translation"}, channels=4, latent=True)
    aug = build_augment({"kind": "ada", "ops": ["xflip", "xint", "cutout"], "p": 1.0}, channels=4, latent=True)
    assert aug(images(c=4)).shape == (16, 4, 16, 16)
    assert build_augment({"kind": "diffaugment", "policy": "translation,cutout"}, channels=4) is not None


def test_dtype_and_memory_format_are_kept():
    x = images(b=4).to(torch.bfloat16).contiguous(memory_format=torch.channels_last)
    y = DiscriminatorAugment("ada", ops=ADA_OPS, p=1.0)(x)
    assert y.dtype == torch.bfloat16 and y.is_contiguous(memory_format=torch.channels_last)


def test_apa_replaces_reals_by_detached_fakes_with_probability_p():
    torch.manual_seed(0)
    real, fake = torch.zeros(400, 1, 2, 2), torch.ones(400, 1, 2, 2, requires_grad=True)
    aug = DiscriminatorAugment("apa", p=0.25)
    shown = aug.pseudo_real(real, fake)
    assert not shown.requires_grad
    assert abs(shown[:, 0, 0, 0].mean().item() - 0.25) < 0.07
    assert DiscriminatorAugment("ada").pseudo_real(real, fake) is real


def test_adjust_probability_moves_p_at_the_configured_speed():
    p = torch.tensor(0.5)
    up = adjust_probability(p, torch.tensor(0.7), 0.6, images=64, kimg=0.64)  # 64 / 640 = 0.1 per update
    down = adjust_probability(p, torch.tensor(0.5), 0.6, images=64, kimg=0.64)
    assert up.item() == pytest.approx(0.6) and down.item() == pytest.approx(0.4)
    assert adjust_probability(torch.tensor(0.95), torch.tensor(1.0), 0.6, 64, 0.64).item() == 1.0
    assert adjust_probability(torch.tensor(0.05), torch.tensor(-1.0), 0.6, 64, 0.64).item() == 0.0


class _Module:
    """What the callback reads from a LightningModule: the pipeline and ``log``."""

    def __init__(self, augment):
        self.augment = augment
        self.logged: dict[str, list[float]] = {}

    def log(self, name, value, **kwargs):
        self.logged.setdefault(name, []).append(float(value))


def test_heuristic_raises_p_above_target_and_lowers_it_below():
    """Synthetic logits: 90% positive (r_t = 0.8 > 0.6) for 5 updates, then 30% (r_t = -0.4): p climbs by
    images / (kimg * 1000) per update, then falls at the same speed."""
    aug = DiscriminatorAugment("ada", p=0.0)
    module = _Module(aug)
    trainer = SimpleNamespace(world_size=1)
    cb = AdaptiveAugmentation(interval=2, target=0.6, kimg=0.08)  # 2 batches x 4 images / 80 = 0.1
    batch = {"x": torch.zeros(4, 3, 8, 8)}
    logits_hi = torch.tensor([1.0] * 9 + [-1.0]).repeat(4)[:40].view(4, 10)
    logits_lo = torch.tensor([1.0] * 3 + [-1.0] * 7).repeat(4).view(4, 10)
    ps = []
    for i in range(20):
        aug.observe(logits_hi if i < 10 else logits_lo)
        cb.on_train_batch_end(trainer, module, None, batch, i)
        ps.append(round(aug.p.item(), 6))
    assert ps[1::2] == pytest.approx([0.1, 0.2, 0.3, 0.4, 0.5, 0.4, 0.3, 0.2, 0.1, 0.0])
    assert ps[0] == 0.0 and module.logged["aug/rt"][1] == pytest.approx(0.8)
    assert module.logged["aug/rt"][-1] == pytest.approx(-0.4)
    assert module.logged["aug/p"] == pytest.approx(ps, abs=1e-6)


def test_p_survives_a_state_dict_round_trip():
    aug = DiscriminatorAugment("ada")
    aug.p.fill_(0.37)
    aug.observe(torch.ones(4))
    state = aug.state_dict()
    assert set(state) == {"p"}  # the statistics since the last update are not saved
    fresh = DiscriminatorAugment("ada")
    fresh.load_state_dict(state)
    assert fresh.p.item() == pytest.approx(0.37)
    cb = AdaptiveAugmentation(interval=4)
    cb.batches_trained, cb.images = 6, 8
    other = AdaptiveAugmentation(interval=4)
    other.load_state_dict(cb.state_dict())
    assert (other.batches_trained, other.images) == (6, 8)

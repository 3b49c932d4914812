"""The pix2pix loss spec: sub-specs, groups, per-group totals and the loss keys that weight each term."""

import pytest
import torch
from omegaconf import OmegaConf
from test_pix2pix_losses import save_random_vgg19

from lit_gans.errors import ConfigError
from lit_gans.losses import g_lsgan_loss, make_objective, pixel_loss, sobel_loss
from lit_gans.losses.pix2pix_spec import TOTALS, pix2pix

BASIC = {"G_GAN", "G_L1", "D_real", "D_fake"}
EXTENDED = BASIC | {"G_L2", "G_SOBEL", "G_LAP"}


@pytest.fixture(scope="module")
def vgg_file(tmp_path_factory):
    return save_random_vgg19(tmp_path_factory.mktemp("vgg") / "vgg19.pth")


def test_every_subspec_has_its_terms(vgg_file):
    want = {"basic": BASIC, "extended": EXTENDED, "basic+vgg": BASIC | {"G_VGG"},
            "extended+vgg": EXTENDED | {"G_VGG"}}
    for subspec, names in want.items():
        terms = {t.name: t for t in pix2pix(subspec=subspec, vgg_weights=vgg_file)}
        assert set(terms) == names, subspec
        assert all(t.group == ("D" if n.startswith("D_") else "G") for n, t in terms.items())
    obj = make_objective(pix2pix, {"subspec": "extended+vgg", "vgg_weights": vgg_file}, TOTALS)
    assert {n: obj.weight(n) for n in obj.terms} == {"G_GAN": 1.0, "G_L1": 100.0, "G_L2": 0.0, "G_SOBEL": 3.0,
                                                     "G_LAP": 1.0, "G_VGG": 10.0, "D_real": 0.5, "D_fake": 0.5}
    assert {n for n, t in obj.terms.items() if t.returns_map} == {"G_L1", "G_L2", "G_SOBEL", "G_LAP"}
    with pytest.raises(ConfigError, match="unknown loss.subspec 'fancy'"):
        pix2pix("fancy")


def test_per_tag_totals_weight_each_term():
    obj = make_objective(pix2pix, {"subspec": "extended", "lambda_l2": 2.0, "lambda_sobel": 4.0, "lambda_l1": 50.0},
                         TOTALS)
    torch.manual_seed(0)
    fake, real = torch.rand(2, 3, 8, 8) * 2 - 1, torch.rand(2, 3, 8, 8) * 2 - 1
    d_real, d_fake = torch.randn(2, 1, 6, 6), torch.randn(2, 1, 6, 6)
    obj.start_step()
    obj.compute("D_real", d_real)
    obj.compute("D_fake", d_fake)
    g_gan = obj.compute("G_GAN", d_fake)
    vals = {n: obj.compute(n, fake, real) for n in ("G_L1", "G_L2", "G_SOBEL", "G_LAP")}
    bce = torch.nn.functional.binary_cross_entropy_with_logits
    want_d = 0.5 * bce(d_real, torch.ones_like(d_real)) + 0.5 * bce(d_fake, torch.zeros_like(d_fake))
    assert obj.total("D").item() == pytest.approx(want_d.item(), rel=1e-6)
    assert vals["G_L1"].item() == pytest.approx(pixel_loss(fake, real).item())
    assert vals["G_SOBEL"].item() == pytest.approx(sobel_loss(fake, real).item())
    want_g = g_gan + 50 * vals["G_L1"] + 2 * vals["G_L2"] + 4 * vals["G_SOBEL"] + 1 * vals["G_LAP"]
    assert obj.total("G").item() == pytest.approx(want_g.item(), rel=1e-6)
    s = obj.scalars()
    assert set(s) == {"G/G_tot", "D/D_tot", "G/G_GAN", "G/G_L1", "G/G_L2", "G/G_SOBEL", "G/G_LAP", "D/D_real",
                      "D/D_fake"}
    assert set(obj.last_maps) == {"G_L1", "G_L2", "G_SOBEL", "G_LAP"}
    assert obj.last_maps["G_SOBEL"].shape == (2, 1, 8, 8)


def test_config_composes_subspec_weights_and_adversarial_mode(make_cfg, vgg_file):
    cfg = make_cfg("model=pix2pix", "loss.subspec=extended+vgg", "loss.lambda_l1=50", "loss.lambda_vgg=5",
                   f"loss.vgg_weights={vgg_file}", tiny=False)
    assert cfg.loss.adversarial == "vanilla"
    obj = make_objective(pix2pix, OmegaConf.to_container(cfg.loss, resolve=True), TOTALS)
    assert set(obj.terms) == EXTENDED | {"G_VGG"}
    assert obj.weight("G_L1") == 50.0 and obj.weight("G_VGG") == 5.0 and obj.weight("G_GAN") == 1.0
    assert obj.totals == {"G": "G_tot", "D": "D_tot"}
    # loss.adversarial on the command line changes the adversarial mode and keeps pix2pix's weights.
    cfg = make_cfg("model=pix2pix", "loss.adversarial=lsgan", tiny=False)
    assert cfg.loss.adversarial == "lsgan" and cfg.loss.lambda_l1 == 100.0
    obj = make_objective(pix2pix, OmegaConf.to_container(cfg.loss, resolve=True), TOTALS)
    assert obj.fn("G_GAN") is g_lsgan_loss and set(obj.terms) == BASIC

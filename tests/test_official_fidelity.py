"""Where a preset says it follows the official code, it does: CUT's anti-aliased discriminator and Xavier init,
the paper's R1 strength, StarGAN v2's reference-path diversity term, and the CelebA-HQ high-pass filter with its
face-alignment network. Each is compared with a transcription of the published definition
(tests/official_reference.py) on the same weights and inputs."""

import os

import official_reference as official
import pytest
import torch
from torch import nn

from conftest import compose_config
from lit_gans.errors import ConfigError
from lit_gans.losses.regularizers import r1_penalty
from lit_gans.nets.antialias import BlurDownsample
from lit_gans.nets.fan import face_masks, load_fan
from lit_gans.nets.patchgan import PatchDiscriminator
from lit_gans.nets.stargan_v2 import AdainResBlk, Discriminator, Generator

CONF_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "conf")


# ---------------------------------------------------------------------------------------------- CUT
@pytest.mark.parametrize("antialias", [True, False], ids=["cut-default", "no_antialias"])
def test_patchgan_logits_equal_the_official_nlayer_discriminator(antialias):
    torch.manual_seed(0)
    ours = PatchDiscriminator(3, 16, 3, "instance", antialias=antialias, init="xavier")
    theirs = official.NLayerDiscriminator(3, 16, 3, official.instance_norm(), no_antialias=not antialias)
    missing, unexpected = theirs.load_state_dict(ours.state_dict(), strict=False)
    assert unexpected == [] and all(k.endswith(".filt") for k in missing)  # only the fixed blur filters differ
    x = torch.randn(2, 3, 64, 64)
    assert torch.allclose(ours(x), theirs(x), atol=1e-6)
    assert any(isinstance(m, BlurDownsample) for m in ours.modules()) == antialias


@pytest.mark.parametrize("kind", ["xavier", "normal"])
def test_init_draws_the_official_weights(kind):
    """Same seed, same architecture: lit_gans' init gives the weights the official init_weights gives."""
    torch.manual_seed(3)
    ours = PatchDiscriminator(3, 8, 3, "batch", antialias=True, init=kind)
    torch.manual_seed(3)
    theirs = official.NLayerDiscriminator(3, 8, 3, nn.BatchNorm2d, no_antialias=False)
    official.init_weights(theirs, kind, 0.02)
    a, b = ours.state_dict(), theirs.state_dict()
    assert [k for k in a if not torch.equal(a[k], b[k])] == []


def test_cut_defaults_are_the_official_ones_and_cyclegan_keeps_normal_init(tmp_path):
    from lit_gans.train import build

    def model_of(name, *extra):
        cfg = compose_config([f"model={name}", "model.ngf=8", "model.ndf=16", "model.n_blocks=2", "logger=[]", *extra],
                             str(tmp_path))
        return build(cfg)[1]

    cut = model_of("cut", "model.nce_dim=32")
    d = cut.D_B["basic"]
    assert any(isinstance(m, BlurDownsample) for m in d.modules()) and cut.net_cfg["init"] == "xavier"
    for name, net in (("G", cut.G), ("D", d), ("F", cut.patch_heads)):
        for m in net.modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)) and m.weight.numel() >= 4096:
                fan_in, fan_out = nn.init._calculate_fan_in_and_fan_out(m.weight)
                want = 0.02 * (2.0 / (fan_in + fan_out)) ** 0.5  # Xavier-normal's std with gain 0.02
                assert m.weight.std().item() == pytest.approx(want, rel=0.15), (name, m)
                assert m.bias is None or not m.bias.any()
    cyclegan = model_of("cyclegan")
    convs = [m for m in cyclegan.G_A.modules() if isinstance(m, nn.Conv2d) and m.weight.numel() >= 4096]
    assert all(m.weight.std().item() == pytest.approx(0.02, rel=0.1) for m in convs)
    assert not any(isinstance(m, BlurDownsample) for m in cyclegan.D_A.modules())


# ---------------------------------------------------------------------------------------------- StarGAN v2 R1
def test_paper_presets_apply_the_official_r1_strength_and_list_their_differences(tmp_path):
    for overrides in (["loss=nonsat_r1"], ["experiment=stargan_afhq"]):
        cfg = compose_config(overrides, str(tmp_path))
        assert cfg.loss.w_r1 == 0.5 and cfg.loss.r1_interval == 1 and cfg.loss.adversarial == "nonsat", overrides
    afhq = compose_config(["experiment=stargan_afhq"], str(tmp_path))
    assert list(afhq.model.ds_paths) == ["latent", "ref"] and afhq.model.ds_detach_second is True
    header = open(os.path.join(CONF_DIR, "experiment", "stargan_afhq.yaml")).read()
    for difference in ("Updates:", "D's real batch:", "R1:", "EMA:"):
        assert f"# - {difference}" in header
    assert compose_config([], str(tmp_path)).loss.w_r1 == 1.0  # the seed's hinge_r1 keeps its contract
    # w_r1 0.5 x lit_gans' r1 = the official lambda_reg 1 x r1_reg, on the same discriminator and batch.
    torch.manual_seed(0)
    d = Discriminator(img_size=16, dim=8, max_conv_dim=16, num_domains=2)
    x = torch.randn(4, 3, 16, 16, requires_grad=True)
    y = torch.tensor([0, 1, 1, 0])
    ours = 0.5 * r1_penalty(d(x, y), x)
    theirs = 1.0 * official.r1_reg(d(x, y), x)
    assert ours.item() == pytest.approx(theirs.item(), rel=1e-6)


# ---------------------------------------------------------------------------------------------- StarGAN v2 ds
def _stargan(**kw):
    from lit_gans.models import StarGANv2

    loss = {"adversarial": "hinge"}
    return StarGANv2(img_size=16, dim=8, max_conv_dim=16, style_dim=8, latent_dim=4, mapping_dim=16, loss=loss, **kw)


@pytest.mark.parametrize("detach", [True, False])
def test_reference_path_diversity_and_the_detached_second_fake(detach):
    model = _stargan(ds_paths=["latent", "ref"], ds_detach_second=detach)
    assert model.uses_second_reference
    lat, lat2, ref, ref2 = (torch.randn(2, 3, 16, 16, requires_grad=True) for _ in range(4))
    model.objective.start_step()
    model.diversity(lat, lat2, ref, ref2)
    ds = model.objective.value("ds")
    want = (lat - lat2).abs().mean() + (ref - ref2).abs().mean()
    assert ds.item() == pytest.approx(want.item(), rel=1e-6)
    grads = torch.autograd.grad(ds, [lat, lat2, ref2], allow_unused=True)
    assert grads[0] is not None and (grads[1] is None) == detach and (grads[2] is None) == detach
    with pytest.raises(ConfigError, match=r"model.ds_paths=\['lattent'\]: choose one or both of latent, ref"):
        _stargan(ds_paths=["lattent"])
    assert not _stargan().uses_second_reference


def test_x_ref2_is_loaded_only_for_a_model_that_reads_it(tmp_path):
    from lit_gans.train import build

    tiny = ["model.img_size=16", "model.dim=8", "model.max_conv_dim=16", "model.mapping_dim=32", "model.style_dim=8",
            "model.latent_dim=4", "data.batch_size=4", "data.per_domain=8", "data.val_per_domain=2", "logger=[]"]
    for paths, wanted in (("[latent]", False), ("[latent,ref]", True)):
        datamodule, model, _ = build(compose_config([*tiny, f"model.ds_paths={paths}"], str(tmp_path)))
        datamodule.setup("fit")
        assert datamodule.with_ref2 is wanted and ("x_ref2" in datamodule.train_set[0]) is wanted


# ---------------------------------------------------------------------------------------------- high-pass filter
def test_high_pass_generator_equals_the_official_forward():
    torch.manual_seed(0)
    g = Generator(256, dim=8, max_conv_dim=32, style_dim=8, w_hpf=1.0)
    assert len(g.encode) == 5 + 2  # the official repeat_num + 1 down-sampling blocks at 256 px, + 2 bottleneck
    assert all(isinstance(b, AdainResBlk) and b.w_hpf == 1.0 for b in g.decode)
    x, s = torch.randn(2, 3, 256, 256), torch.randn(2, 8)
    masks = (torch.rand(2, 1, 256, 256), torch.rand(2, 1, 256, 256))
    ours = g(x, s, masks)
    theirs = official.generator_forward(g, official.HighPass(1.0), x, s, masks)
    assert torch.allclose(ours, theirs, atol=1e-5)
    assert not torch.allclose(ours, g(x, s), atol=1e-3)  # the masked skip connections do act
    block, h = g.decode[-1], torch.randn(1, 16, 8, 8)
    assert torch.equal(block(h, s[:1]), block._residual(h, s[:1]))  # no identity path, as the official block


def test_face_masks_equal_the_official_preprocess():
    torch.manual_seed(0)
    heatmaps = torch.rand(2, 98, 256, 256) ** 4  # peaky, like landmark heatmaps
    ours = face_masks(heatmaps.clone())
    theirs = official.preprocess(heatmaps.clone())
    for a, b in zip(ours, theirs, strict=True):
        assert a.shape == (2, 1, 256, 256) and torch.allclose(a, b, atol=1e-6)


@pytest.fixture(scope="module")
def wing_ckpt(tmp_path_factory):
    """A FAN built here with the official modules, random weights and batch-norm statistics, saved as the
    official wing.ckpt is (a dict with state_dict)."""
    torch.manual_seed(0)
    fan = official.FAN()
    for m in fan.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    fan.eval()
    path = tmp_path_factory.mktemp("fan") / "wing.ckpt"
    torch.save({"state_dict": {k: v for k, v in fan.state_dict().items() if "num_batches_tracked" not in k}}, path)
    return path, fan


@pytest.mark.slow
def test_fan_loads_official_weights_and_gives_the_official_masks(wing_ckpt):
    path, theirs = wing_ckpt
    ours = load_fan(path)
    ours.train()  # stays in eval mode: its batch norms keep their running statistics
    assert not ours.training and not any(p.requires_grad for p in ours.parameters())
    x = torch.rand(1, 3, 64, 64) * 2 - 1
    for a, b in zip(ours.masks(x), theirs.get_heatmap(x), strict=True):
        assert torch.allclose(a, b, atol=1e-5)


def test_missing_or_foreign_fan_weights_are_one_line(tmp_path):
    with pytest.raises(ConfigError, match="^model.w_hpf > 0 needs the face-alignment network's weights"):
        load_fan(None)
    with pytest.raises(ConfigError, match=f"^model.fan_path={tmp_path}/wing.ckpt does not exist: .* never downloads"):
        load_fan(tmp_path / "wing.ckpt")
    torch.save({"state_dict": {"conv.weight": torch.zeros(1)}}, tmp_path / "other.ckpt")
    with pytest.raises(ConfigError, match="does not hold the FAN's weights"):
        load_fan(tmp_path / "other.ckpt")
    with pytest.raises(ConfigError, match="the high-pass filter works on RGB faces"):
        _stargan(w_hpf=1.0, in_channels=4)


@pytest.mark.slow
def test_a_high_pass_run_trains_and_its_checkpoint_translates_without_the_fan_file(make_cfg, tmp_path, wing_ckpt):
    from lit_gans.inference import load_model
    from lit_gans.train import train

    path, _ = wing_ckpt
    local = tmp_path / "wing.ckpt"
    local.write_bytes(open(path, "rb").read())
    cfg = make_cfg("model.img_size=32", "data.batch_size=2", "model.w_hpf=1",
                   f"model.fan_path={local}", "trainer.max_steps=2")
    train(cfg)
    local.unlink()  # the checkpoint carries the FAN's weights
    model, _ = load_model(tmp_path / "checkpoints" / "last.ckpt")
    assert model.fan is not None and torch.equal(model.fan.conv1.conv.weight, load_fan(path).conv1.conv.weight)
    out = model.translate(torch.rand(2, 3, 32, 32) * 2 - 1, 1)
    assert out.shape == (2, 3, 32, 32) and torch.isfinite(out).all()

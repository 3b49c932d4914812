"""pix2pix: the published network sizes, one training step against a hand computation, weights from the command
line, skipped zero-weight terms, the loss history, every sub-spec through Hydra, loss maps, latents, LR schedule."""

import copy
import json

import pytest
import torch
import torch.nn.functional as F
from helpers.capture import Capture
from lightning.pytorch.callbacks import Callback
from PIL import Image
from test_pix2pix_losses import save_random_vgg19

from conftest import read_scalars
from lit_gans.cli import user_errors
from lit_gans.errors import ConfigError
from lit_gans.losses import laplacian_loss, sobel_loss
from lit_gans.models import Pix2Pix
from lit_gans.models.pix2pix import batch_statistics
from lit_gans.nets.patchgan import PatchDiscriminator
from lit_gans.nets.unet import UnetGenerator
from lit_gans.train import build, train

# 32 px: a 5-level U-Net (no dropout level) and a PatchGAN whose 3 layers still fit.
TINY = ["model=pix2pix", "data.img_size=32", "data.size=8", "data.val_size=2", "data.batch_size=2", "model.ngf=8",
        "model.ndf=8"]
ONE_EPOCH = ["trainer.max_epochs=1", "trainer.limit_train_batches=2", "callbacks.model_checkpoint=null",
             "callbacks.image_grid.min_tile=0"]  # grid tiles at the images' own 32 px


def _count(net):
    return sum(p.numel() for p in net.parameters())


def test_published_parameter_counts():
    # pix2pix prints "[Network G] Total number of parameters : 54.414 M" (unet_256, batch norm) and
    # "[Network D] ... 2.769 M" (basic PatchGAN on 6 channels).
    g = UnetGenerator(3, 3, num_downs=8, ngf=64, norm="batch")
    assert _count(g) == 54_413_955
    assert sum(isinstance(m, torch.nn.Dropout) for m in g.modules()) == 3
    assert _count(PatchDiscriminator(6, 64, 3, "batch")) == 2_768_705
    assert Pix2Pix.levels_for(256, None) == 8 and Pix2Pix.levels_for(64, None) == 6
    with pytest.raises(ConfigError, match="not a power of two"):
        Pix2Pix.levels_for(48, None)
    with pytest.raises(ConfigError, match="lower num_downs"):
        Pix2Pix.levels_for(48, 5)


def test_unet_reaches_a_1x1_bottleneck_and_keeps_the_size():
    g = UnetGenerator(3, 3, num_downs=5, ngf=4)
    seen = []
    innermost = g.model
    while not isinstance(innermost.inner, torch.nn.Identity):
        innermost = innermost.inner
    innermost.down.register_forward_hook(lambda m, i, o: seen.append(o.shape))
    out = g(torch.randn(2, 3, 32, 32))
    assert seen == [(2, 32, 1, 1)] and out.shape == (2, 3, 32, 32) and out.abs().max() <= 1


@pytest.mark.parametrize("adversarial", ["vanilla", "lsgan"])
def test_training_step_equals_the_hand_computation(make_cfg, adversarial):
    # lr = 0: nothing changes during the step, so every term can be recomputed from a copy of the start.
    # Every weight comes from its loss key on the command line (G_L1: lambda_l1=50, the extended terms' lambdas).
    cfg = make_cfg(*TINY, *ONE_EPOCH, f"loss.adversarial={adversarial}", "loss.subspec=extended", "loss.lambda_l1=50",
                   "loss.lambda_l2=7", "loss.lambda_sobel=2", "loss.lambda_laplacian=0.5", "model.optimizer.lr=0",
                   "logger=[]", tiny=False)
    datamodule, model, trainer = build(cfg)
    start = copy.deepcopy(model)
    cap = Capture()
    trainer.callbacks.append(cap)
    trainer.fit(model, datamodule=datamodule)
    assert len(cap.steps) == 2
    G, D = start.generator.train(), start.discriminator.train()
    if adversarial == "vanilla":
        def adv(x, target):
            return F.binary_cross_entropy_with_logits(x, torch.full_like(x, float(target)))
    else:
        def adv(x, target):
            return (x - target).square().mean()
    for batch, got, _ in cap.steps:
        a, b = batch["A"], batch["B"]
        fake = G(a)
        d_real, d_fake = adv(D(torch.cat([a, b], 1)), 1), adv(D(torch.cat([a, fake], 1)), 0)
        g_gan = adv(D(torch.cat([a, fake], 1)), 1)
        l1, l2 = (fake - b).abs().mean(), (fake - b).square().mean()
        sob, lap = sobel_loss(fake, b), laplacian_loss(fake, b)
        want = {"D/D_real": d_real, "D/D_fake": d_fake, "D/D_tot": 0.5 * d_real + 0.5 * d_fake, "G/G_GAN": g_gan,
                "G/G_L1": l1, "G/G_L2": l2, "G/G_SOBEL": sob, "G/G_LAP": lap,
                "G/G_tot": g_gan + 50 * l1 + 7 * l2 + 2 * sob + 0.5 * lap}
        assert set(got) == set(want)
        for k, v in want.items():
            assert got[k].item() == pytest.approx(v.item(), rel=2e-4, abs=1e-6), k


def test_a_term_with_weight_zero_is_not_computed(make_cfg):
    cfg = make_cfg(*TINY, *ONE_EPOCH, "loss.subspec=extended", "loss.lambda_l1=0", "logger=[]", tiny=False)
    datamodule, model, trainer = build(cfg)
    calls = []
    fn = model.objective.terms["G_L1"].fn
    model.objective.terms["G_L1"].fn = lambda *a, **k: calls.append(1) or fn(*a, **k)
    cap = Capture()
    trainer.callbacks.append(cap)
    trainer.fit(model, datamodule=datamodule)
    assert calls == [] and "G_L1" not in model.objective.last_maps
    for _, got, computed in cap.steps:
        assert got["G/G_L1"].item() == 0.0 and "G_L1" not in computed and "G_L2" not in computed  # lambda_l2 0
        assert got["G/G_tot"].item() == pytest.approx(
            (got["G/G_GAN"] + 3 * got["G/G_SOBEL"] + got["G/G_LAP"]).item(), rel=1e-5)


def test_history_file_after_two_epochs(make_cfg, tmp_path):
    cfg = make_cfg(*TINY, "trainer.max_epochs=2", "trainer.limit_train_batches=3", tiny=False)
    train(cfg)
    s = read_scalars(str(tmp_path))
    lines = [json.loads(x) for x in open(tmp_path / "tensorboard" / "loss_history.jsonl")]
    assert [r["epoch"] for r in lines] == [1, 2] and [r["step"] for r in lines] == [3, 6]
    names = {"G/G_tot", "G/G_GAN", "G/G_L1", "D/D_tot", "D/D_real", "D/D_fake"}
    for r in lines:
        assert set(r["losses"]) == names
        assert {t: set(v) for t, v in r["tags"].items()} == {"G": {n for n in names if n[0] == "G"},
                                                             "D": {n for n in names if n[0] == "D"}}
        means = r["losses"]
        assert means["D/D_tot"] == pytest.approx(0.5 * (means["D/D_real"] + means["D/D_fake"]), rel=1e-5)
        assert means["G/G_tot"] == pytest.approx(means["G/G_GAN"] + 100 * means["G/G_L1"], rel=1e-5)
    # The epoch values are the means of the step values in TensorBoard.
    for name in names:
        steps = [v for _, v in s[f"{name}_step"]]
        assert len(steps) == 6
        assert [r["losses"][name] for r in lines] == pytest.approx([sum(steps[:3]) / 3, sum(steps[3:]) / 3],
                                                                   rel=1e-5)


@pytest.fixture(scope="module")
def vgg_file(tmp_path_factory):
    return save_random_vgg19(tmp_path_factory.mktemp("vgg") / "vgg19.pth")


@pytest.mark.parametrize("subspec", ["basic", "extended", "basic+vgg", "extended+vgg"])
def test_each_subspec_trains_through_hydra(make_cfg, tmp_path, subspec, vgg_file):
    cfg = make_cfg(*TINY, *ONE_EPOCH, f"loss.subspec={subspec}", "loss.lambda_l2=1", f"loss.vgg_weights={vgg_file}",
                   "callbacks.image_grid.every_n_steps=0", tiny=False)
    datamodule, model, trainer = build(cfg)
    trainer.fit(model, datamodule=datamodule)
    s = read_scalars(str(tmp_path))
    terms = ["G_GAN", "G_L1", "D_real", "D_fake"]
    terms += ["G_L2", "G_SOBEL", "G_LAP"] if subspec.startswith("extended") else []
    terms += ["G_VGG"] if subspec.endswith("+vgg") else []
    want = {f"{n[0]}/{n}" for n in terms} | {"G/G_tot", "D/D_tot"}
    assert {k[: -len("_step")] for k in s if k.endswith("_step")} == want
    for name in want:
        assert all(v > 0 for _, v in s[f"{name}_step"]), name
    # The VGG lives in the objective only: not a submodule, not in the checkpoint, not optimised.
    assert all(k.split(".")[0] in ("generator", "discriminator") for k in model.state_dict())
    optimised = sum(p.numel() for opt in trainer.optimizers for g in opt.param_groups for p in g["params"])
    assert optimised == _count(model.generator) + _count(model.discriminator)
    # The loss maps of the active map-producing terms are in TensorBoard and as PNG, one row per batch item.
    maps = ["G_L1"] + (["G_L2", "G_SOBEL", "G_LAP"] if subspec.startswith("extended") else [])
    png = Image.open(tmp_path / "tensorboard" / "loss_maps" / "step_0000002.png")
    assert png.size[0] == len(maps) * 34 + 2 and png.size[1] > 2 * 34 + 2  # the tiles under a row of titles
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    ea = EventAccumulator(str(tmp_path / "tensorboard"), size_guidance={"images": 0})
    ea.Reload()
    assert set(ea.Tags()["images"]) == {"samples/source-translated-target", "loss_maps/" + "-".join(maps)}


def test_loss_map_grid_shows_each_term_scaled_to_its_maximum(make_cfg, tmp_path):
    cfg = make_cfg(*TINY, *ONE_EPOCH, "loss.subspec=extended", "callbacks.image_grid.loss_maps=[G_SOBEL,G_L1]",
                   tiny=False)
    datamodule, model, trainer = build(cfg)
    trainer.fit(model, datamodule=datamodule)
    import torchvision

    grid = torchvision.transforms.functional.pil_to_tensor(
        Image.open(tmp_path / "tensorboard" / "loss_maps" / "step_0000002.png")).float() / 255
    assert grid.shape[2] == 2 * 34 + 2 and grid.shape[1] > 2 * 34 + 2
    grid = grid[:, -(2 * 34 + 2):]  # the tiles under the titles, columns in the order listed: G_SOBEL | G_L1
    for col, name in enumerate(["G_SOBEL", "G_L1"]):
        m = model.objective.last_maps[name]
        m = m / m.max()
        for row in range(2):
            cell = grid[0, 2 + 34 * row: 34 + 34 * row, 2 + 34 * col: 34 + 34 * col]
            assert torch.allclose(cell, m[row, 0], atol=1 / 255 + 1e-6), (name, row)


def test_grids_use_batch_statistics_without_touching_running_ones(make_cfg):
    cfg = make_cfg(*TINY, tiny=False)
    model = build(cfg)[1]
    g = model.generator
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    before = copy.deepcopy(g.state_dict())
    out = model.translate(x)
    assert all(torch.equal(v, before[k]) for k, v in g.state_dict().items() if "num_batches" not in k)
    with batch_statistics(g):
        assert not any(m.momentum for m in g.modules() if isinstance(m, torch.nn.BatchNorm2d))
    assert all(m.momentum == 0.1 for m in g.modules() if isinstance(m, torch.nn.BatchNorm2d))
    g.train()
    assert torch.allclose(out, g(x), atol=1e-6)  # train-mode normalisation (no dropout at 32 px)
    model.eval_mode = True
    g.eval()
    assert torch.allclose(model.translate(x), g(x), atol=1e-6) and not g.training


def test_lr_is_constant_then_decays_linearly_over_max_epochs(make_cfg):
    cfg = make_cfg(*TINY, "trainer.max_epochs=4", "trainer.limit_train_batches=1", "callbacks.model_checkpoint=null",
                   "logger=[]", tiny=False)
    datamodule, model, trainer = build(cfg)
    lrs = []

    class LR(Callback):
        def on_train_epoch_start(self, trainer, pl_module):
            lrs.append([opt.param_groups[0]["lr"] for opt in trainer.optimizers])

    trainer.callbacks.append(LR())
    trainer.fit(model, datamodule=datamodule)
    # n_epochs = n_epochs_decay = 2: factor 1, 1, then 1 - k/3.
    assert [x[0] for x in lrs] == pytest.approx([2e-4, 2e-4, 2e-4 * 2 / 3, 2e-4 / 3])
    assert all(a == b for a, b in lrs)
    opt = trainer.optimizers[0]
    assert opt.defaults["betas"] == (0.5, 0.999)


def test_latents_train_on_paired_latent_data(make_cfg, tmp_path):
    # model=pix2pix_latent on the built-in paired data as 4-channel latent-like tensors.
    cfg = make_cfg("model=pix2pix_latent", *TINY[1:], *ONE_EPOCH, "loss.subspec=extended", tiny=False)
    datamodule, model, trainer = build(cfg)
    cap = Capture()
    trainer.callbacks.append(cap)
    trainer.fit(model, datamodule=datamodule)
    assert model.latent_scale == pytest.approx(0.18215) and model.net_cfg["output_activation"] == "none"
    assert isinstance(model.generator.activation, torch.nn.Identity)
    for _, got, _ in cap.steps:
        assert all(torch.isfinite(v) for v in got.values()) and got["G/G_SOBEL"] > 0
    out = model.translate(torch.randn(2, 4, 32, 32) * 5)
    assert out.shape == (2, 4, 32, 32)


def test_paired_latent_file_and_vgg_needs_rgb(make_cfg, tmp_path):
    from lit_gans.latents.store import LatentSet, save_latents

    g = torch.Generator().manual_seed(0)
    n = 6
    data = LatentSet(latents=torch.randn(n, 4, 32, 32, generator=g) * 5, latents_b=torch.randn(n, 4, 32, 32, generator=g) * 5,
                     labels=torch.zeros(n, dtype=torch.long), split=torch.tensor([0, 0, 0, 0, 1, 1]),
                     layout="paired", domain_names=["pairs"], scaling_factor=0.13025)
    save_latents(data, tmp_path / "pairs.pt")
    cfg = make_cfg("model=pix2pix_latent", "data=latents", f"data.path={tmp_path / 'pairs.pt'}", "data.batch_size=2",
                   "model.ngf=8", "model.ndf=8", *ONE_EPOCH, "logger=[]", tiny=False)
    datamodule, model, trainer = build(cfg)
    trainer.fit(model, datamodule=datamodule)
    assert model.latent_scale == pytest.approx(0.13025) and model.net_cfg["in_channels"] == 4
    assert trainer.global_step == 4  # 2 batches x (D, G)


def test_vgg_config_errors_are_one_line_from_train_py(make_cfg, tmp_path, monkeypatch, capsys, vgg_file):
    # Raised in the model's constructor, inside Hydra's instantiate: train.py still prints one line.
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty"))
    with pytest.raises(SystemExit) as exit_, user_errors():
        build(make_cfg("model=pix2pix", "loss.subspec=basic+vgg", tiny=False))
    err = capsys.readouterr().err.strip().splitlines()
    assert exit_.value.code == 2 and len(err) == 1
    assert err[0].startswith("error: the VGG perceptual loss needs torchvision's VGG19 IMAGENET1K_V1 weights")
    with pytest.raises(SystemExit), user_errors():
        build(make_cfg("model=pix2pix_latent", "loss.subspec=basic+vgg", f"loss.vgg_weights={vgg_file}", tiny=False))
    assert "needs RGB targets, the model makes 4 channels" in capsys.readouterr().err


def test_bf16_mixed_keeps_structure_and_vgg_losses_in_float32(make_cfg, vgg_file):
    cfg = make_cfg(*TINY, *ONE_EPOCH, "trainer.precision=bf16-mixed", "loss.subspec=extended+vgg",
                   f"loss.vgg_weights={vgg_file}", "logger=[]", tiny=False)
    datamodule, model, trainer = build(cfg)
    dtypes = []

    class Dtypes(Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            dtypes.append({k: v.dtype for k, v in pl_module.objective._values.items()})

    trainer.callbacks.append(Dtypes())
    trainer.fit(model, datamodule=datamodule)
    assert len(dtypes) == 2
    for d in dtypes:
        assert d["G_SOBEL"] == d["G_LAP"] == d["G_VGG"] == d["G_L1"] == torch.float32
    assert all(torch.isfinite(v) for v in model.objective.scalars().values())


def test_paired_image_folders_set_the_unet_depth(make_cfg, tmp_path):
    from imagefiles import write_folder

    write_folder(tmp_path / "data" / "train" / "A", 4, size=(40, 40), seed=0)
    write_folder(tmp_path / "data" / "train" / "B", 4, size=(40, 40), seed=100)
    cfg = make_cfg("model=pix2pix", "data=paired", f"data.root={tmp_path / 'data'}", "data.load_size=36",
                   "data.crop_size=32", "data.num_workers=0", "data.batch_size=2", "model.ngf=8", "model.ndf=8",
                   *ONE_EPOCH, "logger=[]", tiny=False)
    datamodule, model, trainer = build(cfg)
    trainer.fit(model, datamodule=datamodule)
    assert model.net_cfg["img_size"] == 32 and model.net_cfg["num_downs"] == 5  # 32 px down to 1x1
    assert trainer.global_step == 4 and torch.isfinite(model.objective.scalars()["G/G_L1"])

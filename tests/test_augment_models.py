"""Discriminator augmentation inside the models: one pipeline for every discriminator input, R1 w.r.t. the
un-augmented reals, gradients to the generator through augmented fakes, the ADA schedule in a real run and
its checkpointed p, latents refused colour ops."""

import pytest
import torch

from conftest import read_scalars
from lit_gans.augment import DiscriminatorAugment
from lit_gans.cli import user_error
from lit_gans.errors import ConfigError
from lit_gans.train import build

RUN = ["trainer.max_epochs=1", "logger=[]", "callbacks.model_checkpoint=null"]
TINY_UNPAIRED = ["model.ngf=8", "model.ndf=8", "model.n_blocks=1", "data.img_size=32", "data.size=8"]


def record_inputs(module: torch.nn.Module) -> list[torch.Tensor]:
    seen: list[torch.Tensor] = []
    module.register_forward_hook(lambda m, args, out: seen.append(args[0]))
    return seen


def test_stargan_shows_reals_fakes_and_r1_reals_through_one_pipeline(make_cfg):
    cfg = make_cfg("aug=ada", "aug.p=1.0", "loss.r1_interval=2", "trainer.limit_train_batches=2", *RUN)
    datamodule, model, trainer = build(cfg)
    assert [type(m) for m in model.modules()].count(DiscriminatorAugment) == 1
    seen = record_inputs(model.augment)
    r1_inputs = []
    compute = model.objective.compute

    def compute_recording(name, *args):
        if name == "r1":
            r1_inputs.append(args[1])
        return compute(name, *args)

    model.objective.compute = compute_recording
    trainer.fit(model, datamodule=datamodule)
    b = 4
    # batch 0 (R1): reals for R1, fakes of both paths (D), the same fakes (G); batch 1: [reals; fakes] (D), fakes (G)
    assert [x.shape[0] for x in seen] == [b, 2 * b, 2 * b, 3 * b, 2 * b]
    assert len(r1_inputs) == 1 and r1_inputs[0] is seen[0]  # R1's gradient is taken w.r.t. the pipeline's input
    assert seen[0].is_leaf and seen[0].requires_grad and seen[0].dtype == torch.float32
    assert seen[2].requires_grad and not seen[1].requires_grad  # G's fakes carry the graph; D's are detached


@pytest.mark.parametrize("aug", [["aug=diffaugment"], ["aug=ada", "aug.p=1.0"]])
def test_generator_gradients_go_through_the_augmented_fakes(make_cfg, aug):
    cfg = make_cfg(*aug)
    _, model, _ = build(cfg)
    torch.manual_seed(0)
    x, y = torch.rand(4, 3, 16, 16) * 2 - 1, torch.tensor([0, 1, 2, 0])
    s = model.mapping_network(torch.randn(4, 4), y).detach()

    def generator_grads(show):
        model.zero_grad()
        model.discriminator(show(model.generator(x, s)), y).sum().backward()
        return torch.cat([p.grad.flatten() for p in model.generator.parameters() if p.grad is not None])

    torch.manual_seed(1)
    through_aug = generator_grads(model.augment_d)
    plain = generator_grads(lambda t: t)
    assert through_aug.abs().sum() > 0 and not torch.allclose(through_aug, plain)


def test_ada_schedule_in_a_run_logs_p_and_rt_and_checkpoints_p(make_cfg, tmp_path):
    # target -2: r_t is always above it, so p climbs 8 images / (0.032 * 1000) = 0.25 every 2 batches
    cfg = make_cfg("aug=ada", "aug.target=-2", "aug.interval=2", "aug.kimg=0.032", "trainer.limit_train_batches=4",
                   "trainer.max_epochs=1")
    datamodule, model, trainer = build(cfg)
    trainer.fit(model, datamodule=datamodule)
    scalars = read_scalars(str(tmp_path / "tensorboard"))
    assert [round(v, 6) for _, v in scalars["aug/p"]] == [0.0, 0.25, 0.25, 0.5]
    assert all(-1.0 <= v <= 1.0 for _, v in scalars["aug/rt"]) and len(scalars["aug/rt"]) == 3
    from lit_gans.models import StarGANv2

    path = tmp_path / "checkpoints" / "last.ckpt"
    ck = torch.load(path, weights_only=True)
    assert ck["state_dict"]["augment.p"].item() == pytest.approx(0.5)
    assert any(v.get("batches_trained") == 4 for k, v in ck["callbacks"].items() if "AdaptiveAugmentation" in k)
    again = StarGANv2.load_from_checkpoint(path)
    assert again.augment is not None and again.augment.p.item() == pytest.approx(0.5)


@pytest.mark.parametrize("model_name,aug,channels,midpoint", [
    ("cyclegan", ["aug=ada", "aug.p=0.5"], 3, 0.5),           # LSGAN: real is D(x) > 0.5
    ("cut", ["aug=apa", "aug.p=0.5", "aug.policy=translation"], 3, 0.5),
    ("pix2pix", ["aug=diffaugment"], 6, 0.0),                 # the (source, image) pair
])
def test_unpaired_and_pix2pix_train_with_augmented_discriminators(make_cfg, model_name, aug, channels, midpoint):
    tiny = TINY_UNPAIRED if model_name != "pix2pix" else ["model.ngf=8", "model.ndf=8", "data.img_size=32", "data.size=8"]
    cfg = make_cfg(f"model={model_name}", *tiny, *aug, "trainer.limit_train_batches=2", *RUN, tiny=False)
    datamodule, model, trainer = build(cfg)
    assert model.augment.logit_midpoint == midpoint
    seen = record_inputs(model.augment)
    trainer.fit(model, datamodule=datamodule)
    assert seen and all(x.shape[1] == channels for x in seen)
    assert any(x.requires_grad for x in seen) and any(not x.requires_grad for x in seen)  # G's and D's inputs
    if model_name == "cut":
        assert model.augment.sign_count.item() > 0  # APA's statistics are gathered from the shown reals


def test_latent_models_refuse_colour_ops(make_cfg):
    with pytest.raises(Exception) as err:  # noqa: PT011 - Hydra wraps the constructor's ConfigError
        build(make_cfg("model=stargan_latent", "aug=ada"))
    assert isinstance(user_error(err.value), ConfigError)
    assert "'brightness' is a colour op that 4-channel latents do not allow" in str(user_error(err.value))
    _, model, _ = build(make_cfg("model=stargan_latent", "aug=ada", "aug.ops=[xflip,xint,cutout]"))
    assert model.augment.latent and model.augment.ada.ops == ["xflip", "xint", "cutout"]

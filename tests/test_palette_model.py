"""Palette: the UNet (shapes, attention placement, checkpointing, parameter counts), the model's loss,
EMA arithmetic, learning-rate warm-up, translate() in data space, bf16, and the data checks."""

import math

import pytest
import torch
from lightning.pytorch.callbacks import Callback

from lit_gans.errors import ConfigError
from lit_gans.models import Palette
from lit_gans.nets.palette_unet import AttentionBlock, PaletteUNet, timestep_embedding
from lit_gans.train import build

TINY_NET = {"img_size": 16, "channels": 16, "channel_mults": (1, 2), "num_res_blocks": 1, "attn_res": (8,),
            "num_head_channels": 8, "norm_groups": 8, "dropout": 0.0}
TINY = ["model.channels=16", "model.channel_mults=[1,2]", "model.num_res_blocks=1", "model.attn_res=[8]",
        "model.num_head_channels=8", "model.norm_groups=8", "model.dropout=0", "data.img_size=16", "data.size=32",
        "data.val_size=4", "data.batch_size=8", "model.sampling.grid_steps=2", "logger=[]",
        "callbacks.model_checkpoint=null", "callbacks.image_grid=null"]


def count(module):
    return sum(p.numel() for p in module.parameters())


def test_timestep_embedding_is_cos_then_sin():
    e = timestep_embedding(torch.tensor([0, 7]), 8)
    assert e.shape == (2, 8)
    assert torch.equal(e[0], torch.tensor([1.0] * 4 + [0.0] * 4))
    freqs = [10000 ** (-i / 4) for i in range(4)]
    assert torch.allclose(e[1], torch.tensor([math.cos(7 * f) for f in freqs] + [math.sin(7 * f) for f in freqs]))


def test_unet_shapes_attention_levels_and_zero_output_at_init():
    unet = PaletteUNet(in_channels=4, cond_channels=3, img_size=32, channels=16, channel_mults=(1, 2, 2),
                       num_res_blocks=2, attn_res=(16, 8), num_heads=2, num_head_channels=None, norm_groups=8)
    x, cond, t = torch.randn(3, 4, 32, 32), torch.randn(3, 3, 32, 32), torch.tensor([0, 5, 999])
    out = unet(x, t, cond)
    assert out.shape == (3, 4, 32, 32) and torch.count_nonzero(out) == 0  # zero-initialised output conv
    assert unet.input.in_channels == 7  # source concatenated to the noisy target
    sizes = []
    unet.eval()
    hooks = [m.register_forward_hook(lambda m, i, o: sizes.append(o.shape[-1]))
             for m in unet.modules() if isinstance(m, AttentionBlock)]
    unet(x, t, cond)
    for h in hooks:
        h.remove()
    # 2 encoder + 3 decoder blocks at each of sizes 16 and 8, plus the middle (8): none at 32.
    assert sorted(sizes) == [8] * 6 + [16] * 5
    assert all(m.num_heads == 2 for m in unet.modules() if isinstance(m, AttentionBlock))


def test_activation_checkpointing_gives_the_same_output_and_gradients():
    torch.manual_seed(0)
    plain = PaletteUNet(**{**TINY_NET, "dropout": 0.1})
    for p in plain.parameters():  # leave the zero init so the gradients reach every layer
        torch.nn.init.normal_(p, std=0.05)
    ckpt = PaletteUNet(**{**TINY_NET, "dropout": 0.1, "checkpointing": True})
    ckpt.load_state_dict(plain.state_dict())
    x, c, t = torch.randn(2, 3, 16, 16), torch.randn(2, 3, 16, 16), torch.tensor([3, 400])
    grads = []
    for net in (plain, ckpt):
        torch.manual_seed(1)  # same dropout masks; checkpointing replays its block's RNG state
        net.zero_grad()
        out = net(x, t, c)
        out.square().mean().backward()
        grads.append((out.detach(), [p.grad.clone() for p in net.parameters()]))
    assert torch.allclose(grads[0][0], grads[1][0], atol=1e-6)
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(grads[0][1], grads[1][1], strict=True))


def test_parameter_counts_of_the_presets():
    from omegaconf import OmegaConf

    for preset, millions in (("palette_small", 6.60), ("palette_paper", 501.20)):
        net = {k: v for k, v in OmegaConf.load(f"conf/net/{preset}.yaml").items() if k != "img_size"}
        with torch.device("meta"):
            unet = PaletteUNet(img_size=256 if preset == "palette_paper" else 64, **net)
        assert round(count(unet) / 1e6, 2) == millions, preset


def test_unet_config_errors_are_one_line():
    with pytest.raises(ConfigError, match="exactly one of model.num_heads and model.num_head_channels"):
        PaletteUNet(**{**TINY_NET, "num_heads": 2})
    with pytest.raises(ConfigError, match="norm_groups=32 does not divide a UNet width of 16"):
        PaletteUNet(**{**TINY_NET, "norm_groups": 32})
    with pytest.raises(ConfigError, match="img_size=18 is not divisible by 2"):
        PaletteUNet(**{**TINY_NET, "img_size": 18, "channel_mults": (1, 2, 2)})


def tiny_model(**kw):
    return Palette(**{**TINY_NET, **kw})


def test_ema_update_arithmetic():
    m = tiny_model(ema_beta=0.9999, ema_warmup=False)
    ema0 = [p.detach().clone() for p in m.unet_ema.parameters()]
    with torch.no_grad():
        for p in m.unet.parameters():
            p.normal_()
    m.update_ema()
    for e, e0, p in zip(m.unet_ema.parameters(), ema0, m.unet.parameters(), strict=True):
        assert torch.allclose(e, 0.9999 * e0 + 0.0001 * p, atol=1e-7)
    # With the warm-up the decay is min(beta, (1+n)/(10+n)): 0.1 for the first update.
    w = tiny_model(ema_beta=0.9999, ema_warmup=True)
    assert [w.current_ema_beta() for w.ema_updates in (0, 1, 90)] == pytest.approx([0.1, 2 / 11, 0.91])
    w.ema_updates = 0
    ema0 = [p.detach().clone() for p in w.unet_ema.parameters()]
    with torch.no_grad():
        for p in w.unet.parameters():
            p.add_(1.0)
    w.update_ema()
    for e, e0, p in zip(w.unet_ema.parameters(), ema0, w.unet.parameters(), strict=True):
        assert torch.allclose(e, 0.1 * e0 + 0.9 * p, atol=1e-6)
    assert w.ema_updates == 1
    assert not any(p.requires_grad for p in w.unet_ema.parameters())


def test_denoising_loss_is_the_noise_error_of_the_unet():
    m = tiny_model()
    for p in m.unet.parameters():
        torch.nn.init.normal_(p, std=0.05)
    g = torch.Generator().manual_seed(0)
    src, tgt, noise = (torch.randn(2, 3, 16, 16, generator=g) for _ in range(3))
    t = torch.tensor([10, 700])
    m.objective.start_step()
    got = m.denoising_loss(src, tgt, t, noise)
    ab = m.schedule.alphas_cumprod[t].view(-1, 1, 1, 1)
    x_t = ab.sqrt() * tgt + (1 - ab).sqrt() * noise
    want = ((m.unet(x_t, t, src) - noise) ** 2).mean()
    assert got.item() == pytest.approx(want.item(), rel=1e-5)
    assert m.objective.total("G").item() == pytest.approx(want.item(), rel=1e-5)
    assert set(m.objective.scalars()) == {"G/G_tot"}  # one curve, not a term and a total


class Capture(Callback):
    def __init__(self):
        self.values, self.lrs, self.dtypes = [], [], []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.lrs.append(trainer.optimizers[0].param_groups[0]["lr"])

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.values.append({k: v.item() for k, v in pl_module.objective.scalars().items()})
        self.dtypes.append(pl_module.objective.value("G_tot").dtype)


@pytest.mark.parametrize("noise_loss,expected", [("l2", 1.0), ("l1", math.sqrt(2 / math.pi))])
def test_first_step_loss_and_lr_warmup(make_cfg, noise_loss, expected):
    # The untrained UNet predicts zero noise, so the first G_tot is E[eps^2] = 1 (L2) or E|eps| (L1).
    cfg = make_cfg("model=palette", *TINY, f"loss.noise_loss={noise_loss}", "model.optimizer.lr=1e-3",
                   "model.scheduler.warmup_steps=4", "trainer.max_steps=5", tiny=False)
    datamodule, model, trainer = build(cfg)
    cap = Capture()
    trainer.callbacks.append(cap)
    trainer.fit(model, datamodule=datamodule)
    assert isinstance(trainer.optimizers[0], torch.optim.AdamW) and len(cap.values) == 5
    # 8 x 3 x 16 x 16 noise values: the mean is within 5 standard errors of its expectation.
    assert cap.values[0]["G/G_tot"] == pytest.approx(expected, abs=0.1 if noise_loss == "l2" else 0.05)
    assert cap.lrs == pytest.approx([2.5e-4, 5e-4, 7.5e-4, 1e-3, 1e-3])  # stepped per batch by the base
    assert model.ema_updates == 5


def test_bf16_mixed_runs_the_unet_in_bf16_and_the_loss_in_float32(make_cfg):
    cfg = make_cfg("model=palette", *TINY, "trainer.precision=bf16-mixed", "trainer.max_steps=2", tiny=False)
    datamodule, model, trainer = build(cfg)
    out_dtypes = []
    model.unet.register_forward_hook(lambda m, i, o: out_dtypes.append(o.dtype))
    cap = Capture()
    trainer.callbacks.append(cap)
    before = [p.detach().clone() for p in model.unet.parameters()]
    trainer.fit(model, datamodule=datamodule)
    assert out_dtypes == [torch.bfloat16] * 2 and cap.dtypes == [torch.float32] * 2
    assert all(math.isfinite(v["G/G_tot"]) for v in cap.values)
    assert any(not torch.equal(a, b) for a, b in zip(before, model.unet.parameters(), strict=True))
    assert all(p.dtype == torch.float32 for p in model.unet.parameters())
    batch = datamodule.sample_batch(2)
    cols = model.visuals(batch)  # sampling under the trainer's bf16 autocast
    assert cols["sample"].dtype == torch.float32 and torch.isfinite(cols["sample"]).all()


class OracleUNet(torch.nn.Module):
    """Returns the exact noise of x_t for a known clean image (model space), checking the condition it gets."""

    def __init__(self, x0, cond, schedule):
        super().__init__()
        self.x0, self.cond, self.abar = x0.double(), cond, torch.tensor(schedule.alpha_bars, dtype=torch.float64)
        self.calls = 0

    def forward(self, x_t, t, cond):
        assert torch.allclose(cond, self.cond)
        self.calls += 1
        ab = self.abar[t].view(-1, 1, 1, 1)
        return ((x_t.double() - ab.sqrt() * self.x0) / (1 - ab).sqrt()).float()


@pytest.mark.parametrize("sampler,steps", [("ddim", 5), ("ddpm", 8)])
def test_translate_works_in_data_space_with_the_latent_scale(sampler, steps):
    m = tiny_model(in_channels=4, latent_scale=0.18215).eval()
    g = torch.Generator().manual_seed(0)
    cond, target = torch.randn(2, 4, 16, 16, generator=g) * 5.5, torch.randn(2, 4, 16, 16, generator=g) * 5.5
    m.unet_ema = OracleUNet(target * 0.18215, cond * 0.18215, m.schedule)  # the nets see scaled latents
    out = m.translate(cond, steps=steps, sampler=sampler, generator=g)
    assert out.shape == target.shape and out.dtype == torch.float32
    assert torch.allclose(out, target, atol=1e-3)  # unscaled again: the data's own space
    assert m.unet_ema.calls == steps and m._clip() is None  # latents are not clamped to [-1, 1]


def test_visuals_are_condition_sample_target_from_fixed_noise():
    m = tiny_model(sampling={"grid_steps": 3}).eval()
    for p in m.unet_ema.parameters():
        torch.nn.init.normal_(p, std=0.05)
    batch = {"A": torch.rand(2, 3, 16, 16) * 2 - 1, "B": torch.rand(2, 3, 16, 16) * 2 - 1}
    cols = m.visuals(batch)
    assert list(cols) == ["condition", "sample", "target"]
    assert cols["condition"] is batch["A"] and cols["target"] is batch["B"] and cols["sample"].shape == (2, 3, 16, 16)
    assert cols["sample"].abs().max() <= 1.0  # pixels: predicted images clamped to [-1, 1]
    assert torch.equal(m.visuals(batch)["sample"], cols["sample"])  # same noise every grid
    m.sampling_cfg["grid_seed"] = 1
    assert not torch.equal(m.visuals(batch)["sample"], cols["sample"])


def test_model_config_errors():
    with pytest.raises(ConfigError, match="model.latent_scale is null"):
        tiny_model(latent_scale=None)
    with pytest.raises(ConfigError, match="unknown loss.noise_loss 'l3'"):
        tiny_model(loss={"noise_loss": "l3"})
    with pytest.raises(ConfigError, match=r"loss.w_sty is not a key of this model's objective \(diffusion; its keys: noise_loss\)"):
        tiny_model(loss={"w_sty": 1.0})
    with pytest.raises(ConfigError, match=r"model.sampling.sampler='euler'"):
        tiny_model(sampling={"sampler": "euler"})
    with pytest.raises(ConfigError, match=r"model.diffusion has unknown key\(s\) \['steps'\]"):
        tiny_model(diffusion={"steps": 10})
    m = tiny_model()
    with pytest.raises(ConfigError, match="Palette trains on paired data but the latent file has layout 'domains'"):
        m.check_data({"layout": "domains", "channels": 3, "img_size": 16})
    with pytest.raises(ConfigError, match=r"data has channels 4 but the model is built for 3 \(model.in_channels=3\)"):
        m.check_data({"layout": "paired", "channels": 4, "img_size": 16})


def test_each_process_draws_its_own_timesteps_and_noise_and_resumes_them():
    from lit_gans.models.palette import rank_generator

    torch.manual_seed(123)  # what seed_everything does on every process
    r0, r0_again, r1 = rank_generator("cpu", 0), rank_generator("cpu", 0), rank_generator("cpu", 1)
    a, b, c = (torch.randint(0, 1000, (16,), generator=g) for g in (r0, r0_again, r1))
    assert torch.equal(a, b) and not torch.equal(a, c)
    # The generator's state travels in checkpoints: a resumed model continues the same sequence.
    m = tiny_model()
    x0 = torch.zeros(4, 3, 16, 16)
    m.draw_timesteps_and_noise(x0)
    ckpt = {}
    m.on_save_checkpoint(ckpt)
    t_next, noise_next = m.draw_timesteps_and_noise(x0)
    resumed = tiny_model()
    resumed.on_load_checkpoint(ckpt)
    t2, noise2 = resumed.draw_timesteps_and_noise(x0)
    assert torch.equal(t_next, t2) and torch.equal(noise_next, noise2)
    assert t2.min() >= 0 and t2.max() < 1000 and noise2.shape == x0.shape


def test_translate_samples_without_dropout_and_uses_the_ema_unet():
    m = tiny_model(dropout=0.5)
    for p in m.unet_ema.parameters():
        torch.nn.init.normal_(p, std=0.05)
    m.train()  # a module in training mode (dropout on) must still sample deterministically
    cond, noise = torch.rand(2, 3, 16, 16) * 2 - 1, torch.randn(2, 3, 16, 16)
    a = m.translate(cond, steps=3, sampler="ddim", eta=0.0, noise=noise)
    b = m.translate(cond, steps=3, sampler="ddim", eta=0.0, noise=noise)
    assert torch.equal(a, b) and m.unet_ema.training  # mode restored
    # The trained UNet is still zero-initialised at the output: it predicts eps = 0, so DDIM returns
    # x0_hat = x_T / sqrt(abar_T) clamped, unlike the (perturbed) EMA.
    raw = m.translate(cond, steps=1, sampler="ddim", noise=noise, use_ema=False)
    assert torch.equal(raw, (noise / math.sqrt(m.schedule.alpha_bar(999))).clamp(-1, 1))
    assert not torch.equal(m.translate(cond, steps=1, sampler="ddim", noise=noise), raw)

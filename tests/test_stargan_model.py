"""StarGAN v2: one training step against the seed's formulas computed by hand, the official parameter
counts, translation, and the data/model compatibility check."""

import copy

import pytest
import torch
from helpers.capture import Capture
from hydra.utils import instantiate

from lit_gans.errors import ConfigError
from lit_gans.losses import d_hinge_loss, r1_penalty
from lit_gans.nets.stargan_v2 import count_parameters
from lit_gans.train import build

W = {"w_adv": 1.2, "w_sty": 1.5, "w_cyc": 0.8, "w_id": 0.5, "w_ds": 2.0, "w_r1": 0.7, "ds_margin": 0.3}


def two_frozen_steps(make_cfg, *overrides: str):
    """Two training steps at learning rate 0 (R1 on the first): the model as it started and what each step logged.
    No net changes during the steps, so every term can be recomputed from the starting copy."""
    cfg = make_cfg("model.optimizer.lr=0", "model.mapping_lr=0", "model.optimizer.weight_decay=0", "loss.r1_interval=2",
                   "trainer.max_epochs=1", "trainer.limit_train_batches=2", "logger=[]", "callbacks.model_checkpoint=null",
                   *overrides)
    datamodule, model, trainer = build(cfg)
    start = copy.deepcopy(model)
    cap = Capture()
    trainer.callbacks.append(cap)
    trainer.fit(model, datamodule=datamodule)
    assert len(cap.steps) == 2
    return start, cap


def test_training_step_equals_the_seed_formulas(make_cfg):
    start, cap = two_frozen_steps(make_cfg, "loss.ds_decay_epochs=4", *[f"loss.{k}={v}" for k, v in W.items()])
    G, E, F, D = start.generator, start.style_encoder, start.mapping_network, start.discriminator
    for step, (batch, got, _) in enumerate(cap.steps):
        x, y_src, x_ref, y = batch["x_src"], batch["y_src"], batch["x_ref"], batch["y_trg"]
        s_ref, s_lat, s_2 = E(x_ref, y), F(batch["z1"], y), F(batch["z2"], y)
        fake_ref, fake_lat, fake_2 = G(x, s_ref), G(x, s_lat), G(x, s_2)
        real = D(x_ref, y)
        d_adv = 0.5 * (d_hinge_loss(real, D(fake_ref, y)) + d_hinge_loss(real, D(fake_lat, y)))
        x_r1 = x_ref.clone().requires_grad_(True)
        r1 = r1_penalty(D(x_r1, y), x_r1) if step % 2 == 0 else torch.tensor(0.0)
        d_loss = d_adv + W["w_r1"] * 2 * r1  # interval compensation: w_r1 * r1_interval
        g_adv = -D(fake_ref, y).mean() - D(fake_lat, y).mean()
        sty = (E(fake_ref, y) - s_ref).abs().mean() + (E(fake_lat, y) - s_lat).abs().mean()
        ds = torch.clamp((fake_lat - fake_2).abs().mean(), max=W["ds_margin"])
        s_src = E(x, y_src)
        cyc = (G(fake_ref, s_src) - x).abs().mean() + (G(fake_lat, s_src) - x).abs().mean()
        idt = (G(x, s_src) - x).abs().mean()
        lambda_ds = W["w_ds"]  # epoch 1
        g_loss = W["w_adv"] * g_adv + W["w_sty"] * sty + W["w_cyc"] * cyc + W["w_id"] * idt - lambda_ds * ds
        want = {"D/d_adv": d_adv, "D/r1": r1, "D/d_loss": d_loss, "G/g_adv": g_adv, "G/sty": sty, "G/ds": ds,
                "G/cyc": cyc, "G/id": idt, "G/g_loss": g_loss}
        for k, v in want.items():
            assert got[k].item() == pytest.approx(v.item(), rel=2e-4, abs=1e-5), (step, k)
    assert cap.steps[1][1]["D/r1"].item() == 0.0  # not an R1 step: logged as 0


def test_id_is_zero_and_not_computed_when_its_weight_is_zero(make_cfg):
    cfg = make_cfg("loss.w_id=0", "trainer.max_epochs=1", "trainer.limit_train_batches=1", "logger=[]",
                   "callbacks.model_checkpoint=null")
    datamodule, model, trainer = build(cfg)
    cap = Capture()
    trainer.callbacks.append(cap)
    trainer.fit(model, datamodule=datamodule)
    batch, got, dtypes = cap.steps[0]
    assert got["G/id"].item() == 0.0 and "id" not in dtypes


def test_bf16_mixed_on_cpu_keeps_r1_in_float32(make_cfg):
    cfg = make_cfg("trainer.precision=bf16-mixed", "loss.r1_interval=1", "trainer.max_epochs=1",
                   "trainer.limit_train_batches=2", "logger=[]", "callbacks.model_checkpoint=null")
    datamodule, model, trainer = build(cfg)
    cap = Capture()
    trainer.callbacks.append(cap)
    trainer.fit(model, datamodule=datamodule)
    for _, got, dtypes in cap.steps:
        assert dtypes["r1"] == torch.float32
        assert all(torch.isfinite(v) for v in got.values())
        assert got["D/r1"].item() > 0


def test_official_preset_parameter_counts(make_cfg):
    cfg = make_cfg("net=stargan_official", "data.num_domains=2", tiny=False)
    model = instantiate(cfg.model, num_domains=2, loss=dict(cfg.loss), _convert_="all", _recursive_=False)
    counts = {n: round(count_parameters(getattr(model, n)) / 1e6, 2)
              for n in ("generator", "mapping_network", "style_encoder", "discriminator")}
    assert counts == {"generator": 33.89, "mapping_network": 2.44, "style_encoder": 20.92, "discriminator": 20.85}


def test_translate_works_in_data_space(make_cfg):
    cfg = make_cfg("model=stargan_latent")
    model = instantiate(cfg.model, num_domains=3, loss=dict(cfg.loss), _convert_="all", _recursive_=False).eval()
    x = torch.randn(2, 4, 16, 16) * 5.5
    ref = torch.randn(2, 4, 16, 16) * 5.5
    y = torch.tensor([0, 2])
    out = model.translate(x, y, x_ref=ref)
    s = model.style_encoder_ema(ref * 0.18215, y)
    want = model.generator_ema(x * 0.18215, s) / 0.18215
    assert out.shape == x.shape and torch.allclose(out, want, atol=1e-5)
    z = torch.randn(2, cfg.model.latent_dim)
    lat = model.translate(x, 1, z=z)
    want = model.generator_ema(x * 0.18215, model.mapping_network_ema(z, torch.tensor([1, 1]))) / 0.18215
    assert torch.allclose(lat, want, atol=1e-5)


def test_data_that_does_not_fit_the_nets_is_one_clear_error(make_cfg):
    cfg = make_cfg("data.channels=3", "model=stargan_latent")
    datamodule, model, trainer = build(cfg)
    with pytest.raises(ConfigError, match=r"data has channels 3 but the model is built for 4 \(model.in_channels=4\)"):
        trainer.fit(model, datamodule=datamodule)


def test_16_mixed_trains_with_r1_in_float32(make_cfg):
    # On CUDA: fp16 autocast with Lightning's GradScaler (manual_backward scales, opt.step unscales).
    # Lightning runs 16-mixed as bf16-mixed on a CPU (no fp16 autocast there), without a scaler.
    cfg = make_cfg("trainer.precision=16-mixed", "trainer.accelerator=auto", "loss.r1_interval=1", "trainer.max_epochs=1",
                   "trainer.limit_train_batches=2", "logger=[]", "callbacks.model_checkpoint=null")
    datamodule, model, trainer = build(cfg)
    before = [p.detach().clone() for p in model.discriminator.parameters()]
    cap = Capture()
    trainer.callbacks.append(cap)
    trainer.fit(model, datamodule=datamodule)
    assert (trainer.precision_plugin.scaler is not None) == torch.cuda.is_available()
    assert trainer.precision == ("16-mixed" if torch.cuda.is_available() else "bf16-mixed")
    assert any(not torch.equal(a, b) for a, b in zip(before, model.discriminator.parameters(), strict=True))
    for _, got, dtypes in cap.steps:
        assert dtypes["r1"] == torch.float32
        assert all(torch.isfinite(v) for v in got.values())


def test_checkpoint_is_weights_only_loadable_and_rebuilds_the_model(make_cfg, tmp_path):
    from lit_gans.models import StarGANv2

    cfg = make_cfg("model=stargan_latent", "trainer.max_epochs=1", "trainer.limit_train_batches=1")
    datamodule, model, trainer = build(cfg)
    trainer.fit(model, datamodule=datamodule)
    path = tmp_path / "checkpoints" / "last.ckpt"
    ck = torch.load(path, weights_only=True)  # plain hyper-parameters: no pickled config objects
    assert ck["hyper_parameters"]["in_channels"] == 4 and ck["data_spec"]["num_domains"] == 3
    again = StarGANv2.load_from_checkpoint(path)
    assert again.latent_scale == pytest.approx(0.18215) and again.ema_updates == 1
    for a, b in zip(again.generator_ema.parameters(), model.generator_ema.parameters(), strict=True):
        assert torch.equal(a, b)


def test_mismatched_domains_is_never_the_sources_own():
    from lit_gans.models.stargan_v2 import mismatched_domains

    k = 3
    y_src, y_trg = torch.arange(k).repeat_interleave(k), torch.arange(k).repeat(k)
    wrong = mismatched_domains(y_src, y_trg, k)
    assert (wrong != y_src).all()
    assert torch.equal(wrong[y_trg != y_src], y_trg[y_trg != y_src])  # the target where it differs


def test_d_mismatch_is_the_fake_side_on_sources_shown_to_another_domains_head(make_cfg):
    """loss.w_mismatch: D's head of a domain the source is not in calls the (real) source fake; d_loss adds it
    with its weight; d_adv is unchanged (R1 and non-R1 steps, where the sources share D's batched pass)."""
    from lit_gans.models.stargan_v2 import mismatched_domains

    w = 0.6
    start, cap = two_frozen_steps(make_cfg, f"loss.w_mismatch={w}", "loss.w_r1=0.7")
    G, E, F, D = start.generator, start.style_encoder, start.mapping_network, start.discriminator
    for step, (batch, got, _) in enumerate(cap.steps):
        x, y_src, y = batch["x_src"], batch["y_src"], batch["y_trg"]
        mismatch = d_hinge_loss(torch.full((1,), 9.0), D(x, mismatched_domains(y_src, y, start.net_cfg["num_domains"])))
        real = D(batch["x_ref"], y)
        fake_ref, fake_lat = G(x, E(batch["x_ref"], y)), G(x, F(batch["z1"], y))
        d_adv = 0.5 * (d_hinge_loss(real, D(fake_ref, y)) + d_hinge_loss(real, D(fake_lat, y)))
        x_r1 = batch["x_ref"].clone().requires_grad_(True)
        r1 = r1_penalty(D(x_r1, y), x_r1) if step % 2 == 0 else torch.tensor(0.0)
        assert got["D/d_mismatch"].item() == pytest.approx(mismatch.item(), rel=2e-4, abs=1e-5), step
        assert got["D/d_adv"].item() == pytest.approx(d_adv.item(), rel=2e-4, abs=1e-5), step
        want = d_adv + w * mismatch + 0.7 * 2 * r1
        assert got["D/d_loss"].item() == pytest.approx(want.item(), rel=2e-4, abs=1e-5), step
    assert mismatch.item() > 0.5  # an untrained D is far from calling every mismatched source fake


def _encoder_gradient_after_one_frozen_step(make_cfg, *overrides: str):
    """One training step at learning rate 0: the model as it started, the batch, and the style encoder's gradient
    that the G/E/F update left (the last backward of the step)."""
    cfg = make_cfg("model.optimizer.lr=0", "model.mapping_lr=0", "model.optimizer.weight_decay=0", "loss.w_ds=0",
                   "trainer.max_epochs=1", "trainer.limit_train_batches=1", "logger=[]", "callbacks.model_checkpoint=null",
                   *overrides)
    datamodule, model, trainer = build(cfg)
    start = copy.deepcopy(model)
    cap = Capture()
    trainer.callbacks.append(cap)
    trainer.fit(model, datamodule=datamodule)
    grads = torch.cat([p.grad.flatten() for p in model.style_encoder.parameters()])
    return start, cap.steps[0], grads


def test_without_the_reference_path_the_style_encoder_learns_from_the_latent_path_only(make_cfg):
    """model.ref_path_trains_encoder=false, as the official solver (its reference pass steps G alone): E's gradient
    is that of the latent path's terms that involve it, w_sty * |E(G(x, F(z1))) - F(z1)| + w_cyc *
    |G(G(x, F(z1)), E(x)) - x|; the logged losses are the seed's (only the gradients differ), and with the seed's
    setting E also gets the reference path's gradient."""
    w = {"w_sty": 1.5, "w_cyc": 0.8}
    start, (batch, got, _), grads = _encoder_gradient_after_one_frozen_step(
        make_cfg, "model.ref_path_trains_encoder=false", *[f"loss.{k}={v}" for k, v in w.items()])
    G, E, F = start.generator, start.style_encoder, start.mapping_network
    x, y_src, y = batch["x_src"], batch["y_src"], batch["y_trg"]
    s_lat = F(batch["z1"], y).detach()
    fake_lat = G(x, s_lat).detach()
    latent_terms = (w["w_sty"] * (E(fake_lat, y) - s_lat).abs().mean()
                    + w["w_cyc"] * (G(fake_lat, E(x, y_src)) - x).abs().mean())
    want = torch.cat([g.flatten() for g in torch.autograd.grad(latent_terms, list(E.parameters()))])
    assert torch.allclose(grads, want, rtol=1e-3, atol=1e-6 * want.abs().max().item())
    _, (_, seed_got, _), seed_grads = _encoder_gradient_after_one_frozen_step(
        make_cfg, "model.ref_path_trains_encoder=true", *[f"loss.{k}={v}" for k, v in w.items()])
    for key in ("G/g_loss", "G/sty", "G/cyc", "D/d_loss"):
        assert got[key].item() == pytest.approx(seed_got[key].item(), rel=1e-5), key
    assert (seed_grads - want).norm() > 0.05 * want.norm()

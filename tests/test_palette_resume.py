"""Palette checkpoints: a run stopped after 3 steps and resumed from its checkpoint ends, weight for weight,
where an uninterrupted 6-step run ends: the UNet, its EMA (and the EMA warm-up count), AdamW's moments, the
warm-up scheduler and the timestep/noise generator all travel through the checkpoint."""

import pytest
import torch

from lit_gans.train import build

TINY = ["model.channels=16", "model.channel_mults=[1,2]", "model.num_res_blocks=1", "model.attn_res=[8]",
        "model.num_head_channels=8", "model.norm_groups=8", "model.dropout=0.1", "data.img_size=16",
        "data.size=32", "data.val_size=2", "data.batch_size=4", "model.optimizer.lr=1e-3", "model.scheduler.warmup_steps=5",
        "trainer.deterministic=true", "trainer.max_epochs=1", "logger=[]", "callbacks.model_checkpoint=null", "callbacks.image_grid=null",
        "callbacks.last_checkpoint.every_n_train_steps=3"]

def _fit(make_cfg, max_steps, ckpt_path=None):
    cfg = make_cfg("model=palette", *TINY, f"trainer.max_steps={max_steps}", tiny=False)
    datamodule, model, trainer = build(cfg)
    trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt_path)
    return model, trainer, cfg.paths.output_dir

def test_checkpoint_round_trip_restores_ema_optimizer_and_warmup(make_cfg, tmp_path):
    stopped, _, out = _fit(make_cfg, 3)
    ckpt = torch.load(f"{out}/checkpoints/last.ckpt", weights_only=False)

    assert ckpt["global_step"] == 3 and ckpt["ema_updates"] == 3 and "palette_rng_state" in ckpt
    assert any(k.startswith("unet_ema.") for k in ckpt["state_dict"])
    assert ckpt["lr_schedulers"][0]["last_epoch"] == 3
    saved_ema = {k[len("unet_ema."):]: v for k, v in ckpt["state_dict"].items() if k.startswith("unet_ema.")}
    assert all(torch.equal(saved_ema[k], v) for k, v in stopped.unet_ema.state_dict().items())
    resumed, trainer, _ = _fit(make_cfg, 6, ckpt_path=f"{out}/checkpoints/last.ckpt")
    full, full_trainer, _ = _fit(make_cfg, 6)
    assert resumed.ema_updates == full.ema_updates == 6
    for net in ("unet", "unet_ema"):
        a, b = getattr(resumed, net).state_dict(), getattr(full, net).state_dict()
        assert [k for k in a if not torch.allclose(a[k], b[k], rtol=1e-6, atol=1e-8)] == [], net
    # The ema differs from the net (a real average, not a copy) and AdamW's moments match.
    assert not torch.equal(full.unet_ema.input.weight, full.unet.input.weight)
    sa, sb = trainer.optimizers[0].state_dict()["state"], full_trainer.optimizers[0].state_dict()["state"]
    assert sa.keys() == sb.keys() and len(sa) == len(list(full.unet.parameters()))
    for i in sa:
        assert sa[i]["step"].item() == sb[i]["step"].item() == 6
        assert torch.allclose(sa[i]["exp_avg_sq"], sb[i]["exp_avg_sq"], rtol=1e-6, atol=1e-12)
    assert trainer.optimizers[0].param_groups[0]["lr"] == pytest.approx(1e-3)  # warm-up over after 5 steps

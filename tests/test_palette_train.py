"""Palette through Hydra: G_tot in the TensorBoard files and falling on a trivially learnable task, the
default data, latents (latent_scale from the data), and folders of targets with derived sources."""

import json

import pytest
import torch

from conftest import read_scalars
from imagefiles import write_folder
from lit_gans.data.conditions import grayscale
from lit_gans.data.paired import PairedDataModule
from lit_gans.errors import DataError
from lit_gans.train import build, train

TINY = ["model.channels=16", "model.channel_mults=[1,2]", "model.num_res_blocks=1", "model.attn_res=[8]",
        "model.num_head_channels=8", "model.norm_groups=8", "model.dropout=0", "model.sampling.grid_steps=2",
        "callbacks.image_grid.num_samples=2"]


def test_g_tot_is_logged_once_and_falls_on_a_learnable_task(make_cfg, tmp_path):
    # Colourising 16 px shapes with a tiny UNet: G_tot starts at E[eps^2] = 1 (zero-initialised output)
    # and must fall well below within a few dozen steps.
    cfg = make_cfg("model=palette", *TINY, "data.img_size=16", "data.size=128", "data.val_size=2",
                   "data.batch_size=16", "model.optimizer.lr=2e-3", "model.scheduler.warmup_steps=5",
                   "trainer.max_epochs=5", "trainer.limit_train_batches=8", tiny=False)
    assert cfg.data.task == "colorize"
    train(cfg)
    s = read_scalars(str(tmp_path))
    assert sorted(t for t in s if "G_tot" in t and not t.startswith("spread/")) == ["G/G_tot_epoch", "G/G_tot_step"]
    steps = [v for _, v in s["G/G_tot_step"]]
    epochs = [v for _, v in s["G/G_tot_epoch"]]
    assert len(steps) == 40 and len(epochs) == 5
    assert sum(steps[:3]) / 3 == pytest.approx(1.0, abs=0.1)
    assert sum(steps[-8:]) / 8 < 0.35, steps  # ~0.16 over seeds 0-2
    assert all(a > b for a, b in zip(epochs, epochs[1:], strict=False)), epochs
    for e in range(5):  # the epoch curve is the mean of the epoch's steps
        assert epochs[e] == pytest.approx(sum(steps[8 * e: 8 * e + 8]) / 8, rel=1e-5)
    history = [json.loads(x) for x in open(tmp_path / "tensorboard" / "loss_history.jsonl")]
    assert [r["losses"]["G/G_tot"] for r in history] == pytest.approx(epochs, rel=1e-6)
    # The end-of-training grid: condition | sample | target.
    assert (tmp_path / "tensorboard" / "samples").is_dir()


def test_default_config_is_colourisation_at_64px(make_cfg):
    cfg = make_cfg("model=palette", tiny=False)
    assert cfg.data.task == "colorize" and cfg.data.img_size == 64 and cfg.model.img_size is None
    assert cfg.model.ema_beta == 0.9999 and cfg.model.diffusion.timesteps == 1000 and cfg.loss.noise_loss == "l2"
    datamodule, model, _ = build(cfg)
    assert model.net_cfg["img_size"] == 64 and model.latent_scale == 1.0
    cfg = make_cfg("model=palette", "data=paired", "data.root=/nowhere", tiny=False)
    assert "task" not in cfg.data and cfg.data.condition == "none"  # other data gets no `task` key


def test_latent_palette_takes_its_scale_from_the_data(make_cfg):
    cfg = make_cfg("model=palette_latent", *TINY, "data.img_size=16", "data.size=16", "data.val_size=2",
                   "data.batch_size=4", "trainer.max_steps=2", "logger=[]", "callbacks.model_checkpoint=null",
                   tiny=False)
    datamodule, model, trainer = build(cfg)
    assert model.latent_scale == pytest.approx(0.18215) and model._clip() is None
    trainer.fit(model, datamodule=datamodule)
    assert model.ema_updates == 2
    batch = datamodule.sample_batch(2)
    assert batch["B"].std() > 3  # stored unscaled
    out = model.translate(batch["A"], steps=2)
    assert out.shape == batch["B"].shape == (2, 4, 16, 16)


# ------------------------------------------------------------------------------------ derived sources
def test_paired_folder_of_targets_with_derived_sources(tmp_path):
    write_folder(tmp_path / "train", 3, size=(20, 20))
    write_folder(tmp_path / "train" / "sub", 2, size=(20, 20), seed=5)  # sub-folders are targets too
    write_folder(tmp_path / "val", 2, size=(20, 20), seed=9)
    dm = PairedDataModule(str(tmp_path), condition="grayscale", load_size=20, crop_size=16, num_workers=0)
    dm.setup()
    assert len(dm.train_set) == 5 and len(dm.val_set) == 2 and dm.data_spec()["channels"] == 3
    it = dm.train_set[(4, 11)]
    assert it["B"].shape == (3, 16, 16) and torch.allclose(it["A"], grayscale(it["B"]))
    hole = PairedDataModule(str(tmp_path), condition="inpaint", load_size=20, crop_size=16, num_workers=0)
    hole.setup()
    a, b = hole.train_set[(0, 3)]["A"], hole.train_set[(0, 3)]["B"]
    changed = (a != b).any(0)
    assert changed.any() and (a[:, changed] == 0).all()
    assert torch.equal(hole.train_set[(0, 3)]["A"], a)  # the hole is pinned by the item's seed
    assert not torch.equal(hole.train_set[(0, 4)]["A"], a)


def test_derived_sources_from_a_paired_folder_use_its_targets(tmp_path):
    write_folder(tmp_path / "A", 2, size=(16, 16), seed=0)
    write_folder(tmp_path / "B", 2, size=(16, 16), seed=50)
    dm = PairedDataModule(str(tmp_path), condition="grayscale", load_size=16, crop_size=16, flip=False,
                          num_workers=0)
    dm.setup()
    it = dm.train_set[(1, 0)]
    plain = PairedDataModule(str(tmp_path), load_size=16, crop_size=16, flip=False, num_workers=0)
    plain.setup()
    pair = plain.train_set[(1, 0)]
    assert torch.equal(it["B"], pair["B"]) and torch.allclose(it["A"], grayscale(pair["B"]))
    rev = PairedDataModule(str(tmp_path), condition="grayscale", direction="BtoA", load_size=16, crop_size=16,
                           flip=False, num_workers=0)
    rev.setup()
    assert torch.equal(rev.train_set[(1, 0)]["B"], pair["A"])


def test_empty_target_folder_is_one_line(tmp_path):
    (tmp_path / "train").mkdir()
    with pytest.raises(DataError, match="has no images") as err:
        PairedDataModule(str(tmp_path), condition="inpaint", num_workers=0).data_spec()
    assert "\n" not in str(err.value)


def test_palette_trains_on_a_folder_of_targets(make_cfg, tmp_path):
    write_folder(tmp_path / "photos", 4, size=(20, 20))
    cfg = make_cfg("model=palette", *TINY, "data=paired", f"data.root={tmp_path / 'photos'}", "data.condition=grayscale",
                   "data.load_size=16", "data.crop_size=16", "data.batch_size=2", "data.num_workers=0",
                   "trainer.max_steps=2", "logger=[]", "callbacks.model_checkpoint=null", tiny=False)
    datamodule, model, trainer = build(cfg)
    assert model.net_cfg["img_size"] == 16  # from the data's crop size
    trainer.fit(model, datamodule=datamodule)
    assert model.ema_updates == 2 and torch.isfinite(model.objective.scalars()["G/G_tot"])


def _latent_file(path, layout: str, scaling_factor: float = 0.13025):
    from lit_gans.latents.store import LatentSet, save_latents

    g = torch.Generator().manual_seed(0)
    n = 6
    b = torch.randn(n, 4, 16, 16, generator=g) * 5 if layout == "paired" else None
    save_latents(LatentSet(latents=torch.randn(n, 4, 16, 16, generator=g) * 5, latents_b=b,
                           labels=torch.tensor([0, 1, 0, 1, 0, 1]) if layout == "domains" else torch.zeros(n, dtype=torch.long),
                           split=torch.tensor([0, 0, 0, 0, 1, 1]), layout=layout,
                           domain_names=["a", "b"] if layout == "domains" else ["pairs"], scaling_factor=scaling_factor),
                 path)
    return path


def test_palette_latent_trains_on_a_paired_latent_file(make_cfg, tmp_path):
    path = _latent_file(tmp_path / "pairs.pt", "paired")
    cfg = make_cfg("model=palette_latent", *TINY, "data=latents", f"data.path={path}", "data.batch_size=2",
                   "trainer.max_steps=2", "logger=[]", "callbacks.model_checkpoint=null", tiny=False)
    datamodule, model, trainer = build(cfg)
    assert model.latent_scale == pytest.approx(0.13025) and model.net_cfg["img_size"] == 16  # from the file
    trainer.fit(model, datamodule=datamodule)
    assert model.ema_updates == 2 and torch.isfinite(model.objective.scalars()["G/G_tot"])


def test_a_domains_latent_file_is_refused_in_one_line(make_cfg, tmp_path):
    from lit_gans.errors import ConfigError

    path = _latent_file(tmp_path / "domains.pt", "domains")
    cfg = make_cfg("model=palette_latent", *TINY, "data=latents", f"data.path={path}", "trainer.max_steps=1",
                   "logger=[]", "callbacks.model_checkpoint=null", tiny=False)
    datamodule, model, trainer = build(cfg)
    with pytest.raises(ConfigError, match="Palette trains on paired data but the latent file has layout 'domains'"):
        trainer.fit(model, datamodule=datamodule)

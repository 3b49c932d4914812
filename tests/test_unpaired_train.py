"""Short Hydra runs of cyclegan, cut and fastcut on CPU: JoliGEN's curve names per step and as epoch means in
the TensorBoard event files, several discriminators, the sample grids, and real folders with masks."""

import numpy as np
import pytest
from PIL import Image
from test_unpaired_models import TINY_NETS, TINY_UNPAIRED

from conftest import read_scalars
from lit_gans.train import build, train

RUN = ["trainer.max_epochs=2", "trainer.limit_train_batches=2", "callbacks.model_checkpoint=null",
       "callbacks.image_grid.min_tile=0"]  # grid tiles at the images' own 32 px


def names(scalars):
    """The logged loss curves (``<tag>/<name>``) without their _step/_epoch suffix (not their spread bands, not the
    judge's val/ metrics)."""
    return {t.rsplit("_", 1)[0] for t in scalars if "/" in t and not t.startswith(("spread/", "val/"))}


EXPECTED = {
    "cut": {"G/G_tot", "D/D_tot", "G/G_GAN_D_B_basic", "D/D_GAN_D_B_basic", "G/G_NCE", "G/G_NCE_Y"},
    "fastcut": {"G/G_tot", "D/D_tot", "G/G_GAN_D_B_basic", "D/D_GAN_D_B_basic", "G/G_NCE"},
    "cyclegan": {"G/G_tot", "D/D_tot", "G/G_GAN_D_A_basic", "G/G_GAN_D_B_basic", "D/D_GAN_D_A_basic",
                 "D/D_GAN_D_B_basic", "G/G_cycle_A", "G/G_cycle_B", "G/G_idt_A", "G/G_idt_B"},
}
COLUMNS = {"cut": 4, "fastcut": 4, "cyclegan": 6}


@pytest.mark.parametrize("model", ["cut", "fastcut", "cyclegan"])
def test_joligen_curves_per_step_and_epoch(make_cfg, tmp_path, model):
    train(make_cfg(f"model={model}", *TINY_UNPAIRED, *RUN, "model.nce_dim=8", tiny=False) if model != "cyclegan"
          else make_cfg(f"model={model}", *TINY_UNPAIRED, *RUN, tiny=False))
    s = read_scalars(str(tmp_path))
    assert names(s) == EXPECTED[model]
    for name in EXPECTED[model]:
        steps, epochs = [v for _, v in s[f"{name}_step"]], [v for _, v in s[f"{name}_epoch"]]
        assert len(steps) == 4 and len(epochs) == 2, name
        for e in range(2):  # the epoch curve (JoliGEN's *_avg) is the mean of the epoch's steps
            assert epochs[e] == pytest.approx(sum(steps[2 * e: 2 * e + 2]) / 2, rel=1e-5, abs=1e-7), name
        assert all(np.isfinite(steps)) and any(v != 0 for v in steps), name
    # the sample grid at the end of training: one column per visual, one row per sample, under a row of titles
    (png,) = list((tmp_path / "tensorboard").rglob("samples/*.png"))
    w, h = Image.open(png).size
    assert w == COLUMNS[model] * 34 + 2 and h > 2 * 34 + 2


def test_two_discriminators_have_their_own_curves_and_parameter_groups(make_cfg, tmp_path):
    cfg = make_cfg("model=cut", *TINY_UNPAIRED, *RUN, "model.nce_dim=8", "model.discriminators=[basic,multiscale]",
                   "model.n_layers_d=2", "loss.adversarial=vanilla", tiny=False)
    datamodule, model, trainer = build(cfg)
    trainer.fit(model, datamodule=datamodule)
    opt_d = trainer.optimizers[1]
    assert [g["name"] for g in opt_d.param_groups] == ["D_B_basic", "D_B_multiscale"]
    assert len(model.D_B["multiscale"].scales) == 2
    s = read_scalars(str(tmp_path))
    for side in ("G", "D"):
        for d in ("basic", "multiscale"):
            assert f"{side}/{side}_GAN_D_B_{d}_step" in s and f"{side}/{side}_GAN_D_B_{d}_epoch" in s
    # D_tot is the mean of each discriminator's real and fake halves, summed over discriminators
    d_tot = [v for _, v in s["D/D_tot_step"]]
    parts = [[v for _, v in s[f"D/D_GAN_D_B_{d}_step"]] for d in ("basic", "multiscale")]
    assert d_tot == pytest.approx([0.5 * (a + b) for a, b in zip(*parts, strict=True)], rel=1e-5)


def _folders(root, n=3, size=32):
    rng = np.random.default_rng(0)
    for side in "AB":
        for sub in (f"train{side}", f"train{side}_masks"):
            (root / sub).mkdir(parents=True)
        for i in range(n):
            Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(root / f"train{side}" / f"{i}.png")
            mask = np.zeros((size, size), np.uint8)
            mask[4:20, 8:24] = 1 + i % 2
            Image.fromarray(mask).save(root / f"train{side}_masks" / f"{i}.png")
    return root


def test_cyclegan_with_semantic_masks_on_image_folders(make_cfg, tmp_path):
    root = _folders(tmp_path / "data")
    cfg = make_cfg("model=cyclegan", "data=unpaired", f"data.root={root}", "data.load_size=36", "data.crop_size=32",
                   "data.num_workers=0", "data.batch_size=1", "model.sem_mask=true", "loss.f_s_threshold=null",
                   *TINY_NETS, *RUN, tiny=False)
    train(cfg)
    s = read_scalars(str(tmp_path))
    for name in ("G/G_sem_mask_AB", "G/G_sem_mask_BA", "G/G_out_mask_AB", "G/G_out_mask_BA", "f_s/f_s"):
        steps = [v for _, v in s[f"{name}_step"]]
        assert len(steps) == 4 and all(v > 0 for v in steps), name

"""Built-in paired/unpaired data and the derived conditions."""

import pytest
import torch

from lit_gans.data.conditions import get_condition, grayscale, inpaint
from lit_gans.data.synthetic import (
    SyntheticPairedDataModule,
    SyntheticUnpairedDataModule,
    synthetic_paired,
    synthetic_unpaired,
)
from lit_gans.errors import ConfigError


def test_unpaired_masks_mark_the_shapes():
    d = synthetic_unpaired(6, 32, seed=0)
    assert d["A"].shape == (6, 3, 32, 32) and d["A_mask"].shape == (6, 32, 32) and d["A_mask"].dtype == torch.long
    for side in "AB":
        inside = d[f"{side}_mask"] == 1
        assert inside.any(dim=(1, 2)).all() and (~inside).any(dim=(1, 2)).all()
        # Background pixels are dark (tint <= 0.4 of full scale), shapes bright (value >= 0.75).
        value = (d[side] * 0.5 + 0.5).amax(1)
        assert value[inside].mean() > 0.7 and value[~inside].mean() < 0.45
    assert synthetic_unpaired(2, 16, seed=3)["B"].equal(synthetic_unpaired(2, 16, seed=3)["B"])  # deterministic


def test_paired_tasks_relate_source_and_target():
    src, tgt = synthetic_paired(5, 32, "colorize", seed=1)
    assert torch.allclose(src, torch.stack([grayscale(t) for t in tgt]))
    src, tgt = synthetic_paired(5, 32, "inpaint", seed=1)
    diff = (src != tgt).any(0)
    assert diff.any() and (src[:, :, diff.any(0)] == 0).any()
    src, tgt = synthetic_paired(5, 32, "labels", seed=1)
    assert src.shape == tgt.shape == (5, 3, 32, 32)
    with pytest.raises(ConfigError, match="unknown data.task"):
        synthetic_paired(1, 8, "nope")


def test_conditions():
    t = torch.rand(3, 16, 16) * 2 - 1
    g = grayscale(t)
    assert torch.allclose(g[0], 0.299 * t[0] + 0.587 * t[1] + 0.114 * t[2]) and torch.equal(g[0], g[2])
    hole = inpaint(t, torch.Generator().manual_seed(0))
    changed = (hole != t).any(0)
    rows, cols = changed.any(1).nonzero().flatten(), changed.any(0).nonzero().flatten()
    assert 4 <= len(rows) <= 8 and 4 <= len(cols) <= 8  # a quarter to a half of each side
    assert get_condition("none") is None
    with pytest.raises(ConfigError, match="unknown data.condition"):
        get_condition("blur")
    with pytest.raises(ConfigError, match="needs RGB"):
        grayscale(torch.zeros(4, 8, 8))


def test_paired_module_flips_both_sides_together():
    dm = SyntheticPairedDataModule(img_size=16, size=8, task="colorize", batch_size=2)
    dm.setup()
    for seed in range(6):
        it = dm.train_set[(2, seed)]
        assert torch.allclose(it["A"], grayscale(it["B"]))
    batch = next(iter(dm.train_dataloader()))
    assert batch["A"].shape == (2, 3, 16, 16)


def test_unpaired_module_latent_like_and_spec():
    dm = SyntheticUnpairedDataModule(img_size=16, channels=4, size=4)
    assert dm.data_spec()["num_classes"] == 2 and dm.data_spec()["scaling_factor"] == pytest.approx(0.18215)
    dm.setup()
    it = dm.train_set[(1, 7)]
    assert it["A"].shape == (4, 16, 16) and it["A_mask"].shape == (16, 16)

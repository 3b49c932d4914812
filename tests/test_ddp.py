"""Two gloo processes train StarGAN v2 through R1 steps: identical weights on both ranks, and the logged
epoch means are the means over both ranks' batches."""

import json

import pytest
import torch
from trained import run_train

from conftest import TINY_STARGAN, TINY_SYNTHETIC, read_scalars


@pytest.mark.slow
def test_two_process_ddp_keeps_ranks_identical_and_reduces_epoch_means(tmp_path):
    probe = tmp_path / "probe"
    run_train(tmp_path, *TINY_STARGAN, *TINY_SYNTHETIC, "model=stargan_latent", "trainer=ddp_cpu", "trainer.devices=2",
              "trainer.max_epochs=1", "trainer.limit_train_batches=3", "loss.r1_interval=2", "trainer.limit_val_batches=0",
              "trainer.log_every_n_steps=1", "trainer.enable_progress_bar=false", "callbacks.judge=null",
              f"+callbacks.probe={{_target_: helpers.probe.Probe, out: '{probe}'}}")
    ranks = [json.loads((probe / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["world"] for r in ranks] == [2, 2]
    w0, w1 = (torch.load(probe / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    # Bit-equal by DDP's design: every rank receives the same all-reduced gradient buffer and applies the same update.
    assert w0.keys() == w1.keys() and all(torch.equal(w0[k], w1[k]) for k in w0)  # gradients were averaged
    steps0, steps1 = ranks[0]["steps"], ranks[1]["steps"]
    assert [s["D/r1"] > 0 for s in steps0] == [True, False, True]  # R1 steps (double backward) included
    assert [s["D/d_loss"] for s in steps0] != [s["D/d_loss"] for s in steps1]  # different data shards
    logged = read_scalars(str(tmp_path))
    for name in ("D/d_loss", "G/g_loss", "D/r1"):
        want = sum(s[name] for s in steps0 + steps1) / 6
        assert logged[f"{name}_epoch"][0][1] == pytest.approx(want, rel=1e-5), name

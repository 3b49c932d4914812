"""Issue 7's guarantees for the models beside StarGAN v2 (whose own tests are test_ddp.py and test_resume.py):
two gloo processes keep identical weights (CUT's lazily built projection heads included), a SIGKILLed run
resumed with ckpt_path=last logs what the uninterrupted run logs (image pools and FastCUT's flip draws
included), and every precision Lightning offers on CPU trains every model."""

import json
import subprocess

import pytest
import torch
from test_unpaired_models import TINY_UNPAIRED
from trained import run_train

from conftest import QUIET, read_scalars
from lit_gans.train import build

TINY_PIX2PIX = ["model.ngf=4", "model.ndf=4", "data.img_size=32", "data.size=8", "data.val_size=2"]
TINY = {
    "cyclegan": TINY_UNPAIRED,
    "cut": [*TINY_UNPAIRED, "model.nce_dim=8"],
    "fastcut": [*TINY_UNPAIRED, "model.nce_dim=8"],
    "pix2pix": [*TINY_PIX2PIX, "data.batch_size=2"],
}


def _train(tmp, model: str, *extra: str, check: bool = True) -> subprocess.CompletedProcess:
    return run_train(tmp, f"model={model}", *TINY[model], *QUIET, *extra, check=check)


@pytest.mark.slow
@pytest.mark.parametrize("model", ["cut", "cyclegan"])
def test_two_process_ddp_keeps_ranks_identical(tmp_path, model):
    probe = tmp_path / "probe"
    _train(tmp_path, model, "trainer=ddp_cpu", "trainer.devices=2", "trainer.max_epochs=1",
           "trainer.limit_train_batches=3", f"+callbacks.probe={{_target_: helpers.probe.Probe, out: '{probe}'}}")
    ranks = [json.loads((probe / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["world"] for r in ranks] == [2, 2]
    w0, w1 = (torch.load(probe / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    if model == "cut":  # the heads exist (built from the first batch) and are trained on both ranks alike
        assert any(k.startswith("patch_heads") for k in w0), sorted(w0)[:5]
    assert w0.keys() == w1.keys()
    # Bit-equal by DDP's design: both ranks apply the same all-reduced gradients.
    assert [k for k in w0 if not torch.equal(w0[k], w1[k])] == []
    assert [s["G/G_tot"] for s in ranks[0]["steps"]] != [s["G/G_tot"] for s in ranks[1]["steps"]]  # own shards


@pytest.mark.slow
@pytest.mark.parametrize("model", ["cyclegan", "fastcut"])
def test_sigkill_then_ckpt_path_last_repeats_the_uninterrupted_run(tmp_path, model):
    run = ["trainer.max_epochs=2", "trainer.limit_train_batches=4", "trainer.deterministic=true",
           "callbacks.last_checkpoint.every_n_train_steps=2"]
    if model == "cyclegan":
        run.append("model.pool_size=3")  # the pool fills and starts swapping within the run
    _train(tmp_path / "full", model, *run)
    killed = _train(tmp_path / "run", model, *run, "+callbacks.kill={_target_: helpers.faults.KillAt, batch: 6}",
                    check=False)
    assert killed.returncode == -9  # killed in epoch 1 after batch 6 of 8; last.ckpt is from batch 5
    _train(tmp_path / "run", model, *run, "ckpt_path=last")
    full, resumed = read_scalars(str(tmp_path / "full")), read_scalars(str(tmp_path / "run"))
    for tag in ("G/G_tot_step", "D/D_tot_step"):
        a, b = dict(full[tag]), dict(resumed[tag])
        assert len(a) == 8 and set(b) == set(a), tag
        for step in a:
            assert b[step] == pytest.approx(a[step], rel=1e-6, abs=1e-7), (tag, step)
    assert [v for _, v in resumed["G/G_tot_epoch"]] == pytest.approx([v for _, v in full["G/G_tot_epoch"]], rel=1e-6)


@pytest.mark.parametrize("precision", ["32-true", "bf16-mixed"])
@pytest.mark.parametrize("model", ["cyclegan", "cut", "fastcut", "pix2pix"])
def test_every_precision_trains(make_cfg, model, precision):
    cfg = make_cfg(f"model={model}", *TINY[model], f"trainer.precision={precision}", "trainer.max_epochs=1",
                   "trainer.limit_train_batches=2", "logger=[]", "callbacks.model_checkpoint=null", tiny=False)
    datamodule, module, trainer = build(cfg)
    before = {k: v.detach().clone() for k, v in module.named_parameters()}
    trainer.fit(module, datamodule=datamodule)
    values = module.objective.scalars()
    assert all(torch.isfinite(v) for v in values.values()), values
    after = dict(module.named_parameters())
    assert all(v.dtype == torch.float32 for v in after.values())  # fp32 master weights under bf16 autocast
    changed = {k.split(".")[0] for k in before if not torch.equal(before[k], after[k])}
    assert changed & {"discriminator", "D_A", "D_B"} and changed & {"generator", "G", "G_A", "G_B"}, changed

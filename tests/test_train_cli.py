"""Training through Hydra: the curves in the TensorBoard event files, the history file, a -m sweep and the
one-line error of train.py."""

import json
import os

import pytest
from omegaconf import OmegaConf
from trained import run_train

from conftest import TINY_STARGAN, TINY_SYNTHETIC, read_scalars
from lit_gans.train import train

SEED_CURVES = ("d_loss", "g_loss", "g_adv", "sty", "ds", "cyc", "id", "r1", "lambda_ds")


def _series(scalars, name):
    (tag,) = [t for t in scalars if t.split("/")[-1] == name]
    return [v for _, v in scalars[tag]]


@pytest.mark.parametrize("model", ["stargan", "stargan_latent"])
def test_seed_curves_in_tensorboard(make_cfg, tmp_path, model):
    cfg = make_cfg(f"model={model}", "loss.r1_interval=2", "loss.w_ds=2", "loss.ds_decay_epochs=2", "loss.w_id=0",
                   "trainer.max_epochs=3", "trainer.limit_train_batches=3", "trainer.log_every_n_steps=1")
    train(cfg)
    s = read_scalars(str(tmp_path))
    # Every curve of the seed, per step and per epoch, grouped by tag.
    for name in SEED_CURVES:
        group = "D" if name in ("d_loss", "r1") else "G"
        assert f"{group}/{name}_step" in s and f"{group}/{name}_epoch" in s, name
        assert len(s[f"{group}/{name}_step"]) == 9 and len(s[f"{group}/{name}_epoch"]) == 3
    # lambda_ds: w_ds at epoch 1, halfway at epoch 2, 0 past the decay.
    assert _series(s, "lambda_ds_epoch") == pytest.approx([2.0, 1.0, 0.0])
    # r1: non-zero on batches 0, 2, 4, 6, 8 (counted across epochs), 0 elsewhere.
    r1 = _series(s, "r1_step")
    assert [i for i, v in enumerate(r1) if v != 0] == [0, 2, 4, 6, 8]
    # Epoch curves are the mean of the epoch's step values.
    for name in ("r1", "d_loss", "g_loss", "ds"):
        steps, epochs = _series(s, f"{name}_step"), _series(s, f"{name}_epoch")
        for e in range(3):
            assert epochs[e] == pytest.approx(sum(steps[3 * e: 3 * e + 3]) / 3, rel=1e-5, abs=1e-7), (name, e)
    assert _series(s, "id_epoch") == [0.0, 0.0, 0.0]
    # Once lambda_ds is 0 (epoch 3) ds gets no gradient work and leaves g_loss, but its curve is still the true
    # distance between the two latent-guided fakes (the same quantity in every epoch).
    assert all(v > 0 for v in _series(s, "ds_step"))
    g_loss, parts = _series(s, "g_loss_step"), [_series(s, f"{n}_step") for n in ("g_adv", "sty", "cyc")]
    for i in range(6, 9):
        assert g_loss[i] == pytest.approx(sum(p[i] for p in parts), rel=1e-5), i
    # The history file beside the event files has the same epoch means.
    lines = [json.loads(x) for x in open(tmp_path / "tensorboard" / "loss_history.jsonl")]
    assert [r["epoch"] for r in lines] == [1, 2, 3]
    assert [r["losses"]["D/d_loss"] for r in lines] == pytest.approx(_series(s, "d_loss_epoch"), rel=1e-6)
    assert sorted(lines[0]["tags"]) == ["D", "G"]
    assert os.path.exists(tmp_path / "checkpoints" / "last.ckpt")


def _run(args, timeout=600):
    return run_train(None, *args, timeout=timeout, check=False)


@pytest.mark.slow
def test_multirun_sweep_of_two_values(tmp_path):
    p = _run(["-m", "loss.w_sty=1,2", *TINY_STARGAN, *TINY_SYNTHETIC, "trainer.max_steps=4", "trainer.limit_val_batches=0", "trainer.log_every_n_steps=1",
              "trainer.enable_progress_bar=false", "callbacks.judge=null", f"hydra.sweep.dir={tmp_path}"])
    assert p.returncode == 0, p.stderr[-2000:]
    for job, w in ((0, 1.0), (1, 2.0)):
        (job_dir,) = tmp_path.glob(f"{job}_*")  # named by number and overrides
        assert f"loss.w_sty={w:g}" in job_dir.name
        cfg = OmegaConf.load(job_dir / ".hydra" / "config.yaml")
        assert cfg.loss.w_sty == w
        s = read_scalars(str(job_dir))
        assert len(s["G/sty_step"]) == 2  # max_steps=4 optimizer steps = 2 batches (D + G per batch)


def test_train_py_bad_override_and_missing_data_are_one_line(tmp_path):
    p = _run(["model.no_such_key=1", f"hydra.run.dir={tmp_path}"])
    assert p.returncode != 0 and "Traceback" not in p.stderr and "no_such_key" in p.stderr
    p = _run([*TINY_STARGAN, *TINY_SYNTHETIC, "data.num_domains=9", f"hydra.run.dir={tmp_path}", "trainer.max_steps=2"])
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert p.stderr.strip().splitlines()[-1].startswith("error: ")

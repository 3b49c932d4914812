"""A resume with other values than the checkpoint's trains with them and says so in one line, or is refused in one
line: learning rates reach the restored optimizers (and schedules), loss weights the objective, the batch size the
loader, max_epochs the trainer; network sizes and the optimizer's class cannot change; the changes are recorded
beside the run's overrides and ``resume=<run>`` applies them again."""

from __future__ import annotations

import logging
import shutil

import pytest
import torch
import yaml

from conftest import QUIET, TINY_STARGAN, compose_config
from lit_gans.errors import ConfigError
from lit_gans.train import build, train

BASE = [*TINY_STARGAN, "data.per_domain=4", "data.val_per_domain=2", *QUIET, "logger=[]",
        "callbacks.model_checkpoint=null", "callbacks.image_grid=null", "trainer.limit_train_batches=1"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One epoch (of one batch of 4) of a tiny StarGAN v2, its last.ckpt saved at the epoch's end."""
    out = tmp_path_factory.mktemp("resume_base")
    train(compose_config([*BASE, "trainer.max_epochs=1"], str(out)))
    return out


@pytest.fixture
def run(trained, tmp_path):
    """A copy of the trained run to resume (each test changes its checkpoint)."""
    shutil.copytree(trained, tmp_path / "run")
    return tmp_path / "run"


def saved_lrs(run):
    ck = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    return [[g["lr"] for g in s["param_groups"]] for s in ck["optimizer_states"]], ck


def resumed_line(caplog):
    (line,) = [r.getMessage() for r in caplog.records if r.getMessage().startswith("resumed with changes: ")]
    return line


def test_a_new_learning_rate_is_trained_at_reported_and_recorded(run, caplog):
    """StarGAN v2: model.optimizer.lr is the learning rate of D, G and E; F keeps model.mapping_lr."""
    from lit_gans.cli import prepare_train_argv

    with caplog.at_level(logging.INFO, logger="lit_gans"):
        train(compose_config([*BASE, "trainer.max_epochs=2", "ckpt_path=auto", "model.optimizer.lr=0.05"], str(run)))
    (d,), (g, e, f), = saved_lrs(run)[0]  # D; G, E, F (one parameter group each)
    assert d == g == e == 0.05 and f == pytest.approx(1e-6)
    ck = saved_lrs(run)[1]
    assert ck["hyper_parameters"]["optimizer"]["lr"] == 0.05 and ck["run_config"]["trainer"]["max_epochs"] == 2
    messages = [r.getMessage() for r in caplog.records]
    assert any(m.endswith("after epoch 1 (continuing with epoch 2)") and m.startswith("resuming from") for m in messages)
    assert resumed_line(caplog) == ("resumed with changes: model.optimizer.lr 0.0001 -> 0.05, trainer.max_epochs 1 -> 2"
                                    "; learning rates: discriminator, generator, style_encoder 0.0001 -> 0.05; "
                                    "mapping_network 1e-06 (unchanged)")
    (record,) = yaml.safe_load(open(run / ".hydra" / "changes.yaml"))
    assert record["changes"]["model.optimizer.lr"] == {"from": 0.0001, "to": 0.05}
    assert set(record["overrides"]) == {"model.optimizer.lr=0.05", "trainer.max_epochs=2"}
    # resume=<run> continues with the changed config: the original overrides, then the recorded changes.
    (run / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(["trainer.max_epochs=1", "model.dim=8"]))
    argv = prepare_train_argv([f"resume={run}"], now="T")
    assert argv[:3] == ["trainer.max_epochs=2", "model.dim=8", "model.optimizer.lr=0.05"]


def test_a_new_mapping_lr_changes_only_the_mapping_network(run, caplog):
    with caplog.at_level(logging.INFO, logger="lit_gans"):
        train(compose_config([*BASE, "trainer.max_epochs=2", "ckpt_path=last", "model.mapping_lr=1e-3"], str(run)))
    (d,), (g, e, f) = saved_lrs(run)[0]
    assert d == g == e == pytest.approx(1e-4) and f == 1e-3
    assert "model.mapping_lr 1e-06 -> 0.001" in resumed_line(caplog)
    assert resumed_line(caplog).endswith("mapping_network 1e-06 -> 0.001; discriminator, generator, style_encoder "
                                         "0.0001 (unchanged)")


def fit(run, *overrides):
    """What train.py does for ckpt_path=last, returning the model and trainer it fitted."""
    from lit_gans.resume import inspect_checkpoint

    cfg = compose_config([*BASE, "ckpt_path=last", *overrides], str(run))
    path = str(run / "checkpoints" / "last.ckpt")
    datamodule, model, trainer = build(cfg, resume=inspect_checkpoint(path, cfg))
    trainer.fit(model, datamodule=datamodule, ckpt_path=path, weights_only=True)
    return model, trainer


@pytest.mark.parametrize("override, applied, said", [
    ("loss.w_sty=2", lambda model, trainer: model.objective.weight("sty") == 2.0, "loss.w_sty 1 -> 2"),
    ("data.batch_size=2", lambda model, trainer: trainer.train_dataloader.batch_size == 2, "data.batch_size 4 -> 2"),
    ("trainer.max_epochs=3", lambda model, trainer: trainer.current_epoch == 3, "trainer.max_epochs 1 -> 3"),
], ids=["loss weight", "batch size", "max_epochs"])
def test_a_changed_loss_weight_batch_size_and_max_epochs_are_applied_and_said(override, applied, said, run, caplog):
    extra = [] if override.startswith("trainer.max_epochs") else ["trainer.max_epochs=2"]
    with caplog.at_level(logging.INFO, logger="lit_gans"):
        model, trainer = fit(run, override, *extra)
    assert applied(model, trainer)
    assert said in resumed_line(caplog) and "learning rates" not in resumed_line(caplog)


@pytest.mark.parametrize("override, message", [
    ("model.dim=16", r"^model.dim cannot change on resume \(8 in .*last.ckpt, 16 now\): the checkpoint's networks "
                     r"and weights were built with the old value; resume with model.dim=8, or start a new run"),
    ("model.optimizer._target_=torch.optim.AdamW", r"^model.optimizer._target_ cannot change on resume "
                                                   r"\(torch.optim.Adam in .*: the checkpoint holds the state of the "
                                                   r"old optimizer class"),
])
def test_a_network_size_or_the_optimizer_class_cannot_change(override, message, run):
    before = (run / "checkpoints" / "last.ckpt").read_bytes()
    with pytest.raises(ConfigError, match=message):
        train(compose_config([*BASE, "trainer.max_epochs=2", "ckpt_path=last", override], str(run)))
    assert (run / "checkpoints" / "last.ckpt").read_bytes() == before


def test_data_changes_inside_an_epoch_are_refused_but_loader_settings_are_not(run):
    from lit_gans.resume_changes import changes_on_resume

    path = str(run / "checkpoints" / "last.ckpt")
    saved = torch.load(path, weights_only=True)
    cfg = compose_config([*BASE, "data.batch_size=2", "data.num_workers=1"], str(run))
    datamodule, model, _ = build(cfg)
    where = "in epoch 2, after its batch 1"
    with pytest.raises(ConfigError, match="^data.batch_size can change on resume only between epochs, and .* was "
                                          "saved in epoch 2, after its batch 1"):
        changes_on_resume(path, saved, cfg, model, datamodule, mid_epoch=where)
    cfg = compose_config([*BASE, "data.num_workers=1"], str(run))
    datamodule, model, _ = build(cfg)
    changes = changes_on_resume(path, saved, cfg, model, datamodule, mid_epoch=where)
    assert [c.describe() for c in changes if c.key.startswith("data.")] == ["data.num_workers 0 -> 1"]


def test_a_schedule_keeps_its_factor_and_takes_the_new_base_lr(tmp_path, caplog):
    """CycleGAN's linear decay (0 constant epochs, 3 decaying: factor 1 - (e + 1) / 4 in 0-based epoch e, stepped at
    each epoch's end): after epoch 1 the learning rate is 0.5 * base; resumed with a base of 2e-3 it goes on from
    0.5 * 2e-3 (not 2e-3, nor the old base) to 0.25 * 2e-3 after epoch 2."""
    cyclegan = ["model=cyclegan", "model.ngf=4", "model.ndf=4", "model.n_blocks=1", "data.img_size=32", "data.size=4",
                "data.val_size=2", "data.batch_size=2", *QUIET, "logger=[]", "callbacks.model_checkpoint=null",
                "callbacks.image_grid=null", "trainer.limit_train_batches=1", "model.scheduler.n_epochs=0", "model.scheduler.n_epochs_decay=3"]
    train(compose_config([*cyclegan, "trainer.max_epochs=1"], str(tmp_path)))
    lrs, ck = saved_lrs(tmp_path)
    assert lrs[0][0] == pytest.approx(0.5 * 2e-4)
    with caplog.at_level(logging.INFO, logger="lit_gans"):
        train(compose_config([*cyclegan, "trainer.max_epochs=2", "ckpt_path=last", "model.optimizer.lr=2e-3"],
                             str(tmp_path)))
    lrs, ck = saved_lrs(tmp_path)
    assert all(lr == pytest.approx(0.25 * 2e-3) for opt in lrs for lr in opt)
    assert all(base == pytest.approx(2e-3) for s in ck["lr_schedulers"] for base in s["base_lrs"])
    assert "model.optimizer.lr 0.0002 -> 0.002" in resumed_line(caplog)

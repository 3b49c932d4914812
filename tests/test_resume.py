"""Resume and faults: a run killed with SIGKILL and resumed with ckpt_path=last logs, step for step, what an
uninterrupted run logs; the resumable loader; random states; NaN losses stop the run without touching the
last good checkpoint; checkpoints are written atomically."""

import hashlib
import os
import random
import sys

import numpy as np
import pytest
import torch
from trained import run_train

from conftest import ROOT, TINY_STARGAN, TINY_SYNTHETIC, read_scalars
from lit_gans.callbacks import LastCheckpoint, RNGState
from lit_gans.data.resumable_loader import ResumableDataLoader
from lit_gans.data.sampling import EpochSampler, split_key
from lit_gans.errors import TrainingError
from lit_gans.train import train
from lit_gans.utils.checkpoint_io import AtomicCheckpointIO

RUN = [*TINY_STARGAN, *TINY_SYNTHETIC, "model=stargan_latent", "loss.r1_interval=3", "loss.ds_decay_epochs=2",
       "trainer.max_epochs=3", "trainer.limit_train_batches=5", "trainer.limit_val_batches=0",
       "trainer.log_every_n_steps=1", "trainer.deterministic=true", "trainer.enable_progress_bar=false",
       "callbacks.last_checkpoint.every_n_train_steps=2", "callbacks.image_grid.every_n_steps=0",
       "callbacks.judge=null"]


def _train(tmp, *extra, check=True):
    return run_train(tmp, *RUN, *extra, check=check)


@pytest.mark.slow
def test_sigkill_mid_epoch_then_ckpt_path_last_repeats_the_uninterrupted_run(tmp_path):
    _train(tmp_path / "full")
    killed = _train(tmp_path / "run", "+callbacks.kill={_target_: helpers.faults.KillAt, batch: 7}", check=False)
    assert killed.returncode == -9  # SIGKILL in epoch 2, batch 3 of 5: last.ckpt is from the end of batch 6
    _train(tmp_path / "run", "ckpt_path=last")
    full, resumed = read_scalars(str(tmp_path / "full")), read_scalars(str(tmp_path / "run"))
    for tag in ("D/d_loss_step", "G/g_loss_step", "D/r1_step", "G/ds_step", "G/lambda_ds_step", "G/sty_step"):
        a, b = dict(full[tag]), dict(resumed[tag])
        assert len(a) == 15 and set(b) == set(a), tag  # the resumed run logged every step once
        for step in a:
            assert b[step] == pytest.approx(a[step], rel=1e-6, abs=1e-7), (tag, step)
    for tag in ("D/d_loss_epoch", "G/lambda_ds_epoch"):
        assert [v for _, v in resumed[tag]] == pytest.approx([v for _, v in full[tag]], rel=1e-6), tag


class _Indices(torch.utils.data.Dataset):
    def __len__(self):
        return 20

    def __getitem__(self, key):
        return torch.tensor(split_key(key)[0])


def test_loader_resumes_mid_epoch_and_only_in_that_epoch():
    data = _Indices()
    sampler = EpochSampler(20, seed=3, balanced=False)
    pos = {"epoch": 1, "batches": 0}
    loader = ResumableDataLoader(data, batch_size=4, sampler=sampler, drop_last=True,
                                 position=lambda: (pos["epoch"], pos["batches"]))
    full = list(loader)  # the loader set its sampler to epoch 1 itself
    assert sampler.epoch == 1
    pos["batches"] = 2
    state = loader.state_dict()
    assert state == {"epoch": 1, "batches": 2}
    again = ResumableDataLoader(data, batch_size=4, sampler=EpochSampler(20, seed=3, balanced=False), drop_last=True)
    again.load_state_dict(state)
    again.sampler.set_epoch(1)
    rest = list(again)
    assert len(again) == 5 and len(rest) == 3 and all(torch.equal(a, b) for a, b in zip(rest, full[2:], strict=True))
    assert len(list(again)) == 5  # the next iteration is a whole epoch again
    other = ResumableDataLoader(data, batch_size=4, sampler=EpochSampler(20, seed=3, balanced=False), drop_last=True)
    other.load_state_dict(state)
    other.sampler.set_epoch(2)  # the checkpoint was taken at an epoch's end: nothing to skip in the next one
    assert len(list(other)) == 5


def test_rng_state_round_trip():
    cb = RNGState()
    torch.manual_seed(1), np.random.seed(2), random.seed(3)
    state = cb.state_dict()
    want = (torch.rand(3), np.random.rand(3), random.random())
    torch.manual_seed(9), np.random.seed(9), random.seed(9)
    buffer = __import__("io").BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    cb.load_state_dict(torch.load(buffer, weights_only=True))  # plain types only: loads with weights_only

    class T:
        world_size, global_rank = 1, 0

    cb.on_fit_start(T(), None)
    got = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(got[0], want[0]) and np.array_equal(got[1], want[1]) and got[2] == want[2]


def _digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_nan_loss_stops_the_run_naming_term_and_batch_and_keeps_the_last_good_checkpoint(make_cfg, tmp_path):
    cfg = make_cfg("trainer.max_epochs=1", "trainer.limit_train_batches=6", "callbacks.last_checkpoint.every_n_train_steps=2",
                   "callbacks.nonfinite_guard.check_every_n_steps=100",
                   "+callbacks.poison={_target_: helpers.faults.PoisonAt, batch: 3}")
    sys.path.insert(0, os.path.join(ROOT, "tests"))
    saved = {}
    real_save = LastCheckpoint._save

    def spy(self, trainer):
        real_save(self, trainer)
        saved[trainer.fit_loop.total_batch_idx] = _digest(tmp_path / "checkpoints" / "last.ckpt")

    LastCheckpoint._save = spy
    try:
        with pytest.raises(TrainingError) as err:
            train(cfg)
    finally:
        LastCheckpoint._save = real_save
    msg = str(err.value)
    assert "became NaN/Inf at batch 3 (epoch 1)" in msg and msg.startswith("loss term ") and "\n" not in msg
    assert sorted(saved) == [0, 1, 2]  # the save at the end of batch 3 was stopped
    assert _digest(tmp_path / "checkpoints" / "last.ckpt") == saved[2]  # the last good one is intact
    assert torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 6


def test_checkpoints_are_written_atomically(tmp_path, monkeypatch):
    io = AtomicCheckpointIO()
    target = tmp_path / "last.ckpt"
    io.save_checkpoint({"step": 1}, target)
    good = target.read_bytes()

    def crash(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError):
        io.save_checkpoint({"step": 2, "big": torch.zeros(1000)}, target)
    assert target.read_bytes() == good and os.listdir(tmp_path) == ["last.ckpt"]  # no temp file left behind
    monkeypatch.undo()
    io.save_checkpoint({"step": 3}, target)
    assert torch.load(target, weights_only=True) == {"step": 3}


def test_sigusr2_writes_last_checkpoint_then_calls_the_previous_handler(make_cfg, tmp_path):
    import signal

    from lightning.pytorch.callbacks import Callback

    calls = []

    def requeue(signum, frame):  # what submitit's handler would do: requeue the job from the checkpoint on disk
        calls.append((signum, torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)["global_step"]))

    previous = signal.signal(signal.SIGUSR2, requeue)

    class SendAt(Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            if batch_idx == 2:
                os.kill(os.getpid(), signal.SIGUSR2)

    cfg = make_cfg("trainer.max_epochs=1", "trainer.limit_train_batches=4")
    try:
        from lit_gans.train import build

        datamodule, model, trainer = build(cfg)
        trainer.callbacks.insert(0, SendAt())
        trainer.fit(model, datamodule=datamodule)
    finally:
        signal.signal(signal.SIGUSR2, previous)
    assert calls == [(signal.SIGUSR2, 6)]  # saved after batch 2 (2 optimizer steps a batch), then handed on

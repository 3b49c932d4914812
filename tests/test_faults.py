"""Never lose a run: with the default checkpoint config, a run killed (``kill -9``), stopped (SIGTERM, Ctrl-C)
or out of disk resumes exactly where its last checkpoint was taken; the step curves and the history file go on
without gaps or duplicates; a second run in a busy folder, a resume from nothing and a fresh start on top of a
run are refused; partial saves are cleaned up. See docs/faults.md."""

import glob
import hashlib
import json
import os
import signal
import subprocess
import sys

import pytest
import torch
from trained import run_train

from conftest import ROOT, TINY_STARGAN, TINY_SYNTHETIC, read_scalars
from lit_gans.errors import ConfigError, Interrupted
from lit_gans.train import train

sys.path.insert(0, os.path.join(ROOT, "tests"))

# 3 epochs of 3 batches out of a loader of 6 (limit_train_batches below the loader's length). No override of
# callbacks.last_checkpoint: the default checkpoint config is what is tested.
RUN = [*TINY_STARGAN, *TINY_SYNTHETIC, "model=stargan_latent", "loss.r1_interval=3", "loss.ds_decay_epochs=2",
       "trainer.max_epochs=3", "trainer.limit_train_batches=3", "trainer.limit_val_batches=0",
       "trainer.log_every_n_steps=1", "trainer.deterministic=true", "trainer.enable_progress_bar=false",
       "trainer.enable_model_summary=false", "callbacks.image_grid.every_n_steps=0", "callbacks.judge=null"]
TAGS = ("D/d_loss_step", "G/g_loss_step", "D/r1_step", "G/ds_step", "G/sty_step", "D/d_loss_epoch")


def _subprocess(run_dir, *extra, timeout=600):
    return run_train(run_dir, *RUN, *extra, timeout=timeout, check=False)


def _history(run_dir):
    rows = []
    for f in glob.glob(os.path.join(str(run_dir), "**", "loss_history.jsonl"), recursive=True):
        rows += [json.loads(line) for line in open(f) if line.strip()]
    return rows


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("full")
    p = _subprocess(run_dir)
    assert p.returncode == 0, p.stderr[-3000:]
    return read_scalars(str(run_dir)), _history(run_dir)


def _assert_same_run(resumed_dir, uninterrupted):
    full, full_history = uninterrupted
    resumed = read_scalars(str(resumed_dir))
    for tag in TAGS:
        steps = [s for s, _ in resumed[tag]]
        assert steps == [s for s, _ in full[tag]], (tag, steps)  # no gap, no duplicate, no shift of the step axis
        for (_, a), (_, b) in zip(full[tag], resumed[tag], strict=True):
            assert b == pytest.approx(a, rel=1e-6, abs=1e-7), tag
    history = _history(resumed_dir)
    assert [r["epoch"] for r in history] == [1, 2, 3] and [r["step"] for r in history] == [3, 6, 9]
    for a, b in zip(full_history, history, strict=True):
        assert b["losses"] == pytest.approx(a["losses"], rel=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("batch", [4, 6], ids=["mid-epoch", "epoch-boundary"])
def test_kill9_with_the_default_config_resumes_exactly(tmp_path, uninterrupted, batch):
    """``kill -9`` in the middle of epoch 2 (batch 4) and just after epoch 2's end was saved (batch 6, the first
    of epoch 3): ``ckpt_path=last`` continues from the epoch-end checkpoint and repeats the uninterrupted run."""
    killed = _subprocess(tmp_path, f"+callbacks.kill={{_target_: helpers.faults.KillAt, batch: {batch}}}")
    assert killed.returncode == -signal.SIGKILL
    assert os.path.isfile(tmp_path / "checkpoints" / "last.ckpt")
    resumed = _subprocess(tmp_path, "ckpt_path=last")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    _assert_same_run(tmp_path, uninterrupted)


@pytest.mark.slow
@pytest.mark.parametrize(("signame", "batch", "code"), [("SIGTERM", 5, 143), ("SIGINT", 4, 130)],
                         ids=["sigterm-at-an-epochs-last-batch", "ctrl-c-mid-epoch"])
def test_sigterm_and_ctrl_c_save_say_so_and_exit_non_zero(tmp_path, uninterrupted, signame, batch, code):
    stopped = _subprocess(tmp_path, f"+callbacks.sig={{_target_: helpers.faults.SignalAt, batch: {batch}, "
                                    f"signal_name: {signame}}}")
    assert stopped.returncode == code, stopped.stderr[-2000:]
    last = stopped.stderr.strip().splitlines()[-1]
    where = "at the end of epoch 2" if batch == 5 else f"in epoch 2, batch {batch - 2} of 3"  # 5: epoch 2's last
    assert last.startswith(f"stopped by {signame} {where}: saved {tmp_path}/checkpoints/last.ckpt; resume with: ")
    assert "Traceback" not in stopped.stderr
    assert f"hydra.run.dir={tmp_path} ckpt_path=last" in last and "trainer.limit_train_batches=3" in last
    ck = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)
    assert ck["global_step"] == 2 * (batch + 1)  # the batch it was told in was finished and saved
    resumed = _subprocess(tmp_path, "ckpt_path=last")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    _assert_same_run(tmp_path, uninterrupted)


def _in_process(make_cfg, *extra):
    return make_cfg(*RUN[len(TINY_STARGAN) + len(TINY_SYNTHETIC):], *extra)


@pytest.mark.slow
@pytest.mark.parametrize("trigger", ["callbacks.last_checkpoint.every_n_train_steps=2",
                                     "callbacks.last_checkpoint.every_n_minutes=1e-9"], ids=["steps", "minutes"])
def test_step_and_time_saves_resume_exactly_from_any_batch(make_cfg, tmp_path, uninterrupted, trigger):
    """A save after every batch (mid-epoch ones, and an epoch's last batch under limit_train_batches, which is
    taken at the epoch's end instead); then SIGTERM in epoch 2; the resume repeats the uninterrupted run."""
    cfg = _in_process(make_cfg, trigger, "+callbacks.sig={_target_: helpers.faults.SignalAt, batch: 4}")
    with pytest.raises(Interrupted) as stop:
        train(cfg)
    assert stop.value.exit_code == 143
    assert torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 10
    train(_in_process(make_cfg, trigger, "ckpt_path=last"))
    _assert_same_run(tmp_path, uninterrupted)


def test_a_second_live_run_in_the_same_folder_is_refused_and_a_dead_ones_lock_is_not_stale(make_cfg, tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from lit_gans.utils.rundir import RunLock; "
                               f"lock = RunLock({str(tmp_path)!r}); lock.acquire(); print('locked', flush=True); time.sleep(60)"],
                              cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(ConfigError, match=rf"^{tmp_path} is in use: pid {holder.pid} on .* is training in it; "):
            train(_in_process(make_cfg, "trainer.max_steps=2"))
        p = _subprocess(tmp_path, "trainer.max_steps=2")  # train.py refuses before Hydra rewrites .hydra/
        assert p.returncode == 2 and p.stderr.strip().splitlines()[-1].startswith(f"error: {tmp_path} is in use")
        assert not os.path.exists(tmp_path / ".hydra")
    finally:
        holder.kill()  # kill -9: the kernel drops its lock
        holder.wait()
    train(_in_process(make_cfg, "trainer.max_steps=2"))
    assert os.path.isfile(tmp_path / "checkpoints" / "last.ckpt")


def test_partial_saves_of_killed_runs_are_removed_at_the_next_start(make_cfg, tmp_path):
    os.makedirs(tmp_path / "checkpoints")
    partial = tmp_path / "checkpoints" / ".last.ckpt.tmp123456"
    partial.write_bytes(b"x" * 1000)
    kept = tmp_path / "checkpoints" / "notes.txt"
    kept.write_text("mine")
    train(_in_process(make_cfg, "trainer.max_steps=2", "ckpt_path=auto"))
    assert not partial.exists() and kept.read_text() == "mine"


def test_resume_from_nothing_and_a_fresh_start_on_a_run_are_refused(make_cfg, tmp_path):
    with pytest.raises(ConfigError, match="^ckpt_path=last: nothing to resume in .* drop ckpt_path to start a new run$"):
        train(_in_process(make_cfg, "ckpt_path=last"))
    train(_in_process(make_cfg, "trainer.max_epochs=1"))
    with pytest.raises(ConfigError, match=r"already holds a run \(checkpoints/last.ckpt, a loss history of 1 epoch"):
        train(_in_process(make_cfg, "trainer.max_epochs=2"))
    os.unlink(tmp_path / "checkpoints" / "last.ckpt")
    with pytest.raises(ConfigError, match="holds a loss history of 1 epoch.* but no checkpoints/last.ckpt"):
        train(_in_process(make_cfg, "trainer.max_epochs=2", "ckpt_path=last"))


def test_ckpt_path_auto_resumes_when_there_is_a_checkpoint_and_starts_when_there_is_none(make_cfg, tmp_path):
    train(_in_process(make_cfg, "trainer.max_epochs=1", "ckpt_path=auto"))  # nothing yet: a new run
    train(_in_process(make_cfg, "trainer.max_epochs=2", "ckpt_path=auto"))  # the requeued job continues
    assert [r["epoch"] for r in _history(tmp_path)] == [1, 2]


def _digest(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


@pytest.fixture
def small_disk(tmp_path):
    mount = tmp_path / "disk"
    mount.mkdir()
    p = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mount)], capture_output=True, text=True)
    if p.returncode:
        pytest.skip(f"cannot mount a small tmpfs here ({p.stderr.strip()[:80]}): the disk-full test needs one")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], capture_output=True)


@pytest.mark.slow
def test_a_full_disk_stops_with_one_line_and_keeps_the_last_good_checkpoint(tmp_path, small_disk):
    run_dir = small_disk / "run"
    ok = _subprocess(run_dir, "trainer.max_epochs=1")
    assert ok.returncode == 0, ok.stderr[-2000:]
    good = _digest(run_dir / "checkpoints" / "last.ckpt")
    # Fill the disk during epoch 2: its epoch-end save cannot be written.
    full = _subprocess(run_dir, "trainer.max_epochs=2", "ckpt_path=last",
                       f"+callbacks.fill={{_target_: helpers.faults.FillDiskAt, batch: 4, path: {small_disk}/filler}}")
    assert full.returncode == 2 and "Traceback" not in full.stderr, full.stderr[-3000:]
    last = full.stderr.strip().splitlines()[-1]
    assert last.startswith("error: no space left on the device while writing ") and "free some space first" in last
    assert f"the last complete checkpoint is {run_dir}/checkpoints/last.ckpt" in last
    assert _digest(run_dir / "checkpoints" / "last.ckpt") == good
    assert [n for n in os.listdir(run_dir / "checkpoints") if n != "last.ckpt"] == []  # no partial file left
    os.unlink(small_disk / "filler")
    again = _subprocess(run_dir, "trainer.max_epochs=2", "ckpt_path=last")
    assert again.returncode == 0, again.stderr[-2000:]
    assert [r["epoch"] for r in _history(run_dir)] == [1, 2]


def test_a_torn_last_history_line_is_dropped_on_resume_and_skipped_by_curves(make_cfg, tmp_path):
    from lit_gans.curves.reading import read_history

    train(_in_process(make_cfg, "trainer.max_epochs=1"))
    history = tmp_path / "tensorboard" / "loss_history.jsonl"
    with open(history, "a") as f:
        f.write('{"epoch": 2, "step": 6, "losses": {"D/d_lo')  # a kill while the line was being written
    assert list(read_history(history)["D/d_loss"].epochs) == [1]
    train(_in_process(make_cfg, "trainer.max_epochs=2", "ckpt_path=last"))
    assert [r["epoch"] for r in _history(tmp_path)] == [1, 2]


def test_stop_on_signal_lets_a_second_ctrl_c_stop_at_once(make_cfg, tmp_path):
    """The first Ctrl-C asks for a save at the batch's end; a second one, before that, stops without saving and
    names the last complete checkpoint."""
    cfg = _in_process(make_cfg, "trainer.max_epochs=2",
                      "+callbacks.sig={_target_: helpers.faults.SignalAt, batch: 4, signal_name: SIGINT, times: 2}")
    with pytest.raises(Interrupted) as stop:
        train(cfg)
    msg = str(stop.value)
    assert stop.value.exit_code == 130 and msg.startswith("stopped at once by a second Ctrl-C in epoch 2")
    assert f"the last complete checkpoint is {tmp_path}/checkpoints/last.ckpt" in msg and "\n" not in msg
    assert torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 6  # epoch 1's


"""lit_gans/compat.py isolates the library internals lit_gans needs; these tests fail loudly when a library
release changes one of them, naming what to adapt. They also pin that no other module reaches for those names."""

import os
import re
import subprocess

import pytest
import torch
from lightning.pytorch.callbacks import Callback
from torch.utils.data import Dataset

from conftest import ROOT
from lit_gans import compat
from lit_gans.train import build

PRIVATE = re.compile(r"\._results\b|_batches_that_stepped|torch\._utils|_index_sampler|_NoTrainLpips|\._call_impl|"
                     r"fit_loop\.epoch_loop\.|epoch_progress|batch_progress|_configure_optimizers|"
                     r"torch\._foreach|fx\.experimental import _config|\._trainer\b")


def test_no_module_but_compat_reaches_for_library_internals():
    hits = []
    for dirpath, _, files in os.walk(os.path.join(ROOT, "lit_gans")):
        for name in files:
            path = os.path.join(dirpath, name)
            if not name.endswith(".py") or path.endswith(os.path.join("lit_gans", "compat.py")):
                continue
            for n, line in enumerate(open(path, encoding="utf-8"), 1):
                if PRIVATE.search(line):
                    hits.append(f"{os.path.relpath(path, ROOT)}:{n}: {line.strip()}")
    assert hits == [], "use lit_gans.compat instead:\n" + "\n".join(hits)


class _Probe(Callback):
    def __init__(self):
        self.seen = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.seen.append((compat.epochs_done(trainer), compat.batches_done_in_epoch(trainer),
                          compat.batches_completed_in_epoch(trainer)))


def test_lightning_loop_progress_counts_epochs_and_batches(make_cfg):
    datamodule, model, trainer = build(make_cfg("trainer.max_epochs=2", "trainer.limit_train_batches=3", "logger=[]"))
    probe = _Probe()
    trainer.callbacks.append(probe)
    trainer.fit(model, datamodule=datamodule)
    # at a batch's end: (epochs done, batches of this epoch processed, completed: this one not yet)
    assert probe.seen == [(0, 1, 0), (0, 2, 1), (0, 3, 2), (1, 1, 0), (1, 2, 1), (1, 3, 2)], (
        "Lightning's loop progress counters changed: adapt lit_gans/compat.py (the resumable loader and the "
        "stop message read them)")


class _LoggingProbe(Callback):
    def __init__(self):
        self.seen = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        pl_module.log("probe", float(len(self.seen)), on_step=True, on_epoch=False)
        self.seen.append(compat.train_logging_step(trainer))


def test_lightning_logging_step_and_which_batches_it_writes(make_cfg, tmp_path):
    from conftest import read_scalars

    datamodule, model, trainer = build(make_cfg("trainer.max_epochs=2", "trainer.limit_train_batches=4",
                                                "trainer.log_every_n_steps=3"))
    probe = _LoggingProbe()
    trainer.callbacks.append(probe)
    trainer.fit(model, datamodule=datamodule)
    assert probe.seen == [(0, False), (1, False), (2, True), (3, False), (4, False), (5, True), (6, False),
                          (7, False)], "Lightning's logging step or cadence changed: adapt lit_gans/compat.py"
    # What Lightning wrote: the batches reported as written, at the reported steps.
    assert read_scalars(str(tmp_path))["probe"] == [(2, 2.0), (5, 5.0)]


def test_lightning_parses_configure_optimizers_return_values():
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.Adam([p])
    sched = torch.optim.lr_scheduler.StepLR(opt, 1)
    optimizers, configs = compat.configure_optimizers({"optimizer": opt, "lr_scheduler": {"scheduler": sched,
                                                                                          "interval": "step"}})
    assert optimizers == [opt] and [(c.scheduler, c.interval) for c in configs] == [(sched, "step")]
    optimizers, configs = compat.configure_optimizers((opt, torch.optim.SGD([p], lr=0.1)))
    assert len(optimizers) == 2 and configs == []


class _Range(Dataset):
    def __len__(self):
        return 12

    def __getitem__(self, i):
        return torch.tensor(i)


@pytest.mark.parametrize("workers", [0, 2])
def test_a_skipping_loader_skips_batches_without_loading_them(workers):
    loader = compat.SkippingDataLoader(_Range(), batch_size=3, num_workers=workers)
    loader.skip_batches = 2
    assert [b.tolist() for b in loader] == [[6, 7, 8], [9, 10, 11]]
    loader.skip_batches = 0
    assert len(list(loader)) == 4


def test_fused_foreach_copy_and_size_oblivious_tracing_exist():
    dst, src = [torch.zeros(2), torch.zeros(3)], [torch.ones(2), torch.full((3,), 2.0)]
    compat.foreach_copy_(dst, src)
    assert [d.tolist() for d in dst] == [[1.0, 1.0], [2.0, 2.0, 2.0]]
    with compat.size_oblivious_tracing():
        pass


def test_torchmetrics_lpips_network_takes_local_backbone_weights():
    net = compat.lpips_network("alex")
    assert hasattr(net, "net") and any(True for _ in net.net.named_children())
    out = net(torch.zeros(1, 3, 64, 64), torch.zeros(1, 3, 64, 64))
    assert out.shape == (1, 1, 1, 1)


def test_the_acceptance_grep_finds_nothing_outside_compat():
    """The same search as the project's acceptance check for issue 16, as a user would run it."""
    pattern = (r"\._results\b|_batches_that_stepped|torch\._utils|_index_sampler|_NoTrainLpips|\._call_impl|"
               r"fit_loop\.epoch_loop\.|epoch_progress|batch_progress")
    p = subprocess.run(["grep", "-rnE", pattern, "lit_gans", "--include=*.py"], cwd=ROOT, capture_output=True, text=True)
    outside = [line for line in p.stdout.splitlines() if not line.startswith("lit_gans/compat")]
    assert outside == []


def test_checkpoint_progress_reads_lightnings_saved_loop_counters(trained):
    """The session's tiny StarGAN v2 stopped at max_steps after one batch of its first epoch; Lightning counts an
    epoch that a stop ends as processed (started 1, processed 1), so nothing is left to skip on a resume."""
    from lit_gans.compat import checkpoint_progress

    ckpt = torch.load(trained("stargan"), map_location="cpu", weights_only=True)
    assert checkpoint_progress(ckpt) == (1, 0)
    assert checkpoint_progress({"loops": {}}) == (None, 0)

"""The judge (lit_gans.metrics.judge): a domain classifier trained on the run's own data, the StarGAN papers'
"classification accuracy" protocol with no download. It recovers known labels, is at chance on noise, tells an
untrained translator from a trained one, reaches python -m lit_gans.evaluate without the Inception weights, and
its callback logs what a direct evaluation of the same checkpoint gives."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from conftest import QUIET, ROOT, compose_config, read_scalars
from lit_gans.data.synthetic import SyntheticDomainsDataModule
from lit_gans.metrics.judge import Judge, cached_judge, domain_tensors, judge_model, train_judge
from lit_gans.train import build, train

SHAPES = ["data.per_domain=64", "data.val_per_domain=10", "data.batch_size=8"]
STARGAN = ["model.img_size=32", "model.dim=16", "model.max_conv_dim=64", "model.mapping_dim=64", "model.style_dim=16",
           "model.latent_dim=8", "model.optimizer.lr=1e-3", "model.mapping_lr=1e-5", *SHAPES]


@pytest.fixture(scope="module")
def shapes():
    dm = SyntheticDomainsDataModule(img_size=32, per_domain=64, val_per_domain=10, batch_size=8, latent_dim=8)
    dm.setup("fit")
    return dm


def test_the_judge_recovers_the_shapes_and_is_at_chance_on_noise(shapes, tmp_path):
    x, y = domain_tensors(shapes.train_set)
    judge = train_judge(x, y, shapes.domain_names)
    assert judge.real_accuracy >= 0.95  # held-out real images of the training split
    vx, vy = domain_tensors(shapes.val_set)
    assert float((judge.predict(vx) == vy).float().mean()) >= 0.9  # the validation split
    noise = torch.rand(600, *x.shape[1:], generator=torch.Generator().manual_seed(0)) * 2 - 1
    labels = torch.randint(0, 3, (600,), generator=torch.Generator().manual_seed(1))
    assert 0.2 <= float((judge.predict(noise) == labels).float().mean()) <= 0.47  # chance: 1/3
    # Cached by the data's content: the same tensors give the saved judge back, other tensors a new one.
    first = cached_judge(x, y, shapes.domain_names, tmp_path)
    (saved,) = list(tmp_path.glob("judge_*.pt"))
    again = cached_judge(x, y, shapes.domain_names, tmp_path)
    assert isinstance(again, Judge) and again.key == first.key and saved.name == f"judge_{first.key}.pt"
    assert torch.equal(again.predict(vx), first.predict(vx))
    cached_judge(x.flip(-1), y, shapes.domain_names, tmp_path)
    assert len(list(tmp_path.glob("judge_*.pt"))) == 2


def test_the_judge_tells_a_translator_that_changes_the_domain_from_one_that_does_not(tmp_path):
    """The protocol on the quickstart's data, without training a GAN: an untrained StarGAN v2 is near chance, the
    identity (keeps every source's shape) scores 0, and an oracle that returns a real held-out image of the target
    domain scores about 1, with a lower Fréchet distance than the untrained model. (Training the quickstart for a
    few epochs took 90 s here and only moved the accuracy from 0.25 to 0.54; `make figures` measures the trained
    quickstart, and test_the_callback_logs_what_evaluating_the_checkpoint_gives checks a trained checkpoint.)"""
    from lit_gans.metrics.judge import default_cache_dir, judge_multidomain

    cfg = compose_config(["experiment=quickstart", *QUIET, "logger=[]"], str(tmp_path))
    dm, model, _ = build(cfg)
    untrained = judge_model(model, dm, num_styles=1, max_sources=60)
    assert untrained["judge_real_accuracy"] >= 0.95 and untrained["judge_chance"] == pytest.approx(1 / 3)
    assert untrained["judge_accuracy"] <= 0.45
    assert set(untrained["judge_accuracy_pairs"]) == {f"{a}->{b}" for a in dm.domain_names for b in dm.domain_names
                                                      if a != b}

    dm.setup("fit")
    train_x, train_y = domain_tensors(dm.train_set, 3000)
    judge = cached_judge(train_x, train_y, list(dm.domain_names), default_cache_dir(dm))  # the one judge_model trained
    x, y = domain_tensors(dm.val_set, 60)
    pool = {t: train_x[train_y == t] for t in range(len(dm.domain_names))}

    def oracle(xb, t, z):  # a real image of the target domain for every source
        return pool[t][torch.randint(len(pool[t]), (len(xb),))]

    def identity(xb, t, z):
        return xb

    latent_dim = model.net_cfg["latent_dim"]
    perfect = judge_multidomain(oracle, judge, x, y, x, y, latent_dim=latent_dim, num_styles=1)
    unchanged = judge_multidomain(identity, judge, x, y, x, y, latent_dim=latent_dim, num_styles=1)
    assert perfect["judge_accuracy"] >= 0.95 and unchanged["judge_accuracy"] == 0.0
    assert perfect["judge_fd"] < untrained["judge_fd"]


def _evaluate(tmp_path, ckpt, *extra, env=None):
    return subprocess.run([sys.executable, "-m", "lit_gans.evaluate", f"ckpt={ckpt}", *SHAPES, "metrics.num_styles=1",
                           "metrics.max_sources=12", "progress=false", *extra], cwd=ROOT, capture_output=True,
                          text=True, timeout=300, env={**os.environ, **(env or {})})


@pytest.fixture(scope="module")
def judged_run(tmp_path_factory):
    """Two epochs of a tiny StarGAN v2 with the judge callback at the second."""
    out = tmp_path_factory.mktemp("judged")
    train(compose_config([*STARGAN, *QUIET, "trainer.max_epochs=2", "trainer.limit_train_batches=2",
                          "callbacks.judge.every_n_epochs=2", "callbacks.judge.max_sources=12",
                          "callbacks.model_checkpoint=null"], str(out)))
    return out


def test_evaluate_without_inception_weights_reports_the_judge_and_exits_0(judged_run, tmp_path):
    ckpt = judged_run / "checkpoints" / "last.ckpt"
    p = _evaluate(tmp_path, ckpt, f"hydra.run.dir={tmp_path}/eval", env={"TORCH_HOME": str(tmp_path / "torch")})
    assert p.returncode == 0, p.stderr[-2000:]
    skipped = [line for line in p.stderr.splitlines() if line.startswith("skipped")]
    assert len(skipped) == 1 and skipped[0].startswith("skipped FID, KID, LPIPS: ")
    assert "metrics.download=true" in skipped[0] and "internet" not in skipped[0]
    report = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    judge = report["metrics"]["judge"]
    assert 0 <= judge["judge_accuracy"] <= 1 and judge["judge_fd"] >= 0 and len(judge["judge_accuracy_pairs"]) == 6
    assert judge["judge_accuracy"] == pytest.approx(sum(judge["judge_accuracy_pairs"].values()) / 6)
    assert set(judge["judge_fd_domains"]) == {"circle", "square", "triangle"}
    assert "judge" in p.stdout and "source->target" in p.stdout


def test_a_failed_evaluate_leaves_no_run_folder(tmp_path):
    p = _evaluate(tmp_path, tmp_path / "missing.ckpt", f"hydra.run.dir={tmp_path}/eval")
    assert p.returncode == 2 and p.stderr.strip().splitlines()[-1].startswith("error: ")
    assert not (tmp_path / "eval").exists()


def test_the_callback_logs_what_evaluating_the_checkpoint_gives(judged_run):
    from lit_gans import inference

    s = read_scalars(str(judged_run))
    (step_acc, logged_acc), = s["val/judge_accuracy"]
    (_, logged_fd), = s["val/judge_fd"]
    model, _ = inference.load_model(judged_run / "checkpoints" / "last.ckpt")
    dm, _, _ = build(compose_config([*STARGAN, *QUIET], str(judged_run / "direct")))  # the run's data
    direct = judge_model(model, dm, None, num_styles=1, max_sources=12, max_train=3000)
    assert logged_acc == pytest.approx(direct["judge_accuracy"], abs=1e-6)
    assert logged_fd == pytest.approx(direct["judge_fd"], rel=1e-4)
    # StarGAN v2's hallmarks (lit_gans.metrics.hallmarks) come with it, the shapes' ones on the built-in data
    for key in ("judge_accuracy_ref", "ref_retrieval", "latent_diversity", "shapes_colour_followed",
                "shapes_colour_diversity", "shapes_position_error", "shapes_target_ref", "shapes_target_latent"):
        (_, logged), = s[f"val/{key}"]
        assert logged == pytest.approx(direct[key], rel=1e-4, abs=1e-6), key

"""The benchmark: its figures are consistent, and its plain loop runs the very same step as Lightning."""

import copy
import json

import pytest
import torch
from helpers.capture import Capture

from conftest import TINY_STARGAN, TINY_SYNTHETIC
from lit_gans.bench.__main__ import main as bench_main
from lit_gans.bench.runner import PlainRunner, run_benchmark
from lit_gans.train import build


def test_bench_reports_and_writes_json(tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert bench_main(["--steps", "3", "--warmup", "1", "--compare-plain", "--out", str(out), *TINY_STARGAN,
                       *TINY_SYNTHETIC, "model=stargan_latent"]) == 0
    r = json.loads(out.read_text())
    assert r["model"] == "StarGANv2" and r["batch_size"] == 4 and r["steps"] == 3
    assert r["img_per_s"] == pytest.approx(r["batch_size"] / r["s_per_step"])
    assert r["achieved_tflops"] == pytest.approx(r["tflop_per_step"] / r["s_per_step"])
    assert r["tflop_per_step"] > 0 and 0 <= r["outside_step_share"] < 1 and r["peak_memory_gb"] > 0
    assert r["plain"]["s_per_step"] > 0 and "lightning_overhead_pct" in r
    assert "img/s" in capsys.readouterr().out


def test_flops_per_step_scale_with_the_batch(tmp_path):
    small = run_benchmark([*TINY_STARGAN, *TINY_SYNTHETIC, "data.batch_size=2"], steps=1, warmup=0, output_dir=str(tmp_path))
    large = run_benchmark([*TINY_STARGAN, *TINY_SYNTHETIC, "data.batch_size=4"], steps=1, warmup=0, output_dir=str(tmp_path))
    assert large["tflop_per_step"] == pytest.approx(2 * small["tflop_per_step"], rel=0.02)


def test_plain_loop_runs_the_same_step_as_lightning(make_cfg):
    cfg = make_cfg("loss.r1_interval=1", "trainer.max_epochs=1", "trainer.limit_train_batches=2", "logger=[]",
                   "callbacks.model_checkpoint=null", "callbacks.last_checkpoint=null")
    datamodule, model, trainer = build(cfg)
    twin = copy.deepcopy(model)
    cap = Capture()
    trainer.callbacks.append(cap)
    trainer.fit(model, datamodule=datamodule)
    schedules = [copy.deepcopy(c) for c in trainer.callbacks if type(c).__module__.endswith("schedules")]
    for c in schedules:
        if hasattr(c, "batches_trained"):
            c.batches_trained = 0
    runner = PlainRunner(twin, schedules, "32-true")
    for batch, want, _ in cap.steps:
        runner.step(batch)
        got = twin.objective.scalars()
        for k, v in want.items():
            assert got[k].item() == pytest.approx(v.item(), rel=1e-5, abs=1e-6), k
    for a, b in zip(twin.parameters(), model.parameters(), strict=True):
        assert torch.allclose(a, b, atol=1e-6)

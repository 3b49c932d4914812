"""The first hour of a user: HParams and Custom Scalars in TensorBoard, step curves with real values at the
default logging interval, the progress bar's totals, the closing summary, a quiet console, resume=<run dir>,
runs named by their overrides, the sweep table and every command's --help."""

import glob
import json
import os
import runpy
import sys

import pytest
import yaml
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from trained import run_train

from conftest import ROOT, TINY_STARGAN, TINY_SYNTHETIC, read_scalars
from lit_gans.cli import prepare_train_argv, run_suffix
from lit_gans.errors import ConfigError
from lit_gans.sweeps import format_table, sweep_rows
from lit_gans.train import train

RUN = ["loss.w_sty=2", "loss.r1_interval=4", "trainer.max_epochs=1", "data.per_domain=16",  # 12 batches of 4
       "trainer.deterministic=true"]


def _hparams(run_dir):
    """(hparams, metric tags) of the HParams session in a run's event files."""
    from tensorboard.plugins.hparams import plugin_data_pb2

    params, metrics = {}, []
    for f in glob.glob(os.path.join(str(run_dir), "**", "events.out.tfevents.*"), recursive=True):
        ea = EventAccumulator(f)
        ea.Reload()
        for tag in ea.Tags()["tensors"]:
            if tag not in ("_hparams_/session_start_info", "_hparams_/experiment"):
                continue
            data = ea.SummaryMetadata(tag).plugin_data.content
            info = plugin_data_pb2.HParamsPluginData.FromString(data)
            if info.HasField("session_start_info"):
                for k, v in info.session_start_info.hparams.items():
                    params[k] = getattr(v, v.WhichOneof("kind"))
            if info.HasField("experiment"):
                metrics = [m.name.tag for m in info.experiment.metric_infos]
    return params, metrics


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The same deterministic run logged every 10 batches (the default) and every batch."""
    from conftest import compose_config

    out = {}
    for every in (10, 1):
        run_dir = tmp_path_factory.mktemp(f"every{every}")
        cfg = compose_config([*TINY_STARGAN, *TINY_SYNTHETIC, "trainer.enable_progress_bar=false",
                              "trainer.limit_val_batches=0", *RUN, f"trainer.log_every_n_steps={every}"], str(run_dir))
        train(cfg)
        out[every] = (run_dir, read_scalars(str(run_dir)))
    return out


def test_hparams_tab_holds_the_composed_config_and_the_epoch_means(runs):
    run_dir, _ = runs[10]
    params, metrics = _hparams(run_dir)
    assert params["loss.w_sty"] == 2.0 and params["model._target_"] == "lit_gans.models.StarGANv2"
    assert params["data.per_domain"] == 16 and params["data.batch_size"] == 4
    assert not any(k.startswith(("hydra.", "paths.", "callbacks.")) for k in params)
    assert {"G/g_loss_epoch", "D/d_loss_epoch", "D/r1_epoch", "G/sty_epoch"} <= set(metrics)


def test_lazy_r1_step_curve_shows_real_values_and_its_epoch_mean_keeps_the_zeros(runs):
    _, sparse = runs[10]
    _, dense = runs[1]
    r1 = dict(dense["D/r1_step"])  # every batch: R1 on batches 0, 4, 8, and 0 in between (the seed's curve)
    assert [k for k in range(12) if r1[k] != 0] == [0, 4, 8] and len(r1) == 12
    # Logged every 10 batches, the curve still has every R1 batch at its own step with its value (and the
    # logged batch 9, not an R1 batch, at 0).
    assert sparse["D/r1_step"] == [(0, pytest.approx(r1[0])), (4, pytest.approx(r1[4])), (8, pytest.approx(r1[8])),
                                   (9, 0.0)]
    assert sparse["D/d_loss_step"][0][0] == 9  # the other curves as Lightning writes them
    (_, epoch_mean), = sparse["D/r1_epoch"]
    assert epoch_mean == pytest.approx((r1[0] + r1[4] + r1[8]) / 12, rel=1e-5)  # the seed's mean, zeros included


def test_custom_scalars_band_is_the_epochs_step_range(runs):
    run_dir, s = runs[1]
    d_loss = [v for _, v in s["D/d_loss_step"]]
    assert s["spread/D/d_loss_min"][0][1] == pytest.approx(min(d_loss))
    assert s["spread/D/d_loss_max"][0][1] == pytest.approx(max(d_loss))
    assert min(d_loss) <= s["D/d_loss_epoch"][0][1] <= max(d_loss)
    ea = EventAccumulator(str(run_dir / "tensorboard"))
    ea.Reload()
    assert "custom_scalars__config__" in ea.Tags()["tensors"]


def test_progress_bar_shows_the_totals_it_reads_only_when_it_refreshes(make_cfg, tmp_path):
    from lit_gans.callbacks import LossProgressBar
    from lit_gans.losses.objective import Objective
    from lit_gans.train import build

    cfg = make_cfg("trainer.max_epochs=1", "trainer.limit_train_batches=10", "trainer.enable_progress_bar=true",
                   "callbacks.progress_bar.refresh_rate=5")
    datamodule, model, trainer = build(cfg)
    bar = next(c for c in trainer.callbacks if isinstance(c, LossProgressBar))
    reads = []
    real = Objective.scalars

    def counting(self):
        reads.append(trainer.fit_loop.total_batch_idx)
        return real(self)

    calls = []
    real_get = LossProgressBar.get_metrics

    def get_metrics(self, trainer_, module):
        metrics = real_get(self, trainer_, module)
        calls.append(metrics)
        return metrics

    Objective.scalars, LossProgressBar.get_metrics = counting, get_metrics
    try:
        trainer.fit(model, datamodule=datamodule)
    finally:
        Objective.scalars, LossProgressBar.get_metrics = real, real_get
    assert calls and all({"D", "G"} <= set(m) for m in calls)
    assert len(calls) <= 4 and bar.refresh_rate == 5  # batches 5 and 10 (and the epoch's end), not every batch
    d, g = float(calls[-1]["D"]), float(calls[-1]["G"])
    assert d == pytest.approx(float(model.objective.scalars()["D/d_loss"]), rel=1e-2) and g > 0


def test_a_run_ends_with_its_summary_and_a_quiet_console(tmp_path):
    p = run_train(tmp_path, *TINY_STARGAN, *TINY_SYNTHETIC, "trainer.max_epochs=1", "trainer.limit_train_batches=2")
    out = p.stdout + p.stderr
    for noise in ("litlogger", "LeafSpec", "Total Flops", "FLOPs"):
        assert noise not in out, noise
    tail = p.stdout.strip().splitlines()[-5:]
    assert tail[0] == f"run:          {tmp_path}" and tail[1] == f"checkpoint:   {tmp_path}/checkpoints/last.ckpt"
    assert tail[-1] == f"watch it:     tensorboard --logdir {tmp_path}"
    assert any(line.startswith("sample grid:  ") and line.endswith(".png") for line in tail)
    assert json.load(open(tmp_path / "final_metrics.json"))["D/d_loss_epoch"] > 0


@pytest.mark.slow
def test_resume_a_run_folder_with_its_own_config_and_keep_its_record(tmp_path):
    def run(*args):
        return run_train(None, *args)

    run(*TINY_STARGAN, *TINY_SYNTHETIC, "loss.w_sty=2", "trainer.max_epochs=1", "trainer.limit_train_batches=2",
        "trainer.enable_progress_bar=false", f"hydra.run.dir={tmp_path}")
    original = (tmp_path / ".hydra" / "overrides.yaml").read_text()
    run(f"resume={tmp_path}", "trainer.max_epochs=2")
    assert (tmp_path / ".hydra" / "overrides.yaml").read_text() == original  # never overwritten
    (record,) = glob.glob(str(tmp_path / ".hydra" / "resumed" / "*" / "overrides.yaml"))
    overrides = yaml.safe_load(open(record))
    assert "loss.w_sty=2" in overrides and "trainer.max_epochs=2" in overrides and "trainer.max_epochs=1" not in overrides
    config = yaml.safe_load(open(os.path.join(os.path.dirname(record), "config.yaml")))
    assert config["loss"]["w_sty"] == 2 and config["ckpt_path"] == "last"
    history = [json.loads(x) for x in open(tmp_path / "tensorboard" / "loss_history.jsonl")]
    assert [r["epoch"] for r in history] == [1, 2]


def test_train_argv_resume_and_sweep_naming(tmp_path):
    os.makedirs(tmp_path / "run" / ".hydra")
    (tmp_path / "run" / ".hydra" / "overrides.yaml").write_text(
        yaml.safe_dump(["model=cut", "trainer.max_epochs=5", f"hydra.run.dir={tmp_path}/run", "ckpt_path=auto"]))
    argv = prepare_train_argv([f"resume={tmp_path}/run", "trainer.max_epochs=9"], now="T")
    assert argv == ["model=cut", "trainer.max_epochs=9", f"hydra.run.dir={tmp_path}/run", "ckpt_path=last",
                    "hydra.output_subdir=.hydra/resumed/T"]
    with pytest.raises(ConfigError, match=r"^resume=.*/nothing is not a run folder \(no .hydra/overrides.yaml"):
        prepare_train_argv([f"resume={tmp_path}/nothing"])
    with pytest.raises(ConfigError, match="resume= continues one run"):
        prepare_train_argv(["-m", f"resume={tmp_path}/run"])
    # a plain resume into an existing run folder also keeps the folder's record
    assert prepare_train_argv([f"hydra.run.dir={tmp_path}/run", "ckpt_path=last"], now="T")[-1] == \
        "hydra.output_subdir=.hydra/resumed/T"
    # sweep jobs are named by what is swept only
    sweep = prepare_train_argv(["-m", "loss.w_sty=1,2", "model.optimizer.lr=choice(1e-4,2e-4)", "trainer.max_epochs=3",
                                "data.root=/a,b/c"])
    excluded = sweep[-1]
    assert excluded.startswith("hydra.job.config.override_dirname.exclude_keys=[") and "trainer.max_epochs" in excluded
    assert "loss.w_sty" not in excluded and "model.optimizer.lr" not in excluded
    assert run_suffix("") == "" and run_suffix("data.root=/x/y,loss.w_sty=2") == "_data.root=-x-y,loss.w_sty=2"
    assert len(run_suffix("a=" + "x" * 300)) == 81


def test_sweep_table_reads_the_job_folders(tmp_path):
    for job, w, metrics in ((0, 1, {"G/g_loss_epoch": 3.25, "D/d_loss_epoch": 1.5}), (1, 2, None)):
        d = tmp_path / f"{job}_loss.w_sty={w}"
        os.makedirs(d / ".hydra")
        (d / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump([f"loss.w_sty={w}", "trainer.max_epochs=3"]))
        if metrics:
            (d / "final_metrics.json").write_text(json.dumps(metrics))
    rows = sweep_rows(str(tmp_path))
    assert [r["result"] for r in rows] == ["D/d_loss 1.5, G/g_loss 3.25", "did not finish"]
    table = format_table(rows).splitlines()
    assert table[0] == "sweep of 2 jobs (all with trainer.max_epochs=3)"
    assert table[2].split()[:2] == ["0", "loss.w_sty=1"] and table[3].split()[:2] == ["1", "loss.w_sty=2"]
    assert sweep_rows(str(tmp_path), "G/g_loss_epoch")[0]["result"] == "G/g_loss_epoch 3.25"


@pytest.mark.parametrize("module", ["train", "evaluate", "translate", "latents", "curves", "bench", "export"])
def test_every_command_has_a_help(module, capsys, monkeypatch):
    from hydra.core.global_hydra import GlobalHydra

    monkeypatch.setattr(sys, "argv", [module, "--help"])
    GlobalHydra.instance().clear()
    try:
        if module == "train":
            runpy.run_path(os.path.join(ROOT, "train.py"), run_name="__main__")
        else:
            runpy.run_module(f"lit_gans.{module}", run_name="__main__", alter_sys=True)
        code = 0
    except SystemExit as exc:
        code = exc.code or 0
    finally:
        GlobalHydra.instance().clear()
    out = capsys.readouterr()
    text = out.out + out.err
    assert code == 0 and "Traceback" not in text and "Exception" not in text, text[-500:]
    assert f"lit_gans.{module}" in text or module == "train"
    assert len(text.splitlines()) >= 5 and ("=" in text or "--" in text)  # what it does, its keys, an example

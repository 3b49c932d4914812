"""logger=csv|mlflow|wandb and lists of them: every logger gets the scalars and the sample grids through its own
API, and keeps its files under the run directory (no server, no network)."""

from __future__ import annotations

import csv
import glob
import math
import os

import numpy as np
import pytest
from PIL import Image

from conftest import read_scalars
from lit_gans.train import build

RUN = ("trainer.max_epochs=1", "trainer.limit_train_batches=2", "callbacks.image_grid.num_samples=3")


def read_csv(path: str) -> dict[str, list[tuple[int, float]]]:
    """``{column: [(step, value), ...]}`` of the rows where the column has a value."""
    out: dict[str, list[tuple[int, float]]] = {}
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            for key, value in row.items():
                if key != "step" and value != "":
                    out.setdefault(key, []).append((int(row["step"]), float(value)))
    return out


def fit(make_cfg, *overrides: str):
    cfg = make_cfg(*RUN, *overrides)
    datamodule, model, trainer = build(cfg)
    trainer.fit(model, datamodule=datamodule)
    return trainer


def test_csv_and_mlflow_get_the_scalars_and_the_grid(make_cfg, tmp_path):
    from mlflow import MlflowClient

    fit(make_cfg, "logger=[csv,mlflow]")
    (metrics,) = glob.glob(str(tmp_path / "csv" / "version_*" / "metrics.csv"))
    table = read_csv(metrics)
    for name in ("D/d_loss_step", "G/g_loss_step", "G/sty_step", "D/r1_step", "D/d_loss_epoch", "G/g_loss_epoch"):
        assert name in table, f"{name} missing from metrics.csv: {sorted(table)}"
    assert len(table["D/d_loss_step"]) == 2 and all(math.isfinite(v) for _, v in table["D/d_loss_step"])

    # MLflow: a local SQLite store and artifact folder in the run directory, read back with MLflow's own client.
    assert (tmp_path / "mlflow.db").is_file() and (tmp_path / "mlruns").is_dir()
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path}/mlflow.db")
    experiment = client.get_experiment_by_name("lit_gans")
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.run_name == tmp_path.name and run.info.status == "FINISHED"  # the run folder's name
    # The composed config as the run's params (the HParams callback), as TensorBoard's HParams tab has it.
    assert run.data.params["loss.w_sty"] == "1.0" and run.data.params["model._target_"] == "lit_gans.models.StarGANv2"
    import yaml

    (saved,) = glob.glob(str(tmp_path / "csv" / "version_*" / "hparams.yaml"))
    with open(saved) as f:
        assert yaml.safe_load(f)["model.optimizer.lr"] == 1e-4
    for name in ("D/d_loss_step", "G/g_loss_step", "D/d_loss_epoch"):
        history = sorted((m.step, m.value) for m in client.get_metric_history(run.info.run_id, name))
        assert [s for s, _ in history] == [s for s, _ in table[name]]  # the same points as the CSV file
        assert [v for _, v in history] == pytest.approx([v for _, v in table[name]])
    images = [a.path for a in client.list_artifacts(run.info.run_id, "images")]
    pngs = [p for p in images if p.endswith(".png")]
    assert len(pngs) == 1 and "samples~source-reference-ref_guided-latent_guided+step+2+" in pngs[0], images
    local = client.download_artifacts(run.info.run_id, pngs[0], str(tmp_path / "download"))

    # The PNG is written once, in the first logger's folder (CSV here), and is the image MLflow holds.
    written = glob.glob(str(tmp_path / "**" / "step_*.png"), recursive=True)
    assert [os.path.relpath(p, tmp_path) for p in written] == [os.path.join(os.path.dirname(os.path.relpath(
        metrics, tmp_path)), "samples", "step_0000002.png")]
    assert np.array_equal(np.asarray(Image.open(local)), np.asarray(Image.open(written[0])))


def test_tensorboard_and_csv_are_both_written(make_cfg, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    fit(make_cfg, "logger=[tensorboard,csv]")
    (metrics,) = glob.glob(str(tmp_path / "csv" / "version_*" / "metrics.csv"))
    table, scalars = read_csv(metrics), read_scalars(str(tmp_path / "tensorboard"))
    for name in ("D/d_loss_step", "G/g_loss_step", "G/g_loss_epoch"):
        assert [v for _, v in scalars[name]] == pytest.approx([v for _, v in table[name]])
    images = []
    for events in glob.glob(str(tmp_path / "tensorboard" / "events.out.tfevents.*")):
        ea = EventAccumulator(events, size_guidance={"images": 0})
        ea.Reload()
        images += [(tag, e.step) for tag in ea.Tags()["images"] for e in ea.Images(tag)]
    assert images == [("samples/source-reference-ref_guided-latent_guided", 2)]
    # One PNG, in the first logger's folder.
    assert sorted(os.path.relpath(p, tmp_path) for p in glob.glob(str(tmp_path / "**" / "step_*.png"), recursive=True)) \
        == [os.path.join("tensorboard", "samples", "step_0000002.png")]


def test_logger_configs_keep_everything_in_the_run_directory(make_cfg, tmp_path):
    cfg = make_cfg("logger=[tensorboard,csv,mlflow,wandb]")
    lg = cfg.logger
    assert list(lg) == ["tensorboard", "csv", "mlflow", "wandb"]
    assert lg.csv.save_dir == str(tmp_path)
    assert lg.mlflow.tracking_uri == f"sqlite:///{tmp_path}/mlflow.db"
    assert lg.mlflow.artifact_location == str(tmp_path / "mlruns") and lg.mlflow.experiment_name == "lit_gans"
    assert lg.wandb.offline is True and lg.wandb.save_dir == str(tmp_path) and lg.wandb.log_model is False


def test_wandb_offline_run_holds_the_scalars_and_the_grid(make_cfg, tmp_path, monkeypatch):
    wandb = pytest.importorskip("wandb", reason="pip install -e '.[wandb]'")
    monkeypatch.setenv("WANDB_SILENT", "true")
    fit(make_cfg, "logger=[csv,wandb]")
    wandb.finish()
    wandb.teardown()  # as a process does at exit: the records are complete only when the service stops
    (run,) = glob.glob(str(tmp_path / "wandb" / "offline-run-*"))
    (records,) = glob.glob(os.path.join(run, "*.wandb"))  # what `wandb sync` uploads (protobuf records)
    with open(records, "rb") as f:
        data = f.read()
    assert b"D/d_loss_step" in data and b"G/g_loss_epoch" in data
    (media,) = glob.glob(os.path.join(run, "files", "media", "images", "samples", "*.png"))
    (written,) = glob.glob(str(tmp_path / "csv" / "version_*" / "samples" / "step_0000002.png"))
    assert np.array_equal(np.asarray(Image.open(media).convert("RGB")), np.asarray(Image.open(written)))


def test_grid_files_go_to_the_first_loggers_folder_else_the_run_directory(tmp_path):
    import lightning as L
    from lightning.pytorch.loggers import CSVLogger, Logger, TensorBoardLogger

    from lit_gans.callbacks.image_grid import files_dir

    class Remote(Logger):  # a logger without a local folder (log_dir None), as MLflow's and W&B's
        name, version = "remote", "0"

        def log_metrics(self, metrics, step=None):
            pass

        def log_hyperparams(self, params, *args, **kwargs):
            pass

    run = str(tmp_path)
    tb, csv_ = TensorBoardLogger(run, name="tensorboard", version=""), CSVLogger(run, name="csv")
    for loggers, expected in [([tb, csv_], tb.log_dir), ([csv_, Remote()], csv_.log_dir), ([Remote(), tb], run),
                              (False, run)]:
        trainer = L.Trainer(logger=loggers, default_root_dir=run, enable_checkpointing=False,
                            enable_progress_bar=False, enable_model_summary=False)
        assert files_dir(trainer) == expected

"""The past-run viewer (python -m lit_gans.curves): reading logs as the LossLogger writes them, plots, the
explanations, and each pattern rule on synthetic logs (one that fires, one that must not)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from PIL import Image

from lit_gans.curves import explain_curve, explain_runs, load_runs
from lit_gans.curves.__main__ import main as curves_main
from lit_gans.curves.rules import DiversityOff, HingeDFlat, NonFinite, R1Growing, TotalsDiverging
from lit_gans.errors import DataError


def write_events(log_dir, per_epoch: dict[str, list[list[float]]]) -> None:
    """Event files laid out as Lightning + LossLogger write them: ``<name>_step`` at every batch (step = batch
    index), ``<name>_epoch`` (the mean) and ``epoch`` (0-based) at each epoch's last batch."""
    from torch.utils.tensorboard import SummaryWriter

    w = SummaryWriter(str(log_dir))
    n_epochs = len(next(iter(per_epoch.values())))
    step = 0
    for e in range(n_epochs):
        n_batches = len(next(iter(per_epoch.values()))[e])
        for b in range(n_batches):
            for name, epochs in per_epoch.items():
                w.add_scalar(f"{name}_step", epochs[e][b], step)
            w.add_scalar("epoch", e, step)
            if b == n_batches - 1:
                for name, epochs in per_epoch.items():
                    w.add_scalar(f"{name}_epoch", float(np.mean(epochs[e])), step)
            step += 1
    w.close()


def flat_epochs(means: list[float], batches: int = 3, jitter: float = 0.0) -> list[list[float]]:
    return [[m + jitter * (b - 1) for b in range(batches)] for m in means]


def write_config(run_dir, **loss) -> None:
    (run_dir / ".hydra").mkdir(parents=True, exist_ok=True)
    (run_dir / ".hydra" / "config.yaml").write_text(json.dumps({"loss": loss, "model": {"latent_scale": 1.0}}))


def one_run(tmp_path, per_epoch, **loss):
    run = tmp_path / "run"
    write_events(run / "tensorboard", per_epoch)
    if loss:
        write_config(run, **loss)
    (r,) = load_runs([run])
    return r


# ---------------------------------------------------------------- reading
def test_epoch_means_and_per_step_values_are_joined_by_epoch(tmp_path):
    r = one_run(tmp_path, {"D/d_loss": [[1.0, 2.0, 6.0], [0.5, 1.5, 1.0]], "G/g_loss": [[3.0] * 3, [2.0] * 3]})
    c = r.curves["D/d_loss"]
    assert (c.group, c.short) == ("D", "d_loss")
    assert c.epochs.tolist() == [1, 2] and c.means.tolist() == [3.0, 1.0]
    assert c.step_epochs.tolist() == [1, 1, 1, 2, 2, 2]
    epochs, lo, hi = c.band()
    assert epochs.tolist() == [1, 2] and lo.tolist() == [1.0, 0.5] and hi.tolist() == [6.0, 1.5]
    _, q25, q75 = c.band(0.25, 0.75)
    assert q25[0] == pytest.approx(1.5) and q75[0] == pytest.approx(4.0)
    assert "epoch" not in r.curves  # Lightning's epoch counter is not a curve


def test_history_file_is_read_when_there_are_no_event_files(tmp_path):
    log = tmp_path / "run" / "tensorboard"
    log.mkdir(parents=True)
    records = [{"epoch": 1, "step": 3, "losses": {"D/d_loss": 2.0, "G/g_loss": 4.0}},
               {"epoch": 2, "step": 6, "losses": {"D/d_loss": None, "G/g_loss": 3.0}}]
    (log / "loss_history.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    (r,) = load_runs([tmp_path / "run"])
    assert r.source == "history"
    assert r.curves["G/g_loss"].means.tolist() == [4.0, 3.0]
    assert math.isnan(r.curves["D/d_loss"].means[1])  # null: a non-finite epoch mean


def test_logs_are_found_below_a_multirun_dir_with_one_label_per_job(tmp_path):
    for job in ("0", "1"):
        write_events(tmp_path / "sweep" / job / "tensorboard", {"D/d_loss": flat_epochs([2.0, 1.9])})
    runs = load_runs([tmp_path / "sweep"])
    assert [r.label for r in runs] == ["sweep/0", "sweep/1"]


@pytest.mark.parametrize("make, words", [
    (lambda p: p / "missing", "does not exist"),
    (lambda p: (p / "empty").mkdir() or p / "empty", "no TensorBoard event files"),
])
def test_a_dir_without_logs_is_one_line(tmp_path, capsys, make, words):
    path = make(tmp_path)
    with pytest.raises(DataError, match=words):
        load_runs([path])
    with pytest.raises(SystemExit) as exit_info:
        curves_main([str(path)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and words in err and "\n" not in err


# ---------------------------------------------------------------- plots and text
def test_cli_overlays_runs_one_png_per_group_and_html(tmp_path, capsys):
    write_events(tmp_path / "a" / "tensorboard", {"D/d_loss": flat_epochs([2.0, 1.8], jitter=0.1),
                                                  "G/g_loss": flat_epochs([4.0, 3.0])})
    write_events(tmp_path / "b" / "tensorboard", {"D/d_loss": flat_epochs([1.5, 1.0]), "G/sty": flat_epochs([1.0, 0.5])})
    out = tmp_path / "plots"
    assert curves_main([str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(out), "--html"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["D.png", "G.png", "index.html"]
    d = Image.open(out / "D.png")
    assert d.size[0] > 300 and d.size[1] > 200
    index = (out / "index.html").read_text()
    assert "src='D.png'" in index and "src='G.png'" in index and "a/tensorboard" in index
    assert "wrote 2 plots" in capsys.readouterr().out

    only_d = tmp_path / "only_d"
    assert curves_main([str(tmp_path / "a"), "--out", str(only_d), "--tags", "D"]) == 0
    assert [p.name for p in only_d.iterdir()] == ["D.png"]


def test_explain_describes_each_stargan_curve_with_its_run_values(tmp_path):
    names = ["D/d_loss", "D/d_adv", "D/r1", "G/g_loss", "G/g_adv", "G/sty", "G/ds", "G/cyc", "G/id", "G/lambda_ds"]
    r = one_run(tmp_path, {n: flat_epochs([1.0, 0.5]) for n in names}, adversarial="hinge", r1_interval=4)
    text = explain_runs([r])
    for n in names:
        assert f"\n{n} [" in text
    assert text.index("D/d_loss [") < text.index("D/d_adv [") < text.index("D/r1 [")  # the seed's order
    assert "r1_interval=4" in text and "1 (epoch 1) -> 0.5 (epoch 2)" in text
    assert "relu(1 - D(real))" in text  # why hinge d_loss sits at 2


def test_explanations_of_unpaired_pix2pix_diffusion_and_unknown_names():
    e = explain_curve("G_GAN_D_B_projected_d", "G")
    assert "'projected_d'" in e.what and "domain B" in e.what and e.kind == "adversarial"
    assert "cycle" in explain_curve("G_cycle_A", "G").what and "lambda_A" in explain_curve("G_cycle_A").what
    assert "PatchNCE" in explain_curve("G_NCE").what and "Sobel" in explain_curve("G_SOBEL").what
    assert explain_curve("G_tot", "G", diffusion=True).kind == "descending"
    assert "denoising" in explain_curve("G_tot", "G", diffusion=True).what
    assert explain_curve("G_tot", "G").kind == "total"
    assert "generator" in explain_curve("G_new_thing", "G").what and explain_curve("zzz").kind == "unknown"


# ---------------------------------------------------------------- rules on synthetic logs
def test_hinge_d_loss_flat_near_2_is_flagged(tmp_path):
    flat = one_run(tmp_path / "flat", {"D/d_loss": flat_epochs([2.03, 1.98, 2.01, 1.97, 2.05, 2.0])},
                   adversarial="hinge")
    (f,) = HingeDFlat(epochs=5).check(flat)
    assert "6 epochs" in f.message and "d_loss" in f.message
    learning = one_run(tmp_path / "learn", {"D/d_loss": flat_epochs([2.0, 1.8, 1.5, 1.3, 1.2, 1.1])})
    assert HingeDFlat().check(learning) == []
    short = one_run(tmp_path / "short", {"D/d_loss": flat_epochs([2.0, 2.0, 2.0])})
    assert HingeDFlat(epochs=5).check(short) == []
    lsgan = one_run(tmp_path / "lsgan", {"D/d_loss": flat_epochs([2.0] * 6)}, adversarial="lsgan")
    assert HingeDFlat().check(lsgan) == []  # 2 means nothing special for another loss


def test_lambda_ds_reaching_zero_is_reported_with_its_epoch(tmp_path):
    r = one_run(tmp_path / "a", {"G/lambda_ds": flat_epochs([1.0, 0.5, 0.0, 0.0])})
    (f,) = DiversityOff().check(r)
    assert "epoch 3" in f.message and f.severity == "info"
    assert DiversityOff().check(one_run(tmp_path / "b", {"G/lambda_ds": flat_epochs([1.0, 0.9])})) == []


def test_growing_r1_is_flagged_and_a_noisy_stable_one_is_not(tmp_path):
    growing = one_run(tmp_path / "g", {"D/r1": flat_epochs([0.01, 0.02, 0.025, 0.05, 0.08, 0.15])})
    (f,) = R1Growing().check(growing)
    assert "r1 grew" in f.message
    stable = one_run(tmp_path / "s", {"D/r1": flat_epochs([0.05, 0.07, 0.04, 0.06, 0.05, 0.06])})
    assert R1Growing().check(stable) == []


def test_nan_in_a_step_value_is_flagged_with_its_step(tmp_path):
    bad = one_run(tmp_path / "bad", {"G/g_loss": [[1.0, 1.0, 1.0], [1.0, float("nan"), 1.0]]})
    (f,) = NonFinite().check(bad)
    assert f.curve == "G/g_loss" and "step 4 (epoch 2)" in f.message
    inf = one_run(tmp_path / "inf", {"D/d_loss": [[1.0, float("inf"), 1.0]]})
    assert len(NonFinite().check(inf)) == 1
    assert NonFinite().check(one_run(tmp_path / "ok", {"G/g_loss": flat_epochs([1.0, 2.0])})) == []


def test_g_and_d_totals_moving_apart_are_flagged(tmp_path):
    apart = one_run(tmp_path / "apart", {"G/g_loss": flat_epochs([2.0, 2.2, 3.0, 4.0, 5.0, 6.0]),
                                         "D/d_loss": flat_epochs([2.0, 1.8, 1.0, 0.6, 0.3, 0.2])})
    (f,) = TotalsDiverging().check(apart)
    assert "D is winning" in f.message
    both_down = one_run(tmp_path / "down", {"G/G_tot": flat_epochs([6.0, 5.0, 4.0, 3.0, 2.5, 2.0]),
                                            "D/D_tot": flat_epochs([0.6, 0.55, 0.5, 0.5, 0.45, 0.45])})
    assert TotalsDiverging().check(both_down) == []


def test_explain_lists_the_findings(tmp_path):
    r = one_run(tmp_path, {"D/d_loss": flat_epochs([2.0] * 6), "G/lambda_ds": flat_epochs([1, .8, .6, .4, .2, 0])})
    text = explain_runs([r])
    assert "[warn] run: D/d_loss: d_loss stayed within 2" in text and "lambda_ds reached 0 at epoch 6" in text


# ---------------------------------------------------------------- a real run
def test_a_real_stargan_run_reads_back_with_consistent_epochs(make_cfg, tmp_path):
    from lit_gans.train import build

    cfg = make_cfg("trainer.max_epochs=2", "trainer.limit_train_batches=2")
    datamodule, model, trainer = build(cfg)
    trainer.fit(model, datamodule=datamodule)
    (r,) = load_runs([tmp_path])
    c = r.curves["D/d_loss"]
    assert c.epochs.tolist() == [1, 2] and c.step_epochs.tolist() == [1, 1, 2, 2]
    for e, mean in zip(c.epochs, c.means, strict=True):  # the logged epoch mean is the mean of its steps
        assert mean == pytest.approx(c.values[c.step_epochs == e].mean(), rel=1e-5)

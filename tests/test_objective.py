"""Loss terms declared once (name, function, group, sign, weight key) and their weighted per-group totals."""

import pytest
import torch

from lit_gans.errors import ConfigError
from lit_gans.losses import LossTerm, Objective, make_objective
from lit_gans.losses.stargan_spec import SCHEDULE_KEYS, TOTALS, stargan_v2


def _objective() -> Objective:
    return Objective([LossTerm("a", lambda x: x.mean(), 2.0, "G"),
                      LossTerm("b", lambda x: x.sum(), "w_b", "G", maximize=True),
                      LossTerm("c", lambda x: x.abs().mean(), lambda cfg: cfg["w_b"] * 2, "D")],
                     totals={"G": "g_loss", "D": "d_loss"}, config={"w_b": 0.5})


def test_weighted_totals_per_group_and_maximised_terms():
    obj = _objective()
    assert (obj.weight("a"), obj.weight("b"), obj.weight("c")) == (2.0, 0.5, 1.0)  # number, key, function of keys
    obj.start_step()
    x = torch.tensor([1.0, 3.0])
    obj.compute("a", x)  # 2
    obj.compute("b", x)  # 4, subtracted
    obj.compute("c", -x)  # 2
    assert obj.total("G").item() == pytest.approx(2 * 2 - 0.5 * 4)
    assert obj.total("D").item() == pytest.approx(2.0)
    s = obj.scalars()
    assert s["G/g_loss"].item() == pytest.approx(2.0) and s["D/d_loss"].item() == pytest.approx(2.0)
    assert s["G/a"].item() == 2.0 and s["G/b"].item() == 4.0 and s["D/c"].item() == 2.0
    assert obj.curve_names() == ["G/g_loss", "D/d_loss", "G/a", "G/b", "D/c"] and set(s) == set(obj.curve_names())


def test_repeated_compute_in_a_step_sums_paths():
    obj = _objective()
    obj.start_step()
    obj.compute("a", torch.tensor([1.0]))
    obj.compute("a", torch.tensor([3.0]))
    assert obj.value("a").item() == 4.0
    obj.start_step()
    obj.compute("a", torch.tensor([5.0]))
    assert obj.value("a").item() == 5.0


def test_gains_scale_weights_and_zero_means_inactive():
    obj = _objective()
    obj.set_gain("a", 3.0)
    assert obj.weight("a") == 6.0 and obj.active("a")
    obj.set_gain("a", 0.0)
    assert not obj.active("a")
    obj.switch_off("c")
    assert not obj.active("c") and obj.weight("c") == 0.0
    obj.start_step()
    obj.compute("b", torch.tensor([1.0]))
    # Uncomputed terms are logged as 0; totals only cover what was computed.
    assert obj.scalars()["G/a"].item() == 0.0
    with pytest.raises(RuntimeError, match="no active loss term of group 'D'"):
        obj.total("D")
    with pytest.raises(KeyError, match="no loss term 'zz'"):
        obj.set_gain("zz", 1.0)


def test_loss_maps_are_kept():
    obj = Objective([LossTerm("m", lambda x: (x.mean(), x.detach() * 2), group="G", returns_map=True)])
    obj.start_step()
    obj.compute("m", torch.ones(1, 1, 2, 2))
    assert torch.equal(obj.last_maps["m"], torch.full((1, 1, 2, 2), 2.0))


def test_make_objective_reads_the_loss_block_and_rejects_unknown_keys():
    obj = make_objective(stargan_v2, {"adversarial": "nonsat", "ds_margin": 0.2, "w_sty": 3.0, "w_ds": 2.0,
                                      "r1_interval": 4}, TOTALS, other_keys=SCHEDULE_KEYS)
    assert obj.weight("sty") == 3.0 and obj.weight("ds") == 2.0 and obj.weight("id") == 0.0  # w_id's default
    assert obj.terms["ds"].maximize and obj.terms["r1"].group == "D"
    assert obj.fn("ds")(torch.zeros(2), torch.ones(2)).item() == pytest.approx(0.2)  # the margin reached the fn
    with pytest.raises(ConfigError, match=r"loss.lambda_l1 is not a key of this model's objective \(stargan_v2; "
                                          r"its keys: adversarial, ds_decay_epochs, ds_margin, r1_interval, w_adv"):
        make_objective(stargan_v2, {"lambda_l1": 100.0}, TOTALS, other_keys=SCHEDULE_KEYS)
    with pytest.raises(ConfigError, match="loss.w_extra is required"):
        make_objective(lambda w_extra: [LossTerm("x", torch.mean, "w_extra")], {})


def test_adding_a_term_is_one_declaration_and_one_key():
    """The recipe of docs/losses.md: a new term is one LossTerm in the spec, weighted by a new parameter (its
    ``loss`` key, with a default); it is then weighted from the config, in its group's total and logged."""
    def total_variation(x):
        return (x[..., 1:, :] - x[..., :-1, :]).abs().mean() + (x[..., 1:] - x[..., :-1]).abs().mean()

    def spec(w_l1: float = 1.0, w_tv: float = 0.0):
        return [LossTerm("l1", lambda a, b: (a - b).abs().mean(), "w_l1", "G"),
                LossTerm("tv", total_variation, "w_tv", "G")]

    assert not make_objective(spec, {}).active("tv")  # the default keeps existing runs as they were
    obj = make_objective(spec, {"w_tv": 0.25}, {"G": "g_loss"})
    fake = torch.arange(16.0).view(1, 1, 4, 4)
    obj.start_step()
    obj.compute("tv", fake)
    obj.compute("l1", fake, fake + 2)
    assert obj.total("G").item() == pytest.approx(0.25 * (4 + 1) + 1.0 * 2)
    assert set(obj.scalars()) == {"G/g_loss", "G/l1", "G/tv"}


def test_the_add_a_term_diff_trains_with_its_key(tmp_path):
    """The diff of docs/losses.md (tests/fixtures/add_a_loss_term.diff), applied to a copy of the project: a
    total-variation term for StarGAN v2 is its function and declaration in the spec, its call in the training
    step, and one line of conf/loss/stargan.yaml. Trained with ``loss.w_tv=0.5``, the term is logged as G/tv and
    enters g_loss at 0.5. Fails when the recipe no longer applies as documented."""
    import os
    import shutil
    import subprocess
    import sys

    from conftest import QUIET, ROOT, TINY_STARGAN, TINY_SYNTHETIC, read_scalars

    copy = tmp_path / "project"
    ignore = shutil.ignore_patterns("__pycache__")
    for part in ("lit_gans", "conf"):
        shutil.copytree(os.path.join(ROOT, part), copy / part, ignore=ignore)
    shutil.copy(os.path.join(ROOT, "train.py"), copy / "train.py")
    diff = os.path.join(ROOT, "tests", "fixtures", "add_a_loss_term.diff")
    applied = subprocess.run(["git", "apply", "--stat", "--apply", diff], cwd=copy, capture_output=True, text=True)
    assert applied.returncode == 0, applied.stderr
    assert sorted(line.split("|")[0].strip() for line in applied.stdout.splitlines() if "|" in line) == [
        "conf/loss/stargan.yaml", "lit_gans/losses/stargan_spec.py", "lit_gans/models/stargan_v2.py"]
    run = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(copy)}
    p = subprocess.run([sys.executable, "train.py", *TINY_STARGAN, *TINY_SYNTHETIC, *QUIET, "loss.w_tv=0.5",
                        "trainer.max_steps=2", "trainer.log_every_n_steps=1", "callbacks.image_grid=null",
                        f"hydra.run.dir={run}"], cwd=copy, env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    s = {k: v[0][1] for k, v in read_scalars(str(run / "tensorboard")).items() if k.endswith("_step")}
    assert s["G/tv_step"] > 0
    want = s["G/g_adv_step"] + s["G/sty_step"] + s["G/cyc_step"] - s["G/ds_step"] + 0.5 * s["G/tv_step"]
    assert s["G/g_loss_step"] == pytest.approx(want, rel=1e-5)

"""Loss terms, specs and per-tag totals."""

import pytest
import torch

from lit_gans.errors import ConfigError
from lit_gans.losses import LossTerm, Objective, build_objective


def _objective() -> Objective:
    obj = Objective(totals={"G": "g_loss", "D": "d_loss"})
    obj.register_loss("a", lambda x: x.mean(), weight=2.0, tags=["G"])
    obj.register_loss("b", lambda x: x.sum(), weight=0.5, tags=["G"], maximize=True)
    obj.register_loss("c", lambda x: x.abs().mean(), weight=1.0, tags=["D"])
    return obj


def test_weighted_totals_per_tag_and_maximised_terms():
    obj = _objective()
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
    obj.start_step()
    obj.compute("c", torch.tensor([1.0]))
    # Uncomputed terms are logged as 0; totals only cover what was computed.
    assert obj.scalars()["G/a"].item() == 0.0
    with pytest.raises(RuntimeError, match="no active loss term tagged 'G'"):
        obj.total("G")


def test_loss_maps_are_kept():
    obj = Objective()
    obj.register(LossTerm("m", lambda x: (x.mean(), x.detach() * 2), tags=("G",), returns_map=True))
    obj.start_step()
    obj.compute("m", torch.ones(1, 1, 2, 2))
    assert torch.equal(obj.last_maps["m"], torch.full((1, 1, 2, 2), 2.0))


def test_init_from_spec_replaces_terms():
    obj = _objective()
    obj.init_from_spec(lambda scale: {"z": LossTerm("ignored", lambda: torch.tensor(scale), tags=("G",))}, 3.0)
    assert list(obj.terms) == ["z"] and obj.terms["z"].name == "z"


def test_build_objective_applies_config_weights_and_rejects_unknown_terms():
    obj = build_objective(spec="stargan_v2", adversarial="nonsat", ds_margin=0.2,
                          terms={"sty": {"weight": 3.0}, "ds": {"weight": 2.0, "tags": ["G", "div"]}},
                          totals={"G": "g_loss"}, r1_interval=4)  # r1_interval: for callbacks, ignored
    assert obj.weight("sty") == 3.0 and obj.terms["ds"].tags == ("G", "div")
    assert obj.terms["ds"].maximize and obj.weight("id") == 0.0
    assert obj.fn("ds")(torch.zeros(2), torch.ones(2)).item() == pytest.approx(0.2)  # margin reached the fn
    with pytest.raises(ConfigError, match="does not have"):
        build_objective(spec="stargan_v2", terms={"G_L1": {"weight": 1.0}})
    with pytest.raises(ConfigError, match="unknown loss spec"):
        build_objective(spec="nope")

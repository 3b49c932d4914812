"""Checkpoints written by lit_gans 0.1.0 still load: their hyper-parameters (an ``optim`` dict, a ``loss`` block with
``spec``/``terms``/``totals``, keys since renamed) become today's model arguments. The fixture holds the
``hyper_parameters`` and class of a real 0.1.0 checkpoint of each family (default configs)."""

from __future__ import annotations

import json
import logging
import os

import pytest
import torch
from hydra.utils import get_class

from lit_gans.inference import current_model_args

FIXTURE = os.path.join(os.path.dirname(__file__), "fixtures", "hparams_0.1.0.json")
OLD = json.load(open(FIXTURE))
SMALL = {  # the same architecture, built smaller (the arguments are what is tested, not the sizes)
    "cut": {"ngf": 8, "ndf": 8, "img_size": 32},
    "cyclegan": {"ngf": 8, "ndf": 8, "img_size": 32},
    "pix2pix": {"ngf": 8, "ndf": 8, "img_size": 32, "num_downs": 5},
    "palette": {"channels": 32, "img_size": 16, "norm_groups": 8, "channel_mults": [1, 2]},
    "stargan": {"dim": 8, "max_conv_dim": 16, "img_size": 16, "mapping_dim": 16},
}


@pytest.mark.parametrize("family", sorted(OLD))
def test_a_0_1_0_checkpoint_builds_todays_model(family, caplog):
    cls = get_class(OLD[family]["model_class"])
    old = OLD[family]["hyper_parameters"]
    with caplog.at_level(logging.WARNING):
        args = current_model_args(cls, old)
    assert not caplog.records  # the default weights of 0.1.0 are today's: nothing to warn about
    assert "optim" not in args and args["optimizer"]["_partial_"] is True
    assert args["optimizer"]["lr"] == old["optim"]["lr"]
    assert {"n_layers_D", "norm_D", "out_activation"}.isdisjoint(args)
    model = cls(**{**args, **SMALL[family]})
    opt = model.configure_optimizers()
    first = (opt[0] if isinstance(opt, (list, tuple)) else opt)
    first = first[0] if isinstance(first, (list, tuple)) else first
    first = first["optimizer"] if isinstance(first, dict) else first
    assert isinstance(first, torch.optim.AdamW if family == "palette" else torch.optim.Adam)
    assert first.defaults["lr"] == old["optim"]["lr"]  # (a warm-up scheduler lowers the current lr)
    if "betas" in old["optim"]:
        assert tuple(first.param_groups[0]["betas"]) == tuple(old["optim"]["betas"])
    # The objective's weights are the checkpoint's loss keys.
    loss = old["loss"]
    for name, term in model.objective.terms.items():
        if isinstance(term.weight, str) and term.weight in loss and model.objective.active(name):
            assert model.objective.weight(name) == pytest.approx(float(loss[term.weight])), name


def test_todays_arguments_pass_through_unchanged():
    from lit_gans.models import StarGANv2

    args = {"img_size": 16, "optimizer": {"_target_": "torch.optim.AdamW", "_partial_": True, "lr": 1e-3},
            "loss": {"w_sty": 2.0}}
    assert current_model_args(StarGANv2, args) == args


def test_a_changed_per_term_weight_is_named_in_one_warning(caplog):
    cls = get_class(OLD["cyclegan"]["model_class"])
    old = json.loads(json.dumps(OLD["cyclegan"]["hyper_parameters"]))
    name = next(n for n, t in old["loss"]["terms"].items() if t.get("tags") == ["G"])
    old["loss"]["terms"][name]["weight"] = 123.0
    with caplog.at_level(logging.WARNING):
        current_model_args(cls, old)
    (record,) = caplog.records
    assert f"{name}=123.0" in record.getMessage() and "not carried over" in record.getMessage()

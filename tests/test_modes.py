"""lit_gans.utils.modes.evaluating: inference mode inside the block, every submodule's own mode after it."""

import pytest
from torch import nn

from lit_gans.utils.modes import evaluating


def model_with_a_frozen_part() -> nn.Module:
    m = nn.Sequential(nn.Linear(2, 2), nn.Dropout(0.5), nn.Sequential(nn.BatchNorm1d(2)))
    m.train()
    m[2].eval()  # a frozen part (a VAE, a feature extractor) stays in eval mode while the rest trains
    return m


def test_eval_inside_and_each_submodules_mode_restored_after():
    m = model_with_a_frozen_part()
    before = [x.training for x in m.modules()]
    with evaluating(m) as inner:
        assert inner is m and not any(x.training for x in m.modules())
    assert [x.training for x in m.modules()] == before == [True, True, True, False, False]


def test_restored_when_the_block_raises():
    m = model_with_a_frozen_part()
    with pytest.raises(RuntimeError), evaluating(m):
        raise RuntimeError("sampling failed")
    assert m.training and m[1].training and not m[2].training


def test_a_module_in_eval_mode_stays_in_eval_mode():
    m = model_with_a_frozen_part().eval()
    with evaluating(m):
        pass
    assert not any(x.training for x in m.modules())

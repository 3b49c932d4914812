"""Exponential moving averages of network weights for sampling.

The arithmetic is PyTorch's own (``torch.optim.swa_utils.get_ema_multi_avg_fn``: one fused lerp over all
parameters). ``AveragedModel.update_parameters`` is not used because it tests
``bool(n_averaged == 0)`` on every call, a device-to-host sync in each training step; starting the average
from a copy of the network (as the original StarGAN v2 does) makes that test unnecessary.
"""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.optim.swa_utils import get_ema_multi_avg_fn

from lit_gans.compat import foreach_copy_


def ema_copy(module: nn.Module) -> nn.Module:
    """A frozen copy of ``module`` to hold its moving average."""
    ema = copy.deepcopy(module)
    ema.requires_grad_(False)
    return ema


@torch.no_grad()
def ema_update(ema: nn.Module, module: nn.Module, beta: float) -> None:
    """``ema = beta * ema + (1 - beta) * module`` for parameters; floating buffers are copied."""
    get_ema_multi_avg_fn(beta)(list(ema.parameters()), list(module.parameters()), None)
    ema_bufs = [b for b in ema.buffers() if b.is_floating_point()]
    if ema_bufs:
        foreach_copy_(ema_bufs, [b for b in module.buffers() if b.is_floating_point()])

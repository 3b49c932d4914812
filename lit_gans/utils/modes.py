"""Switching a module to inference mode for a while and back: sampling, judging and grids run mid-training."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from torch import nn


@contextmanager
def evaluating(module: nn.Module) -> Iterator[nn.Module]:
    """``module.eval()`` inside the block; afterwards ``module`` is back in the mode it was in (training or not),
    also when the block raises. Submodules keep their own flags: a module whose parts were in mixed modes is
    restored part by part, as Lightning leaves frozen parts (a VAE, a feature extractor) in eval mode."""
    modes = [(m, m.training) for m in module.modules()]
    module.eval()
    try:
        yield module
    finally:
        for m, training in modes:
            m.training = training

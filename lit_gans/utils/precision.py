"""Losses and regularisers in float32 or wider, whatever the training precision.

Under ``bf16-mixed`` (or ``16-mixed``) a loss is computed from float32 copies of its inputs, as the papers'
float32 code computes it; under ``64-true`` it stays in float64 (a plain ``.float()`` would round it down to
float32 and make a float64 run no more exact than a float32 one).
"""

from __future__ import annotations

import torch
from torch import Tensor


def wide_dtype(dtype: torch.dtype) -> torch.dtype:
    """``float32`` for 16-bit and 32-bit floats, ``float64`` for ``float64``."""
    return torch.promote_types(dtype, torch.float32)


def float32_or_wider(x: Tensor) -> Tensor:
    """``x`` as float32 if it is a narrower float (bf16, fp16) or not a float, else unchanged (fp32, fp64)."""
    return x if x.dtype in (torch.float32, torch.float64) else x.float()

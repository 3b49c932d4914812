"""CycleGAN's image buffer (Shrivastava et al., 2017): the discriminator sees a mix of the newest fakes and
fakes from earlier generators, which damps oscillation.

The pool is a module so that it travels with the model: its images are a buffer (``state_dict``, device
moves), and the number stored and the state of its own random generator are the module's extra state, so a
resumed run makes the same choices as an uninterrupted one.
"""

from __future__ import annotations

import random
from typing import Any

import torch
from torch import Tensor, nn


class ImagePool(nn.Module):
    """Up to ``size`` past fakes of shape ``shape`` = ``(C, H, W)``.

    :meth:`query` takes a batch of new fakes and returns a batch of the same size: while the pool is filling
    each fake is stored and returned; once full, each fake is, with probability 1/2, swapped with a stored one
    chosen uniformly at random (the stored one is returned, the new one takes its place), else returned as is.
    ``size=0`` returns the fakes unchanged.

    The coin flips and slot choices come from a Python ``random.Random`` of the pool's own and steer plain
    Python branches, and stored images are addressed with Python ints: no tensor is read on the host.

    Args:
        size: capacity (CycleGAN: 50). shape: one image's shape.
        seed: seed of the pool's generator; ``None`` draws one from torch's global generator (so a seeded run
            is reproducible).
    """

    def __init__(self, size: int, shape: tuple[int, int, int], seed: int | None = None):
        super().__init__()
        self.size = int(size)
        self.register_buffer("images", torch.zeros(self.size, *shape))
        self.count = 0
        if seed is None:
            seed = int(torch.randint(2**62, ()))
        self.rng = random.Random(seed)

    def query(self, fakes: Tensor) -> Tensor:
        """``(B, C, H, W)`` new fakes -> ``(B, C, H, W)`` fakes for the discriminator (detached)."""
        fakes = fakes.detach()
        if self.size == 0:
            return fakes
        n = fakes.shape[0]
        coins = [self.rng.random() for _ in range(n)]
        slots = [self.rng.randrange(self.size) for _ in range(n)]
        out = []
        for fake, coin, slot in zip(fakes, coins, slots, strict=True):
            if self.count < self.size:
                self.images[self.count].copy_(fake)
                self.count += 1
                out.append(fake)
            elif coin > 0.5:
                out.append(self.images[slot].to(fake.dtype, copy=True))
                self.images[slot].copy_(fake)
            else:
                out.append(fake)
        return torch.stack(out)

    def get_extra_state(self) -> dict[str, Any]:
        version, internal, gauss = self.rng.getstate()
        return {"count": self.count, "rng": [version, list(internal), gauss]}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        self.count = int(state["count"])
        version, internal, gauss = state["rng"]
        self.rng.setstate((version, tuple(internal), gauss))

    def extra_repr(self) -> str:
        return f"size={self.size}, stored={self.count}"

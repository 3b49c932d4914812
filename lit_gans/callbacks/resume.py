"""What a resumed run needs beyond Lightning's own checkpoint content: the global random states."""

from __future__ import annotations

import random
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback


class RNGState(Callback):
    """Saves torch (CPU and CUDA), NumPy and Python random states in checkpoints and restores them on resume,
    so the random draws of the steps after a resume (dropout, timesteps, patch picks, image-pool choices)
    are those of an uninterrupted run. Data order does not depend on them (see ``lit_gans.data.sampling``).

    Under DDP the checkpoint holds rank 0's states; every rank restores them and then offsets its torch
    generator by its rank, as a fresh seeded DDP run would differ per rank.
    """

    def state_dict(self) -> dict[str, Any]:
        np_state = np.random.get_state()
        state = {
            "torch": torch.get_rng_state(),
            "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *map(float, np_state[2:])],
            "python": random.getstate(),
        }
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            state["cuda"] = torch.cuda.get_rng_state_all()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._to_load = state

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        state = getattr(self, "_to_load", None)
        if state is None:
            return
        self._to_load = None
        torch.set_rng_state(state["torch"])
        name, keys, pos, gauss, cached = state["numpy"]
        np.random.set_state((name, keys.numpy().astype(np.uint32), int(pos), int(gauss), float(cached)))
        py = state["python"]
        random.setstate((py[0], tuple(py[1]), py[2]))
        if "cuda" in state and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda"])
        if trainer.world_size > 1 and trainer.global_rank > 0:
            torch.manual_seed(int(torch.randint(2**62, ())) + trainer.global_rank)

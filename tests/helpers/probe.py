"""A callback the multi-process tests add through Hydra (``+callbacks.probe=...``): every rank writes its
parameters' checksum and its own per-batch loss values, so a test can compare ranks."""

import json
import os

import torch
from lightning.pytorch.callbacks import Callback


class Probe(Callback):
    def __init__(self, out: str):
        self.out = out
        self.steps: list[dict[str, float]] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.steps.append({k: float(v) for k, v in pl_module.objective.scalars().items()})

    def on_train_end(self, trainer, pl_module):
        os.makedirs(self.out, exist_ok=True)
        params = {n: p.detach().double() for n, p in pl_module.named_parameters()}
        record = {
            "rank": trainer.global_rank,
            "world": trainer.world_size,
            "checksum": {n: [float(p.sum()), float(p.abs().sum())] for n, p in params.items()},
            "steps": self.steps,
        }
        with open(os.path.join(self.out, f"rank{trainer.global_rank}.json"), "w") as f:
            json.dump(record, f)
        torch.save({n: p.float() for n, p in params.items()}, os.path.join(self.out, f"rank{trainer.global_rank}.pt"))

"""The adaptive discriminator augmentation's schedule: StyleGAN2-ADA's heuristic moves ``p`` (``aug=ada``,
``aug=apa``) from the discriminator's overfitting statistics."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback

from lit_gans.augment import adjust_probability


def batch_size_of(batch: Any) -> int:
    """Images per domain in a batch: the first dimension of its first tensor (a Python int: no sync)."""
    values = batch.values() if isinstance(batch, Mapping) else batch if isinstance(batch, (list, tuple)) else [batch]
    return next(int(v.shape[0]) for v in values if torch.is_tensor(v) and v.dim() > 0)


class AdaptiveAugmentation(Callback):
    """Every ``interval`` batches: ``r_t = E[sign(D(real))]`` over the real logits since the last update
    (summed over processes under DDP), then ``p <- clamp(p + sign(r_t - target) * N / (kimg * 1000), 0, 1)``
    with ``N`` the real images seen meanwhile (all processes), so ``p`` can cross [0, 1] in ``kimg`` thousand
    images. Logs ``aug/p`` and ``aug/rt``.

    Everything stays on the device (the statistics, the update, the all-reduce and the logged values): no host
    sync. ``p`` is a buffer of the model (restored with its weights); the batch count is this callback's state.

    Args:
        interval: batches between updates (StyleGAN2-ADA: 4).
        target: the r_t the discriminator is held at (0.6).
        kimg: thousands of real images for ``p`` to go from 0 to 1 (StyleGAN2-ADA: 500).
    """

    def __init__(self, interval: int = 4, target: float = 0.6, kimg: float = 500.0):
        if interval < 1 or kimg <= 0:
            raise ValueError(f"aug.interval must be >= 1 and aug.kimg > 0, got {interval} and {kimg}")
        self.interval = int(interval)
        self.target = float(target)
        self.kimg = float(kimg)
        self.batches_trained = 0
        self.images = 0
        self.rt: torch.Tensor | None = None  # the last r_t (a device tensor)

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        aug = getattr(pl_module, "augment", None)
        if aug is None or not aug.adaptive:
            return
        self.batches_trained += 1
        self.images += batch_size_of(batch) * trainer.world_size
        if self.batches_trained % self.interval == 0:
            self.update(trainer, aug)
        # logged every batch (device tensors, written at Lightning's log_every_n_steps)
        pl_module.log("aug/p", aug.p, on_step=True, on_epoch=False, batch_size=1)
        if self.rt is not None:
            pl_module.log("aug/rt", self.rt, on_step=True, on_epoch=False, batch_size=1)

    def update(self, trainer: L.Trainer, aug: Any) -> None:
        stats = torch.stack([aug.sign_sum, aug.sign_count])
        if trainer.world_size > 1:
            stats = trainer.strategy.reduce(stats, reduce_op="sum")
        rt = stats[0] / stats[1].clamp_min(1.0)
        # no real logits since the last update (e.g. the discriminator is switched off): p stays
        step = adjust_probability(aug.p, rt, self.target, self.images, self.kimg)
        aug.p.copy_(torch.where(stats[1] > 0, step, aug.p))
        aug.reset_statistics()
        self.images = 0
        self.rt = rt

    def state_dict(self) -> dict[str, Any]:
        return {"batches_trained": self.batches_trained, "images": self.images}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.batches_trained = int(state_dict["batches_trained"])
        self.images = int(state_dict.get("images", 0))

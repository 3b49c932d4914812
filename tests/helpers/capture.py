"""A callback the model tests add to a Trainer: what each training step saw and produced."""

import copy

from lightning.pytorch.callbacks import Callback


class Capture(Callback):
    """``steps``: one ``(batch, values, dtypes)`` per batch: a copy of the batch, the objective's logged values
    (``scalars()``, detached copies) and the dtype of every term computed in that step (its keys are the terms
    that were computed; a term with weight 0 is absent)."""

    def __init__(self):
        self.steps = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        vals = {k: v.detach().clone() for k, v in pl_module.objective.scalars().items()}
        dtypes = {k: v.dtype for k, v in pl_module.objective._values.items()}
        self.steps.append((copy.deepcopy(batch), vals, dtypes))

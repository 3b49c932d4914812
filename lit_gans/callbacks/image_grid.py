"""Sample grids in TensorBoard (and as PNG files next to the logs)."""

from __future__ import annotations

import logging
import os
from typing import Any

import lightning as L
import torch
import torchvision
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities import rank_zero_only

from lit_gans.utils.view import same_size, to_rgb01

log = logging.getLogger(__name__)


class ImageGrid(Callback):
    """Every ``every_n_steps`` batches (and at the end of training) runs ``pl_module.visuals`` on a fixed
    batch from the data module and logs one grid: one row per sample, one column per visual (for StarGAN v2:
    source | reference | reference-guided | latent-guided). Latents are decoded with the model's VAE when it
    has one (``model.vae.path``), else shown as a normalised view of 3 channels.

    Args:
        every_n_steps: batches between grids (0: only at the end).
        num_samples: rows.
        save_png: also write ``samples/step_XXXXXXX.png`` under the logger's directory.
    """

    def __init__(self, every_n_steps: int = 500, num_samples: int = 8, save_png: bool = True):
        self.every_n_steps = every_n_steps
        self.num_samples = num_samples
        self.save_png = save_png
        self._batch: dict[str, torch.Tensor] | None = None
        self._vae: Any = None
        self._vae_loaded = False

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        dm = trainer.datamodule
        if dm is not None and hasattr(dm, "sample_batch"):
            self._batch = dm.sample_batch(self.num_samples)

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        done = trainer.fit_loop.total_batch_idx + 1  # batches trained, this one included
        if self.every_n_steps > 0 and done % self.every_n_steps == 0:
            self.log_grid(trainer, pl_module)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.log_grid(trainer, pl_module)

    def _vae_for(self, pl_module: L.LightningModule) -> Any:
        """The model's ``vae`` config, else the VAE a latent file names (when it can be loaded here)."""
        if not self._vae_loaded:
            from lit_gans.errors import ConfigError
            from lit_gans.latents.vae import load_vae

            cfg = getattr(pl_module, "vae_cfg", None)
            spec = getattr(pl_module, "data_spec", {}) or {}
            if cfg and cfg.get("path"):
                self._vae = load_vae(cfg["path"], cfg.get("subfolder"), device=pl_module.device)
            elif spec.get("vae"):
                try:
                    self._vae = load_vae(spec["vae"], spec.get("vae_subfolder"), device=pl_module.device)
                except ConfigError as err:
                    log.warning("sample grids show a latent preview, not decoded images: %s (set model.vae.path)", err)
            self._vae_loaded = True
        return self._vae

    @rank_zero_only
    def log_grid(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._batch is None or not hasattr(pl_module, "visuals"):
            return
        batch = {k: v.to(pl_module.device) if torch.is_tensor(v) else v for k, v in self._batch.items()}
        was_training = pl_module.training
        pl_module.eval()
        try:
            with torch.no_grad():
                columns = pl_module.visuals(batch)
                vae = self._vae_for(pl_module)
                images = same_size([to_rgb01(c, vae).cpu() for c in columns.values()])
        finally:
            pl_module.train(was_training)
        grid = torchvision.utils.make_grid(torch.stack(images, dim=1).flatten(0, 1), nrow=len(images), padding=2,
                                           pad_value=1.0)
        step = trainer.fit_loop.total_batch_idx + 1
        experiment = getattr(trainer.logger, "experiment", None)
        if experiment is not None and hasattr(experiment, "add_image"):
            experiment.add_image("samples/" + "-".join(columns), grid, global_step=step)
        if self.save_png and trainer.logger is not None and trainer.logger.log_dir:
            out = os.path.join(trainer.logger.log_dir, "samples")
            os.makedirs(out, exist_ok=True)
            torchvision.utils.save_image(grid, os.path.join(out, f"step_{step:07d}.png"))

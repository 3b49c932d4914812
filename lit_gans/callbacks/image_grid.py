"""Sample grids in TensorBoard (and as PNG files next to the logs)."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
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

    With ``loss_maps`` it also logs, at the same steps, the per-pixel loss maps the model's objective kept from
    its latest training batch (``objective.last_maps``: L1, Sobel, Laplacian ... of pix2pix), one column per
    term, one row per item of that batch, as ``loss_maps/<names>``. Each column is scaled to its own maximum
    (white), so it shows *where* a term is large; how large is in its scalar curve.

    Args:
        every_n_steps: batches between grids (0: only at the end).
        num_samples: rows.
        save_png: also write ``samples/step_XXXXXXX.png`` (and ``loss_maps/step_XXXXXXX.png``) under the
            logger's directory.
        loss_maps: ``False`` (default), ``True`` for every active map-producing term, or a list of term names.
    """

    def __init__(self, every_n_steps: int = 500, num_samples: int = 8, save_png: bool = True,
                 loss_maps: bool | Sequence[str] = False):
        self.every_n_steps = every_n_steps
        self.num_samples = num_samples
        self.save_png = save_png
        self.loss_maps = loss_maps if isinstance(loss_maps, bool) else list(loss_maps)
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
        if self.loss_maps:
            self.log_loss_maps(trainer, pl_module)
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
        self._write(trainer, "samples", list(columns), images)

    def selected_maps(self, pl_module: L.LightningModule) -> dict[str, torch.Tensor]:
        """The latest ``(B, 1, H, W)`` maps to show: of the listed terms, or of every active term that keeps one."""
        objective = getattr(pl_module, "objective", None)
        if objective is None:
            return {}
        names = list(objective.last_maps) if self.loss_maps is True else list(self.loss_maps)
        return {n: objective.last_maps[n] for n in names if n in objective.last_maps and objective.active(n)}

    def log_loss_maps(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        maps = self.selected_maps(pl_module)
        if not maps:
            return
        columns = []
        for m in maps.values():
            m = m[: self.num_samples].detach().float().cpu()
            columns.append((m / m.amax().clamp_min(1e-12)).clamp(0, 1).repeat(1, 3, 1, 1))
        self._write(trainer, "loss_maps", list(maps), same_size(columns))

    def _write(self, trainer: L.Trainer, group: str, names: list[str], images: list[torch.Tensor]) -> None:
        """Log one grid (row per item, column per entry of ``images``) as ``<group>/<names>`` and a PNG."""
        grid = torchvision.utils.make_grid(torch.stack(images, dim=1).flatten(0, 1), nrow=len(images), padding=2,
                                           pad_value=1.0)
        step = trainer.fit_loop.total_batch_idx + 1
        experiment = getattr(trainer.logger, "experiment", None)
        if experiment is not None and hasattr(experiment, "add_image"):
            experiment.add_image(f"{group}/" + "-".join(names), grid, global_step=step)
        if self.save_png and trainer.logger is not None and trainer.logger.log_dir:
            out = os.path.join(trainer.logger.log_dir, group)
            os.makedirs(out, exist_ok=True)
            torchvision.utils.save_image(grid, os.path.join(out, f"step_{step:07d}.png"))

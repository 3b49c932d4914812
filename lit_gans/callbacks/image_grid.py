"""Sample grids in every configured logger (and as PNG files next to the logs)."""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Sequence
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import MLFlowLogger, TensorBoardLogger, WandbLogger
from lightning.pytorch.utilities import rank_zero_only
from PIL import Image

from lit_gans.utils.modes import evaluating
from lit_gans.utils.view import labelled_grid, to_rgb01

log = logging.getLogger(__name__)


def files_dir(trainer: L.Trainer) -> str | None:
    """Where a run's own files go (sample PNGs, as the loss history): the first logger's folder when it keeps one
    (TensorBoard, CSV), else the run directory (``trainer.default_root_dir``, i.e. ``paths.output_dir``; MLflow and
    W&B have no ``log_dir``). Unlike ``trainer.log_dir`` this needs no collective, so rank 0 may call it alone."""
    first = trainer.logger
    return first.log_dir if first is not None and first.log_dir else trainer.default_root_dir


def domain_labels(trainer: L.Trainer, batch: dict[str, Any]) -> list[str] | None:
    """The target domain's name of each row (``batch["y_trg"]`` and the data module's ``domain_names``), or None."""
    y = batch.get("y_trg")
    dm = trainer.datamodule
    names = list(getattr(dm, "domain_names", None) or [])
    if not names and hasattr(dm, "data_spec"):
        names = list(dm.data_spec().get("domain_names") or [])
    if not torch.is_tensor(y) or not names:
        return None
    return [names[i] if 0 <= i < len(names) else str(i) for i in y.tolist()]


class ImageGrid(Callback):
    """Logs one labelled grid of samples at the end of every ``every_n_epochs``-th training epoch, every
    ``every_n_steps`` batches when set, and at the end of training: ``pl_module.visuals`` on a fixed batch from
    the data module, one column per visual titled with its name (StarGAN v2: source | reference | ref_guided |
    latent_guided, rows labelled with the target domain), tiles enlarged to at least ``min_tile`` px
    (:func:`lit_gans.utils.view.labelled_grid`). Latents are decoded with the model's VAE when it has one
    (``model.vae.path``), else shown as a normalised view of 3 channels.

    Each grid reaches every logger through its own API: TensorBoard ``add_image`` (``samples/<columns>``, at the
    batch count), MLflow ``log_image`` with key and step (the run's ``images/`` artifacts, the UI's step
    slider), Weights & Biases ``log_image``; with ``save_png`` it is also written once as
    ``samples/step_XXXXXXX.png`` under :func:`files_dir` (the CSV logger's folder when it comes first). Two grids
    are never written at the same batch count (an epoch's end that is also a step multiple or the end).

    With ``loss_maps`` it also logs, at the same times, the per-pixel loss maps the model's objective kept from
    its latest training batch (``objective.last_maps``: L1, Sobel, Laplacian ... of pix2pix), one column per
    term, one row per item of that batch, as ``loss_maps/<names>``. Each column is scaled to its own maximum
    (white), so it shows *where* a term is large; how large is in its scalar curve.

    Args:
        every_n_steps: batches between grids; ``None``: none by batch count. ``0`` keeps the meaning it has
            always had in configs and tests: no grid before the end of training (epoch grids off too).
        num_samples: rows.
        save_png: also write the PNG files.
        loss_maps: ``False`` (default), ``True`` for every active map-producing term, or a list of term names.
        every_n_epochs: a grid after every N-th training epoch; 0: none by epoch.
        min_tile: smallest tile side in px (smaller images are enlarged by an integer factor, nearest neighbour).
    """

    def __init__(self, every_n_steps: int | None = None, num_samples: int = 8, save_png: bool = True,
                 loss_maps: bool | Sequence[str] = False, every_n_epochs: int = 1, min_tile: int = 128):
        self.every_n_steps = every_n_steps or 0
        self.every_n_epochs = 0 if every_n_steps == 0 else max(0, int(every_n_epochs or 0))
        self.num_samples = num_samples
        self.save_png = save_png
        self.loss_maps = loss_maps if isinstance(loss_maps, bool) else list(loss_maps)
        self.min_tile = min_tile
        self._batch: dict[str, torch.Tensor] | None = None
        self._vae: Any = None
        self._vae_loaded = False
        self._last_step: int | None = None

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        dm = trainer.datamodule
        if dm is not None and hasattr(dm, "sample_batch"):
            self._batch = dm.sample_batch(self.num_samples)

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        done = trainer.fit_loop.total_batch_idx + 1  # batches trained, this one included
        if self.every_n_steps > 0 and done % self.every_n_steps == 0:
            self.log_grid(trainer, pl_module)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.every_n_epochs > 0 and (trainer.current_epoch + 1) % self.every_n_epochs == 0:
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
        step = trainer.fit_loop.total_batch_idx + 1
        if step == self._last_step:
            return
        self._last_step = step
        if self.loss_maps:
            self.log_loss_maps(trainer, pl_module)
        if self._batch is None or not hasattr(pl_module, "visuals"):
            return
        batch = {k: v.to(pl_module.device) if torch.is_tensor(v) else v for k, v in self._batch.items()}
        with evaluating(pl_module), torch.no_grad():
            columns = pl_module.visuals(batch)
            vae = self._vae_for(pl_module)
            images = {name: to_rgb01(c, vae).cpu() for name, c in columns.items()}
        labels = domain_labels(trainer, self._batch)
        grid = labelled_grid(images, labels, row_title="target" if labels else "", min_tile=self.min_tile)
        self._write(trainer, "samples", list(columns), grid)

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
        columns = {}
        for name, m in maps.items():
            m = m[: self.num_samples].detach().float().cpu()
            columns[name] = (m / m.amax().clamp_min(1e-12)).clamp(0, 1)
        self._write(trainer, "loss_maps", list(maps), labelled_grid(columns, min_tile=self.min_tile))

    def _write(self, trainer: L.Trainer, group: str, names: list[str], grid: torch.Tensor) -> None:
        """Send one ``(3, H, W)`` grid in [0, 1] to every logger as ``<group>/<names>``, and write it once as a PNG."""
        step = trainer.fit_loop.total_batch_idx + 1
        tag = f"{group}/" + "-".join(names)
        pixels = grid.mul(255).add_(0.5).clamp_(0, 255).to(torch.uint8).permute(1, 2, 0).numpy()
        for logger in trainer.loggers:
            if isinstance(logger, TensorBoardLogger):
                logger.experiment.add_image(tag, grid, global_step=step)
            elif isinstance(logger, MLFlowLogger):
                # key + step: an image series in the run's artifacts (images/<key>+step+N+...png), with a step slider
                key = re.sub(r"[^a-zA-Z0-9_\-./ ]", "_", tag)  # the characters MLflow allows in a key
                logger.experiment.log_image(logger.run_id, pixels, key=key, step=step)
            elif isinstance(logger, WandbLogger):
                logger.log_image(key=tag, images=[pixels], step=step)
        out = files_dir(trainer) if self.save_png else None
        if out:
            out = os.path.join(out, group)
            os.makedirs(out, exist_ok=True)
            Image.fromarray(np.ascontiguousarray(pixels)).save(os.path.join(out, f"step_{step:07d}.png"))

"""FID/KID (and StarGAN v2's LPIPS diversity) on the validation images every N epochs, into TensorBoard."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback

log = logging.getLogger(__name__)


class ValidationMetrics(Callback):
    """Every ``every_n_epochs`` training epochs (and never in between), runs the model's evaluation protocol of
    :mod:`lit_gans.metrics.protocols` on small sample counts and logs, at the epoch's last step:

    * StarGAN v2: ``val/FID``, ``val/KID``, ``val/LPIPS`` (means over target domains and both modes) and per
      mode ``val/FID_latent``, ``val/FID_reference``, ... (``LPIPS`` is diversity: higher is more diverse);
    * A -> B models: ``val/FID``, ``val/KID`` of ``G(A)`` against real B.

    Numbers from a few hundred images are biased upwards against the paper's (FID falls with more samples):
    compare runs at equal settings, and use ``python -m lit_gans.evaluate`` for final numbers. Computed on the
    global-zero process only. Weights: see :mod:`lit_gans.metrics.weights` (checked when training starts).

    Args:
        every_n_epochs: epochs between evaluations.
        max_sources: source images per target domain (A images); num_styles: StarGAN v2 outputs per source.
        modes: StarGAN v2 style modes (``latent``, ``reference``).
        split: ``val`` (the training split when the data has none) or ``train``.
        feature: Inception layer (2048; 64 only for tests). inception_weights, lpips_weights, lpips_net: see
            ``conf/evaluate.yaml``. kid_subsets, kid_subset_size: KID's subsets (capped at the sample count).
        vae: ``{"path", "subfolder"}`` of the VAE of a latent model (default: the model's own).
    """

    def __init__(self, every_n_epochs: int = 10, max_sources: int | None = 100, num_styles: int = 4,
                 modes: Sequence[str] = ("latent", "reference"), split: str = "val", batch_size: int = 32,
                 feature: int = 2048, inception_weights: str | None = None, lpips_weights: str | None = None,
                 lpips_net: str = "alex", kid_subsets: int = 50, kid_subset_size: int = 100, seed: int = 0,
                 vae: dict[str, Any] | None = None):
        self.every_n_epochs = every_n_epochs
        self.protocol = {"max_sources": max_sources, "num_styles": num_styles, "modes": tuple(modes),
                         "split": split, "batch_size": batch_size, "seed": seed, "kid_subsets": kid_subsets,
                         "kid_subset_size": kid_subset_size}
        self.feature, self.inception_weights = feature, inception_weights
        self.lpips_weights, self.lpips_net = lpips_weights, lpips_net
        self.vae_cfg = vae or {}
        self._nets: tuple[Any, Any, Any] | None = None

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # Missing weights files or VAE stop the run now, not after the first N epochs.
        if trainer.is_global_zero:
            self.networks(pl_module)

    def networks(self, pl_module: L.LightningModule) -> tuple[Any, Any, Any]:
        """``(inception, lpips or None, vae or None)``, loaded once on the model's device."""
        if self._nets is None:
            from lit_gans import inference
            from lit_gans.metrics import weights

            device = pl_module.device
            extractor = weights.inception(self.feature, self.inception_weights,
                                          "callbacks.metrics.inception_weights").to(device)
            multi = type(pl_module).__name__ in inference.MULTI_DOMAIN
            lpips = (weights.lpips(self.lpips_net, self.lpips_weights, "callbacks.metrics.lpips_weights").to(device)
                     if multi else None)
            vae = inference.model_vae(pl_module, self.vae_cfg.get("path"), self.vae_cfg.get("subfolder"), device,
                                      key="callbacks.metrics.vae={path: PATH}")
            self._nets = (extractor, lpips, vae)
        return self._nets

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.every_n_epochs <= 0 or (trainer.current_epoch + 1) % self.every_n_epochs:
            return
        if trainer.is_global_zero:
            for name, value in self.measure(trainer, pl_module).items():
                pl_module.log(name, value, on_step=False, on_epoch=True, rank_zero_only=True)

    @torch.no_grad()
    def measure(self, trainer: L.Trainer, pl_module: L.LightningModule) -> dict[str, float]:
        from lit_gans.metrics.protocols import evaluate_model

        extractor, lpips, vae = self.networks(pl_module)
        was_training = pl_module.training
        pl_module.eval()
        try:
            results = evaluate_model(pl_module, trainer.datamodule, extractor, lpips, vae=vae, **self.protocol)
        finally:
            pl_module.train(was_training)
        return self.scalars(results)

    @staticmethod
    def scalars(results: dict[str, Any]) -> dict[str, float]:
        """``val/<metric>`` (mean over modes and domains) and ``val/<metric>_<mode>`` of the protocol's results."""
        if "AtoB" in results:
            return {f"val/{k}": v for k, v in results["AtoB"].items() if k != "KID_std"}
        out: dict[str, float] = {}
        for mode, per_domain in results.items():
            for metric, value in per_domain["mean"].items():
                if metric != "KID_std":
                    out[f"val/{metric}_{mode}"] = value
        for metric in ("FID", "KID", "LPIPS"):
            values = [v for k, v in out.items() if k.startswith(f"val/{metric}_")]
            if values:
                out[f"val/{metric}"] = sum(values) / len(values)
        return out

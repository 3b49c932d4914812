"""FID/KID (and StarGAN v2's LPIPS diversity) on the validation images every N epochs, into TensorBoard."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback

from lit_gans.utils.modes import evaluating

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
        with evaluating(pl_module):
            results = evaluate_model(pl_module, trainer.datamodule, extractor, lpips, vae=vae, **self.protocol)
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


class JudgeMetrics(Callback):
    """The judge of :mod:`lit_gans.metrics.judge` during training, for GANs (on by default; it needs no download):
    every ``every_n_epochs`` epochs and at the end of the last epoch (``at_end``), a small classifier trained on the run's own training
    data judges the translations of a fixed set of held-out sources (the same sources and style codes each time),
    logged as ``val/judge_accuracy`` (the fraction judged in the target domain; chance is 1 / domains) and
    ``val/judge_fd`` (Fréchet distance in the judge's features; lower is closer). ``val/judge_accuracy`` is a
    sound ``optimized_metric`` for ``hparams_search=`` (direction maximize).

    For StarGAN v2 also its hallmarks (:mod:`lit_gans.metrics.hallmarks`, ``hallmark_styles`` references and codes
    per source): ``val/judge_accuracy_ref`` (reference-guided outputs in the target domain), ``val/ref_retrieval``
    (outputs nearer their own reference than another one, chance-corrected: 0 ignores the reference) and
    ``val/latent_diversity`` (spread over codes relative to real images'; 0 is mode collapse); on the built-in
    shapes in pixels also ``val/shapes_target_ref``, ``val/shapes_target_latent``, ``val/shapes_colour_followed``,
    ``val/shapes_colour_diversity`` and ``val/shapes_position_error`` (from the shapes' known factors).

    The judge is trained once, at the first measurement, and cached by a hash of the data (see
    :func:`~lit_gans.metrics.judge.default_cache_dir`); the training step is untouched. Models that translate
    by sampling (Palette) are skipped. Computed on the global-zero process only.

    Args:
        every_n_epochs: epochs between measurements (0: only ``at_end``).
        at_end: also measure at the end of the last epoch (by ``trainer.max_epochs``, or a stop asked for), so
            every run ends with a value.
        max_sources: held-out source images translated (per domain pair for multi-domain data: at most this many
            sources in all); num_styles: StarGAN v2 style codes per source.
        max_train: training images the judge learns from; cache_dir: where judges are kept (None: next to the
            data). seed: the style codes' seed.
        hallmark_styles: references and codes per source for StarGAN v2's hallmarks (at least 2; 0: no hallmarks).
    """

    HALLMARKS = ("judge_accuracy_ref", "ref_retrieval", "latent_diversity")
    SHAPES = ("shapes_target_ref", "shapes_target_latent", "shapes_colour_followed", "shapes_colour_diversity",
              "shapes_position_error")

    def __init__(self, every_n_epochs: int = 5, max_sources: int = 60, num_styles: int = 1, max_train: int = 3000,
                 cache_dir: str | None = None, seed: int = 0, at_end: bool = True, hallmark_styles: int = 4):
        self.every_n_epochs = int(every_n_epochs)
        self.at_end = bool(at_end)
        self.kwargs = {"max_sources": int(max_sources), "max_train": int(max_train), "seed": int(seed),
                       "num_styles": int(num_styles)}
        self.hallmark_styles = int(hallmark_styles)
        self.cache_dir = cache_dir

    @staticmethod
    def applies_to(pl_module: L.LightningModule) -> bool:
        from lit_gans import inference

        name = type(pl_module).__name__
        return name in inference.MULTI_DOMAIN or (hasattr(pl_module, "translate") and name not in inference.SAMPLED_IN_STEPS)

    def logged_metrics(self) -> list[str]:
        """What it logs (the HParams tab lists these as metrics; the hallmarks only for multi-domain models)."""
        if self.every_n_epochs <= 0 and not self.at_end:
            return []
        names = ["judge_accuracy", "judge_fd"]
        if self.hallmark_styles:
            names += [*self.HALLMARKS, *self.SHAPES]
        return [f"val/{name}" for name in names]

    def due(self, trainer: L.Trainer) -> bool:
        epoch = trainer.current_epoch + 1
        if self.every_n_epochs > 0 and epoch % self.every_n_epochs == 0:
            return True
        last = trainer.max_epochs is not None and trainer.max_epochs > 0 and epoch >= trainer.max_epochs
        return self.at_end and (last or trainer.should_stop)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not self.due(trainer):
            return
        if not self.applies_to(pl_module) or trainer.datamodule is None:
            return
        if trainer.is_global_zero:
            results = self.measure(trainer, pl_module)
            for name in ("judge_accuracy", "judge_fd", *self.HALLMARKS, *self.SHAPES):
                if name in results:
                    pl_module.log(f"val/{name}", float(results[name]), on_step=False, on_epoch=True,
                                  rank_zero_only=True)

    @torch.no_grad()
    def measure(self, trainer: L.Trainer, pl_module: L.LightningModule) -> dict[str, Any]:
        from lit_gans import inference
        from lit_gans.metrics.judge import judge_model

        kwargs = dict(self.kwargs)
        if type(pl_module).__name__ in inference.MULTI_DOMAIN:
            kwargs.update(hallmarks=self.hallmark_styles >= 2, hallmark_styles=max(2, self.hallmark_styles))
        return judge_model(pl_module, trainer.datamodule, self.cache_dir, **kwargs)

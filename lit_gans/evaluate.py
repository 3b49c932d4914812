"""Measure a trained checkpoint: ``python -m lit_gans.evaluate ckpt=PATH [model=NAME] [data=...] [metrics.*]``.

The config is composed like train.py's (``conf/evaluate.yaml``: data, model, loss, paths), so ``data=`` and its
keys work as for training; the checkpoint's hyper-parameters rebuild the model (and fill the model keys the
data config reads, e.g. ``${model.img_size}``). Prints a table and writes ``metrics.json`` (``output=``).
"""

from __future__ import annotations

import glob
import json
import logging
import os
import shutil
import sys
from typing import Any

import hydra
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, ListConfig, OmegaConf, open_dict

from lit_gans import inference
from lit_gans.errors import ConfigError
from lit_gans.metrics import weights
from lit_gans.metrics.judge import judge_model
from lit_gans.metrics.protocols import evaluate_model, flatten

log = logging.getLogger(__name__)
CONF = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "conf")


def config_name_of(target: str) -> str | None:
    """The ``conf/model/<name>.yaml`` whose ``model._target_`` is ``target`` (for the hint of an error)."""
    short = target.rsplit(".", 1)[-1]
    for path in sorted(glob.glob(os.path.join(CONF, "model", "*.yaml"))):
        model = OmegaConf.load(path) or {}  # conf/model/ configures the model itself (a plain package)
        if str(model.get("_target_", "")).rsplit(".", 1)[-1] == short:
            return os.path.splitext(os.path.basename(path))[0]
    return None


def model_config_from_checkpoint(cfg: DictConfig, ckpt: dict[str, Any]) -> str:
    """Check that the composed model config is the checkpoint's model and copy the checkpoint's hyper-parameters
    into it (so that ``${model.img_size}`` etc. in the data config mean the trained model's). Returns the class."""
    target = inference.model_class_of(ckpt, cfg.model.get("_target_"))
    composed = str(cfg.model.get("_target_", ""))
    if composed.rsplit(".", 1)[-1] != target.rsplit(".", 1)[-1]:
        name = config_name_of(target)
        raise ConfigError(f"the checkpoint holds {target.rsplit('.', 1)[-1]} but the config composes "
                          f"{composed.rsplit('.', 1)[-1]}: add model={name or '<its config>'} (as for train.py)")
    with open_dict(cfg.model):
        for key, value in ckpt["hyper_parameters"].items():
            if key in cfg.model and not isinstance(value, dict):
                cfg.model[key] = value
    return target


HALLMARK_ROWS = {
    "judge_accuracy_ref": "reference-guided outputs in the target domain (chance 1 / domains)",
    "ref_retrieval": "outputs nearer their own reference than another (0: ignored, 1: always)",
    "latent_diversity": "spread over codes / spread of real images (0: one output per source)",
    "lpips_diversity": "mean LPIPS between outputs of one source over codes",
    "shapes_target_ref": "shapes: reference-guided outputs in the target shape",
    "shapes_target_latent": "shapes: latent-guided outputs in the target shape",
    "shapes_colour_followed": "shapes: reference's colour taken (0: ignored, 1: exact)",
    "shapes_colour_diversity": "shapes: colour spread over codes / real colours' spread",
    "shapes_position_error": "shapes: output's centre to source's, in image widths",
}


def format_table(results: dict[str, Any]) -> str:
    """One row per ``mode/domain`` (or ``AtoB``), one column per metric; then the judge's numbers."""
    results = dict(results)
    judge = results.pop("judge", None)
    lines: list[str] = []
    rows: dict[str, dict[str, float]] = {}
    for name, value in flatten(results).items():
        row, metric = name.rsplit("/", 1)
        rows.setdefault(row, {})[metric] = value
    metrics = [m for m in ("FID", "KID", "KID_std", "LPIPS") if any(m in r for r in rows.values())]
    if rows:
        width = max(len(r) for r in rows) + 2
        lines.append("".ljust(width) + "".join(m.rjust(12) for m in metrics))
        for row, values in rows.items():
            lines.append(row.ljust(width) + "".join(
                (f"{values[m]:12.4f}" if m != "FID" else f"{values[m]:12.3f}") if m in values else " " * 12
                for m in metrics))
    if judge:
        pairs, fds = judge.get("judge_accuracy_pairs", {}), judge.get("judge_fd_domains", {})
        width = max([len(k) for k in (*pairs, *fds)] + [4]) + 2
        lines += ["" if lines else None, f"judge (a classifier trained on this data; chance {judge['judge_chance']:.2f}, "
                  f"accuracy on held-out real images {judge['judge_real_accuracy']:.3f})",
                  "source->target".ljust(width) + "accuracy".rjust(12)]
        lines += [k.ljust(width) + f"{v:12.3f}" for k, v in pairs.items()]
        lines += ["mean".ljust(width) + f"{judge['judge_accuracy']:12.3f}", "target".ljust(width) + "judge_fd".rjust(12)]
        lines += [k.ljust(width) + f"{v:12.3f}" for k, v in fds.items()]
        lines.append("mean".ljust(width) + f"{judge['judge_fd']:12.3f}")
        marks = [(k, judge[k]) for k in HALLMARK_ROWS if k in judge]
        if marks:
            lines += ["", "StarGAN v2's hallmarks (docs/evaluate.md)"]
            lines += [f"{k.ljust(26)}{v:8.3f}   {HALLMARK_ROWS[k]}" for k, v in marks]
    return "\n".join(line for line in lines if line is not None)


FEATURES = (64, 192, 768, 2048)  # the InceptionV3 layers torch-fidelity (and so FID/KID) can read


def _count(value: Any, low: int = 1) -> bool:
    return not isinstance(value, bool) and isinstance(value, int) and value >= low


def check_metrics(m: DictConfig) -> None:
    """One-line :class:`ConfigError` for a ``metrics.*`` value that cannot work, before the checkpoint is read
    (some of them would otherwise be ignored silently, e.g. modes when the FID weights are missing)."""
    from lit_gans.metrics.protocols import MODES

    modes = list(m.modes) if isinstance(m.modes, (list, tuple, ListConfig)) else [m.modes]
    unknown = [str(x) for x in modes if x not in MODES]
    if unknown or not modes:
        raise ConfigError(f"metrics.modes={_listed(modes)}: choose from {', '.join(MODES)} (e.g. "
                          f"metrics.modes=[{','.join(MODES)}])")
    if m.feature not in FEATURES or isinstance(m.feature, bool):
        raise ConfigError(f"metrics.feature={m.feature}: the Inception layer is one of "
                          f"{', '.join(map(str, FEATURES))} (2048: the standard FID)")
    for key in ("num_styles", "batch_size", "kid_subsets", "kid_subset_size"):
        if not _count(m[key]):
            raise ConfigError(f"metrics.{key}={m[key]}: must be an integer >= 1")
    if m.max_sources is not None and not _count(m.max_sources):
        raise ConfigError(f"metrics.max_sources={m.max_sources}: must be an integer >= 1, or null for all sources")
    if m.split not in ("val", "train"):
        raise ConfigError(f"metrics.split={m.split} must be val or train")


def _listed(values: list[Any]) -> str:
    return "[" + ",".join(str(v) for v in values) + "]"


def evaluate(cfg: DictConfig) -> dict[str, Any]:
    """Rebuild the checkpoint's model and data, run its protocol, write ``cfg.output`` (JSON); returns the results."""
    from tqdm.auto import tqdm

    from lit_gans.train import route_lightning_logs_through_root

    route_lightning_logs_through_root()
    if OmegaConf.is_missing(cfg, "ckpt") or not cfg.ckpt:
        raise ConfigError("ckpt= is required: the checkpoint to measure, e.g. python -m lit_gans.evaluate "
                          "ckpt=outputs/<date>/<time>/checkpoints/last.ckpt")
    check_metrics(cfg.metrics)
    device = inference.resolve_device(cfg.device)
    ckpt = inference.read_checkpoint(cfg.ckpt)
    target = model_config_from_checkpoint(cfg, ckpt)
    model, _ = inference.load_model(cfg.ckpt, device, fallback_class=target)
    datamodule = instantiate(cfg.data, _convert_="all")
    model.check_data(datamodule.data_spec())
    m = cfg.metrics
    download = weights.download_allowed(m.get("download"))
    multi = type(model).__name__ in inference.MULTI_DOMAIN
    vae = inference.model_vae(model, cfg.vae, cfg.vae_subfolder, device)
    skipped: dict[str, str] = {}
    results: dict[str, Any] = {}
    lpips = None
    try:  # FID/KID (and LPIPS): the standard networks, when their weights are here (or may be downloaded)
        extractor = weights.inception(int(m.feature), m.inception_weights, download=download).to(device)
        if multi:
            try:
                lpips = weights.lpips(m.lpips_net, m.lpips_weights, download=download).to(device)
            except ConfigError as err:
                skipped["LPIPS"] = str(err)
    except ConfigError as err:
        extractor = None
        skipped["FID, KID" + (", LPIPS" if multi else "")] = str(err)
    if extractor is not None:
        results = evaluate_model(
            model, datamodule, extractor, lpips, vae=vae, modes=tuple(m.modes), num_styles=int(m.num_styles),
            max_sources=m.max_sources, split=m.split, batch_size=int(m.batch_size), seed=int(cfg.seed),
            kid_subsets=int(m.kid_subsets), kid_subset_size=int(m.kid_subset_size),
            progress=lambda it: tqdm(it, desc="evaluate", disable=not cfg.progress))
    if m.get("judge", True):  # the judge needs no download: it learns the domains from the training data
        extra = {}
        if multi:  # StarGAN v2's hallmarks, with LPIPS diversity when its weights are here
            if lpips is None:
                try:
                    lpips = weights.lpips(m.lpips_net, m.lpips_weights, download=download).to(device)
                except ConfigError:
                    lpips = None  # already said in the "skipped" line
            extra = {"lpips": lpips, "hallmark_styles": max(2, int(m.get("hallmark_styles", 4)))}
        judged = judge_model(model, datamodule, m.get("judge_dir"), vae=vae, seed=int(cfg.seed),
                             max_sources=m.max_sources if m.max_sources is not None else 300,
                             num_styles=max(1, int(m.num_styles)), **extra)
        results["judge"] = judged
    for what, why in skipped.items():
        print(f"skipped {what}: {why}", file=sys.stderr)
    report = {"checkpoint": os.path.abspath(str(cfg.ckpt)), "model": target, "metrics": results,
              "skipped": skipped, "settings": OmegaConf.to_container(m, resolve=True)}
    os.makedirs(os.path.dirname(os.path.abspath(str(cfg.output))), exist_ok=True)
    with open(cfg.output, "w") as f:
        json.dump(report, f, indent=2)
    print(format_table(results))
    print(f"written to {cfg.output}")
    return results


def remove_if_empty(run_dir: str) -> None:
    """Remove a run folder that holds nothing but Hydra's record and log (a run that failed before any result)."""
    try:
        entries = set(os.listdir(run_dir))
    except OSError:
        return
    if entries <= {".hydra", "evaluate.log"}:
        shutil.rmtree(run_dir, ignore_errors=True)


@hydra.main(version_base="1.3", config_path="../conf", config_name="evaluate")
def main(cfg: DictConfig) -> None:
    from hydra.core.hydra_config import HydraConfig

    from lit_gans.cli import user_errors

    torch.set_grad_enabled(False)
    try:
        with user_errors():
            evaluate(cfg)
    except BaseException:
        remove_if_empty(HydraConfig.get().runtime.output_dir)
        raise


if __name__ == "__main__":
    main()

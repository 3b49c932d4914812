"""What is measured on which images: StarGAN v2's protocol (per target domain, reference- and latent-guided,
FID/KID against the domain's real images and LPIPS diversity over styles) and A -> B for the one-to-one models
(FID/KID of G(A) against real B).

Images come from a data module's validation split (``split="val"``; the training split when there is none) or
its training split (``split="train"``, with its augmentations), in the data's own space; latent models'
outputs and reals are decoded by the VAE before measuring.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import Tensor

from lit_gans import inference
from lit_gans.data.domain_items import MultiDomainItems
from lit_gans.data.pair_items import PairedItems, UnpairedItems
from lit_gans.errors import ConfigError
from lit_gans.metrics.distances import FeatureDistances
from lit_gans.metrics.diversity import lpips_diversity

MODES = ("latent", "reference")
Load = Callable[[int], Tensor]


def items_of(datamodule: Any, split: str = "val") -> Any:
    """The dataset of ``split``: ``val`` falls back to the training set when the data has no validation split."""
    if split not in ("val", "train"):
        raise ConfigError(f"metrics.split={split} must be val or train")
    datamodule.setup("fit")
    if split == "val" and datamodule.val_set is not None:
        return datamodule.val_set
    return datamodule.train_set


def batches(load: Load, indices: list[int], size: int) -> Iterator[Tensor]:
    for i in range(0, len(indices), size):
        yield torch.stack([load(j) for j in indices[i : i + size]])


def _add_images(dist: FeatureDistances, x: Tensor, vae: Any, real: bool) -> Tensor:
    """Decode (latents) and feed a data-space batch; returns the RGB batch in [-1, 1]."""
    rgb = inference.to_pixels(x, vae)
    dist.update(rgb * 0.5 + 0.5, real=real)
    return rgb


def _summary(per_domain: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    keys = next(iter(per_domain.values())).keys()
    mean = {k: sum(d[k] for d in per_domain.values()) / len(per_domain) for k in keys}
    return {**per_domain, "mean": mean}


@torch.no_grad()
def stargan_metrics(model: Any, datamodule: Any, extractor: torch.nn.Module, lpips: torch.nn.Module | None,
                    vae: Any | None = None, modes: tuple[str, ...] = MODES, num_styles: int = 10,
                    max_sources: int | None = None, split: str = "val", batch_size: int = 16, seed: int = 0,
                    kid_subsets: int = 100, kid_subset_size: int = 1000,
                    progress: Callable[[Any], Any] = lambda it: it) -> dict[str, dict[str, dict[str, float]]]:
    """StarGAN v2's evaluation, per mode and target domain ``t`` (and the mean over domains):

    * every source image of the other domains (at most ``max_sources`` per target) is translated into ``t``
      under ``num_styles`` styles: the codes ``F(z, t)`` of random ``z`` (``latent``) or ``E(x_ref, t)`` of random
      references of ``t`` (``reference``);
    * ``FID``/``KID``: all those outputs against the real images of ``t`` (same split);
    * ``LPIPS``: for each source, the mean LPIPS between its ``num_styles`` outputs, averaged over sources
      (diversity: higher is more diverse). Needs ``num_styles >= 2``; skipped when ``lpips`` is ``None``.

    Returns ``{mode: {domain_name | "mean": {"FID", "KID", "KID_std", "LPIPS"?}}}``.
    """
    items = items_of(datamodule, split)
    if not isinstance(items, MultiDomainItems):
        raise ConfigError("StarGAN v2 is evaluated on multi-domain data (data=synthetic, domains or latents with "
                          f"a domains layout), got {type(items).__name__}")
    unknown = [m for m in modes if m not in MODES]
    if unknown:
        raise ConfigError(f"metrics.modes has {unknown}: choose from {', '.join(MODES)}")
    names = list(getattr(datamodule, "domain_names", [])) or [str(d) for d in range(items.num_domains)]
    labels = items.labels.tolist()
    members = {d: [i for i, y in enumerate(labels) if y == d] for d in range(items.num_domains)}
    latent_dim = model.net_cfg["latent_dim"]
    device = model.device
    g = torch.Generator().manual_seed(seed)
    results: dict[str, dict[str, dict[str, float]]] = {m: {} for m in modes}
    for t in progress(range(items.num_domains)):
        dist = FeatureDistances(extractor, kid_subsets, kid_subset_size, seed)
        for x in batches(items.load, members[t], batch_size):
            _add_images(dist, x.to(device), vae, real=True)
        sources = [i for d, m in members.items() if d != t for i in m]
        if max_sources is not None:
            sources = [sources[int(k)] for k in torch.randperm(len(sources), generator=g)[:max_sources]]
        for mode in modes:
            dist.reset(keep_real=True)
            diversity = []
            for x in batches(items.load, sources, batch_size):
                x = x.to(device)
                b = x.shape[0]
                outs = []
                for _ in range(num_styles):
                    if mode == "latent":
                        z = torch.randn(b, latent_dim, generator=g)
                        fake = model.translate(x, t, z=z)
                    else:
                        picks = torch.randint(len(members[t]), (b,), generator=g).tolist()
                        ref = torch.stack([items.load(members[t][k]) for k in picks])
                        fake = model.translate(x, t, x_ref=ref)
                    outs.append(_add_images(dist, fake, vae, real=False))
                if lpips is not None and num_styles >= 2:
                    diversity.append(lpips_diversity(lpips, torch.stack(outs)).cpu())
            scores = dist.compute()
            if diversity:
                scores["LPIPS"] = float(torch.cat(diversity).mean())
            results[mode][names[t]] = scores
    return {mode: _summary(per) for mode, per in results.items()}


def a_to_b_sides(items: Any) -> tuple[Load, int, Load, int]:
    """``(load_A, n_A, load_B, n_B)`` of unpaired or paired items (data space)."""
    if isinstance(items, UnpairedItems):
        return (lambda i: items.side_a(i)[""]), items.len_a, (lambda i: items.side_b(i)[""]), items.len_b
    if isinstance(items, PairedItems):
        return (lambda i: items.pair(i)[0]), len(items), (lambda i: items.pair(i)[1]), len(items)
    raise ConfigError(f"A -> B models are evaluated on unpaired or paired A/B data, got {type(items).__name__}: "
                      "pass the data the model was trained with (e.g. data=unpaired data.root=DIR)")


@torch.no_grad()
def a_to_b_metrics(model: Any, datamodule: Any, extractor: torch.nn.Module, vae: Any | None = None,
                   max_sources: int | None = None, split: str = "val", batch_size: int = 16, seed: int = 0,
                   kid_subsets: int = 100, kid_subset_size: int = 1000, options: dict[str, Any] | None = None,
                   progress: Callable[[Any], Any] = lambda it: it) -> dict[str, dict[str, float]]:
    """FID/KID of the translations ``G(A)`` of the A images (at most ``max_sources``) against all real B images
    of the split, as CycleGAN/CUT report them. Returns ``{"AtoB": {"FID", "KID", "KID_std"}}``."""
    load_a, n_a, load_b, n_b = a_to_b_sides(items_of(datamodule, split))
    translate = inference.adapter_for(model)
    dist = FeatureDistances(extractor, kid_subsets, kid_subset_size, seed)
    device = model.device
    for x in batches(load_b, list(range(n_b)), batch_size):
        _add_images(dist, x.to(device), vae, real=True)
    sources = list(range(n_a if max_sources is None else min(n_a, max_sources)))
    for x in progress(list(batches(load_a, sources, batch_size))):
        _add_images(dist, translate(model, x.to(device), options or {}), vae, real=False)
    return {"AtoB": dist.compute()}


def evaluate_model(model: Any, datamodule: Any, extractor: torch.nn.Module, lpips: torch.nn.Module | None = None,
                   **kwargs: Any) -> dict[str, Any]:
    """The protocol of the model's family: :func:`stargan_metrics` for multi-domain models, else
    :func:`a_to_b_metrics` (``modes``/``num_styles`` are then ignored)."""
    if type(model).__name__ in inference.MULTI_DOMAIN:
        return stargan_metrics(model, datamodule, extractor, lpips, **kwargs)
    kwargs = {k: v for k, v in kwargs.items() if k not in ("modes", "num_styles")}
    return a_to_b_metrics(model, datamodule, extractor, **kwargs)


def flatten(results: dict[str, Any], prefix: str = "") -> dict[str, float]:
    """``{"latent": {"cat": {"FID": 1}}}`` -> ``{"latent/cat/FID": 1}``."""
    out: dict[str, float] = {}
    for key, value in results.items():
        name = f"{prefix}/{key}" if prefix else str(key)
        out.update(flatten(value, name) if isinstance(value, dict) else {name: float(value)})
    return out

"""Translate images with a trained checkpoint and write PNGs plus an overview grid.

    python -m lit_gans.translate ckpt=run/checkpoints/last.ckpt input=photos/ output=out/ domain=dog seeds=0,1,2
    python -m lit_gans.translate ckpt=... input=photos/ output=out/ ref=refs/dog.jpg domain=dog
    python -m lit_gans.translate ckpt=cyclegan.ckpt input=horses/ output=zebras/
    python -m lit_gans.translate ckpt=palette.ckpt input=gray/ output=colour/ steps=100 sampler=ddpm

Keys: see ``conf/translate.yaml``. StarGAN v2 translates each input under every style (a reference image, or
the style code of a seed); the one-to-one models (CycleGAN, CUT, pix2pix, ...) go A -> B through their adapter
in :mod:`lit_gans.inference`. Latent models read images (encoded by the VAE) or a latent file, and their
outputs are decoded by the VAE.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, ListConfig
from torch import Tensor

from lit_gans import inference
from lit_gans.errors import ConfigError

log = logging.getLogger(__name__)
CONF = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "conf")


@dataclass
class Style:
    """One output per input: ``name`` goes into file names; ``y`` is the target domain; the style comes from
    ``ref`` (reference-guided, data space ``(C, H, W)``) or ``z`` (latent-guided ``(latent_dim,)``)."""

    name: str
    y: int
    ref: Tensor | None = None
    z: Tensor | None = None


@dataclass
class Inputs:
    """Sources in the model's data space ``(N, C, H, W)`` and the names their outputs are written under."""

    x: Tensor
    names: list[str]


def parse_seeds(seeds: Any) -> list[int]:
    """``seeds=0,1,2`` / ``seeds=[0,1,2]`` / ``seeds=3`` -> a list of ints."""
    if isinstance(seeds, (list, tuple, ListConfig)):
        values = list(seeds)
    else:
        values = [s for s in str(seeds).replace(" ", "").split(",") if s]
    try:
        out = [int(s) for s in values]
    except ValueError:
        raise ConfigError(f"seeds={seeds} is not a list of integers: pass e.g. seeds=0,1,2") from None
    if not out:
        raise ConfigError("seeds is empty: pass e.g. seeds=0,1,2")
    return out


def domain_index(names: list[str], name: Any) -> int:
    if not names:
        raise ConfigError("the checkpoint does not list its domain names (trained before they were saved)")
    if str(name) not in names:
        raise ConfigError(f"domain={name} is not a domain of this checkpoint: one of {', '.join(names)}")
    return names.index(str(name))


def read_inputs(path: str, model: Any, vae: Any | None, device: torch.device) -> Inputs:
    """An image, a folder of images (resized to the model's size, encoded by the VAE of latent models), or a
    latent file (all its latents, as stored)."""
    p = Path(os.path.expanduser(str(path)))
    if p.is_file() and p.suffix == ".pt":
        from lit_gans.latents.store import load_latents

        data = load_latents(p)
        x = data.latents.float()
        if x.shape[1] != model.net_cfg["in_channels"]:
            raise ConfigError(f"{p} holds {x.shape[1]}-channel latents, the model takes {model.net_cfg['in_channels']}")
        names = [Path(f).with_suffix("").as_posix().replace("/", "_") for f in data.files] or [
            f"{i:05d}" for i in range(len(x))]
        return Inputs(x, names)
    files = inference.image_files(p, "input")
    images = inference.load_images(files, inference.pixel_size(model, vae))
    root = p if p.is_dir() else p.parent
    names = [f.relative_to(root).with_suffix("").as_posix().replace("/", "_") for f in files]
    return Inputs(encode_batched(images, vae, device), names)


def encode_batched(images: Tensor, vae: Any | None, device: torch.device, batch: int = 16) -> Tensor:
    if vae is None:
        return images
    return torch.cat([inference.encode(chunk.to(device), vae).cpu() for chunk in images.split(batch)])


def stargan_styles(cfg: DictConfig, model: Any, vae: Any | None, device: torch.device) -> list[Style]:
    """The styles of a StarGAN v2 run: one per reference image (``ref=``), else one per seed (``domain=``)."""
    names = list((model.data_spec or {}).get("domain_names", []))
    if cfg.ref:
        ref = Path(os.path.expanduser(str(cfg.ref)))
        sub = sorted(d.name for d in ref.iterdir() if d.is_dir()) if ref.is_dir() else []
        if cfg.domain is None and not (sub and set(sub) <= set(names)):
            raise ConfigError(f"ref={cfg.ref} needs the references' domain: pass domain=NAME (one of "
                              f"{', '.join(names) or '?'}) or give a folder with one sub-folder per domain")
        refs = read_inputs(str(ref), model, vae, device)
        files = inference.image_files(ref, "ref")
        if cfg.domain is not None:
            ys = [domain_index(names, cfg.domain)] * len(files)
        else:
            ys = [domain_index(names, f.relative_to(ref).parts[0]) for f in files]
        return [Style(f"ref-{n}", y, ref=r) for n, y, r in zip(refs.names, ys, refs.x, strict=True)]
    if cfg.domain is None:
        raise ConfigError(f"StarGAN v2 needs a target: domain=NAME seeds=0,1,2 (latent-guided) or ref=IMG_OR_DIR "
                          f"(reference-guided); domains: {', '.join(names) or '?'}")
    y = domain_index(names, cfg.domain)
    latent_dim = model.net_cfg["latent_dim"]
    return [Style(f"{cfg.domain}-seed{s}", y, z=torch.randn(latent_dim, generator=torch.Generator().manual_seed(s)))
            for s in parse_seeds(cfg.seeds)]


def translate_batch(model: Any, x: Tensor, styles: list[Style] | None, options: dict[str, Any]) -> list[Tensor]:
    """Outputs (data space) of one batch of sources: one tensor per style, or the single A -> B output (through
    the model's adapter, which reads ``options``: CycleGAN's ``direction``, Palette's ``steps``/``sampler``/``eta``)."""
    if styles is None:
        return [inference.adapter_for(model)(model, x, options)]
    b = x.shape[0]
    outs = []
    for s in styles:
        ref = s.ref.expand(b, *s.ref.shape) if s.ref is not None else None
        z = s.z.expand(b, *s.z.shape) if s.z is not None else None
        outs.append(model.translate(x, s.y, x_ref=ref, z=z))
    return outs


def run(cfg: DictConfig) -> list[Path]:
    """Translate ``cfg.input`` into ``cfg.output``; returns the PNGs written (overview last)."""
    import torchvision
    from tqdm.auto import tqdm

    for key in ("ckpt", "input", "output"):
        if cfg.get(key) in (None, "", "???"):
            raise ConfigError(f"{key}=... is required: python -m lit_gans.translate ckpt=PATH input=DIR output=DIR")
    out_dir = Path(os.path.expanduser(str(cfg.output)))
    if out_dir.exists() and not out_dir.is_dir():
        raise ConfigError(f"output={cfg.output} is a file; output is the folder the translated images go to: pass a "
                          "new or existing folder")
    batch_size = cfg.batch_size
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError(f"batch_size={batch_size}: pass a number of images per forward pass >= 1 (e.g. batch_size=16)")
    device = inference.resolve_device(cfg.device)
    torch.manual_seed(int(cfg.seed))
    model, _ = inference.load_model(cfg.ckpt, device)
    vae = inference.model_vae(model, cfg.vae, cfg.vae_subfolder, device)
    multi = type(model).__name__ in inference.MULTI_DOMAIN
    if not multi and (cfg.ref or cfg.domain is not None):
        raise ConfigError(f"ref=/domain= are for StarGAN v2; this checkpoint holds {type(model).__name__} (A -> B)")
    options = {"direction": inference.direction_option(model, cfg.direction),
               **inference.sampling_options(model, cfg.steps, cfg.sampler, cfg.eta)}
    styles = stargan_styles(cfg, model, vae, device) if multi else None
    inputs = read_inputs(cfg.input, model, vae, device)
    out_dir.mkdir(parents=True, exist_ok=True)

    written: list[Path] = []
    grid_rows: list[Tensor] = []
    grid_names: list[str] = []
    batches = list(zip(inputs.x.split(cfg.batch_size), _chunks(inputs.names, cfg.batch_size), strict=True))
    for x, names in tqdm(batches, desc="translate", unit="batch", disable=not cfg.progress):
        x = x.to(device)
        outs = [inference.to_pixels(o, vae).cpu() for o in translate_batch(model, x, styles, options)]
        for k, out in enumerate(outs):
            for name, img in zip(names, out, strict=True):
                path = out_dir / (f"{name}__{styles[k].name}.png" if styles is not None else f"{name}.png")
                torchvision.utils.save_image(img * 0.5 + 0.5, path)
                written.append(path)
        if cfg.grid and len(grid_rows) < cfg.grid_rows:
            sources = inference.to_pixels(x, vae).cpu()
            rows = torch.stack([sources, *outs], dim=1)  # (B, 1 + styles, 3, H, W)
            take = cfg.grid_rows - len(grid_rows)
            grid_rows.extend(rows[:take])
            grid_names.extend(names[:take])
    if cfg.grid and grid_rows:
        from lit_gans.utils.view import labelled_grid

        rows = torch.stack(grid_rows) * 0.5 + 0.5  # (N, 1 + styles, 3, H, W) in [0, 1]
        titles = ["source", *(s.name for s in styles)] if styles is not None else ["source", "translated"]
        grid = labelled_grid({t: rows[:, k] for k, t in enumerate(titles)}, row_labels=grid_names, row_title="input")
        written.append(out_dir / "overview.png")
        torchvision.utils.save_image(grid, written[-1])
    return written


def _keys_help() -> str:
    """conf/translate.yaml's keys with their comments, as the help lists them."""
    with open(os.path.join(CONF, "translate.yaml"), encoding="utf-8") as f:
        return "".join(f"  {line}" for line in f if line.strip() and not line.startswith("#"))


def _chunks(items: list[str], n: int) -> list[list[str]]:
    return [items[i : i + n] for i in range(0, len(items), n)]


def compose(argv: list[str]) -> DictConfig:
    """conf/translate.yaml with the command line's ``key=value`` overrides (``seeds=0,1,2`` is a list here,
    not a Hydra sweep)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    argv = [f"seeds=[{a.split('=', 1)[1]}]" if re.fullmatch(r"seeds=[\d\s,]+", a) else a for a in argv]
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=CONF, version_base="1.3"):
            return hydra_compose(config_name="translate", overrides=argv)
    except Exception as err:  # noqa: BLE001 - Hydra's override errors: show their first line, not a traceback
        if type(err).__module__.startswith(("hydra", "omegaconf")):
            raise ConfigError(str(err).splitlines()[0]) from None
        raise
    finally:
        GlobalHydra.instance().clear()


HELP = __doc__.split("\n\n", 1)[1] if __doc__ else ""


def main(argv: list[str] | None = None) -> None:
    from lit_gans.cli import user_errors

    argv = list(sys.argv[1:] if argv is None else argv)
    if any(a in ("-h", "--help") for a in argv):
        print(f"python -m lit_gans.translate ckpt=PATH input=IMG_OR_DIR output=DIR [key=value ...]\n\n{HELP}\n"
              f"Keys (conf/translate.yaml, with their defaults):\n{_keys_help()}")
        return
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    with user_errors():
        cfg = compose(argv)
        written = run(cfg)
    print(f"wrote {len(written)} images to {cfg.output}" + (" (overview.png: sources, then outputs)" if cfg.grid else ""))


if __name__ == "__main__":
    main()

"""Using a trained checkpoint: rebuilding its model, the VAE that decodes its latents, reading input images,
and one *adapter* per model family that turns a batch of sources into translations.

Adding a model to ``python -m lit_gans.translate`` / ``python -m lit_gans.evaluate`` takes one adapter, e.g. for a
model whose ``translate(x, direction)`` goes either way (CycleGAN)::

    @one_to_one("CycleGAN")
    def _cyclegan(model, x, options):
        return model.translate(x, options.get("direction") or "AtoB")

Models without an adapter of their own but with a ``translate(x)`` method use :func:`_default`. Palette's adapter
passes on the sampling options ``steps``/``sampler``/``eta`` that :func:`sampling_options` checked.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from lit_gans.errors import ConfigError, DataError, LitGansError

log = logging.getLogger(__name__)

# A → B adapters: (model, sources in data space (B, C, H, W), options) -> outputs in data space.
OneToOne = Callable[[Any, Tensor, Mapping[str, Any]], Tensor]
ONE_TO_ONE: dict[str, OneToOne] = {}
MULTI_DOMAIN = ("StarGANv2",)  # translated by style (reference or latent code), see lit_gans.translate
SAMPLED_IN_STEPS = ("Palette",)  # diffusion models: take steps=, sampler=, eta= (see sampling_options)
DIRECTIONS = {"CycleGAN": ("AtoB", "BtoA")}  # models that translate either way: direction= (see direction_option)
# Model arguments renamed since 0.1.0 checkpoints were written: (old, new).
RENAMED_ARGS = (("n_layers_D", "n_layers_d"), ("norm_D", "norm_d"), ("out_activation", "output_activation"))
OPTIMIZERS = {"Palette": "torch.optim.AdamW"}  # the others: Adam


def one_to_one(class_name: str) -> Callable[[OneToOne], OneToOne]:
    """Register the A → B adapter of the model class named ``class_name``."""

    def register(fn: OneToOne) -> OneToOne:
        ONE_TO_ONE[class_name] = fn
        return fn

    return register


def _default(model: Any, x: Tensor, options: Mapping[str, Any]) -> Tensor:
    return model.translate(x)


@one_to_one("CycleGAN")
def _cyclegan(model: Any, x: Tensor, options: Mapping[str, Any]) -> Tensor:
    return model.translate(x, options.get("direction") or "AtoB")


@one_to_one("Pix2Pix")
def _pix2pix(model: Any, x: Tensor, options: Mapping[str, Any]) -> Tensor:
    # Batch-norm on each batch's statistics (the paper's test mode): translate in training-sized batches.
    return torch.cat([model.translate(chunk) for chunk in x.split(max(1, model.train_batch_size))])


@one_to_one("Palette")
def _palette(model: Any, x: Tensor, options: Mapping[str, Any]) -> Tensor:
    # None keeps the checkpoint's own setting (model.sampling: ddim, 50 steps, eta 0 by default).
    return model.translate(x, steps=options.get("steps"), sampler=options.get("sampler"), eta=options.get("eta"))


def sampling_options(model: Any, steps: Any = None, sampler: Any = None, eta: Any = None) -> dict[str, Any]:
    """The checked ``steps``/``sampler``/``eta`` of a model sampled in steps (Palette), for its adapter.

    ``None`` keeps the model's own setting (``model.sampling``). ``steps``: denoising steps, 1 .. ``T``;
    ``sampler``: ``ddim`` or ``ddpm``; ``eta``: DDIM's noise, 0 (deterministic) .. 1 (DDPM-like), refused with
    DDPM, which has none. Any of them given to another model, or a bad value, is a :class:`ConfigError`.
    """
    from lit_gans.diffusion import SAMPLERS

    given = [k for k, v in (("steps", steps), ("sampler", sampler), ("eta", eta)) if v is not None]
    name = type(model).__name__
    if name not in SAMPLED_IN_STEPS:
        if given:
            keys = "/".join(f"{k}=" for k in given)
            raise ConfigError(f"{keys} {'is' if len(given) == 1 else 'are'} for diffusion models (Palette); this "
                              f"checkpoint holds {name}, which translates in one pass: drop {keys}")
        return {}
    timesteps = model.schedule.timesteps
    if steps is not None and (isinstance(steps, bool) or not isinstance(steps, int) or not 1 <= steps <= timesteps):
        raise ConfigError(f"steps={steps}: pass a number of denoising steps from 1 to {timesteps} (the model's T)")
    if sampler is not None and sampler not in SAMPLERS:
        raise ConfigError(f"sampler={sampler}: choose {' or '.join(SAMPLERS)}")
    if eta is not None:
        if isinstance(eta, bool) or not isinstance(eta, (int, float)) or not 0 <= eta <= 1:
            raise ConfigError(f"eta={eta}: pass DDIM's noise level from 0 (deterministic) to 1 (DDPM-like)")
        if (sampler or model.sampling_cfg["sampler"]) != "ddim":
            raise ConfigError(f"eta={eta} is DDIM's noise level and sampler=ddpm has none: drop eta= or pass "
                              "sampler=ddim")
    return {"steps": steps, "sampler": sampler, "eta": None if eta is None else float(eta)}


def direction_option(model: Any, direction: Any = None) -> str | None:
    """The checked ``direction`` of a model that translates either way (CycleGAN: ``AtoB``/``BtoA``); ``None``
    keeps its default. A direction for another model, or one it does not have, is a :class:`ConfigError`."""
    if direction is None:
        return None
    name = type(model).__name__
    if name not in DIRECTIONS:
        either = ", ".join(DIRECTIONS)
        raise ConfigError(f"direction={direction} is for models that translate either way ({either}); this "
                          f"checkpoint holds {name}, which has one direction: drop direction=")
    if direction not in DIRECTIONS[name]:
        raise ConfigError(f"direction={direction}: {name} translates {' or '.join(DIRECTIONS[name])}")
    return str(direction)


def adapter_for(model: Any) -> OneToOne:
    name = type(model).__name__
    if name in MULTI_DOMAIN:
        raise ConfigError(f"{name} translates into a domain by style: pass ref=... or domain=NAME seeds=...")
    if name in ONE_TO_ONE:
        return ONE_TO_ONE[name]
    if not hasattr(model, "translate"):
        raise ConfigError(f"{name} has no translate() method and no adapter in lit_gans.inference")
    return _default


# ---------------------------------------------------------------------------------------------- checkpoints
CHECKPOINT_FIX = ("pass a .ckpt written by lit_gans' train.py (load this one with torch.load(weights_only=False) "
                  "only if you trust whoever made it)")


def read_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """A training checkpoint as plain data (``weights_only``, memory-mapped): one-line :class:`ConfigError` for
    no path, a folder, a missing, foreign or truncated file, and a file holding pickled code (never run)."""
    from lit_gans.utils.safe_load import load_data

    p = Path(os.path.expanduser(str(path))) if path not in (None, "", "???") else None
    if p is None:
        raise ConfigError("no checkpoint given: pass ckpt=PATH (a .ckpt written by train.py under <run>/checkpoints/)")
    if p.is_dir():
        inside = next((c for c in (p / "checkpoints" / "last.ckpt", p / "last.ckpt") if c.is_file()), None)
        raise ConfigError(f"ckpt={p} is a directory, not a checkpoint file: pass "
                          + (f"ckpt={inside}" if inside else "the .ckpt file (<run>/checkpoints/last.ckpt or "
                             "epoch_XXXX.ckpt)"))
    if not p.is_file():
        raise ConfigError(f"checkpoint {p} does not exist: pass ckpt=PATH of a .ckpt written by train.py "
                          "(<run>/checkpoints/last.ckpt or epoch_XXXX.ckpt)")
    try:
        ckpt = load_data(p, "checkpoint", CHECKPOINT_FIX, mmap=True)
    except LitGansError:
        raise
    except Exception as err:  # noqa: BLE001 - any other reading failure means it is not a checkpoint
        raise ConfigError(f"{p} is not a readable checkpoint ({type(err).__name__}): pass a .ckpt written by "
                          "train.py") from None
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt or "hyper_parameters" not in ckpt:
        raise ConfigError(f"{p} is not a lit_gans training checkpoint (no state_dict/hyper_parameters)")
    return ckpt


def model_class_of(ckpt: Mapping[str, Any], fallback: str | None = None) -> str:
    """The model's class path: saved in the checkpoint, else ``fallback``."""
    if ckpt.get("model_class"):
        return str(ckpt["model_class"])
    if fallback:
        return fallback
    raise ConfigError("the checkpoint does not say which model it holds: pass model=NAME (as for train.py)")


# What a checkpoint's names may point at: its model class, and the ``_target_`` of its optimizer and scheduler
# configs (only instantiated when training). Checked before anything is imported.
ALLOWED_TARGETS = ("lit_gans.", "torch.optim.")


def model_class(name: str) -> type:
    """The model class a checkpoint names: a LightningModule of lit_gans, or a one-line :class:`ConfigError`
    (a checkpoint is data: it does not get to pick arbitrary code to build)."""
    import lightning as L
    from hydra.utils import get_class

    if not name.startswith("lit_gans."):
        raise ConfigError(f"the checkpoint names the model class {name!r}, which is not one of lit_gans: pass a "
                          "checkpoint written by lit_gans' train.py")
    try:
        cls = get_class(name)
    except Exception:  # noqa: BLE001 - a renamed or removed class
        raise ConfigError(f"the checkpoint's model class {name} does not exist in this lit_gans: use the lit_gans "
                          "version that wrote it") from None
    if not (isinstance(cls, type) and issubclass(cls, L.LightningModule)):
        raise ConfigError(f"the checkpoint names {name} as its model, which is not a model class of lit_gans")
    return cls


def check_targets(hparams: Any, where: str = "hyper_parameters") -> None:
    """One-line :class:`ConfigError` when a ``_target_`` in a checkpoint's hyper-parameters points outside
    :data:`ALLOWED_TARGETS` (optimizers and schedules of torch and lit_gans)."""
    if isinstance(hparams, Mapping):
        target = hparams.get("_target_")
        if target is not None and not (isinstance(target, str) and target.startswith(ALLOWED_TARGETS)):
            raise ConfigError(f"the checkpoint's {where}._target_ is {target!r}: a lit_gans checkpoint only names "
                              f"optimizers and schedules of {' or '.join(t.rstrip('.') for t in ALLOWED_TARGETS)}")
        for key, value in hparams.items():
            check_targets(value, f"{where}.{key}")
    elif isinstance(hparams, (list, tuple)):
        for i, value in enumerate(hparams):
            check_targets(value, f"{where}[{i}]")


def load_model(ckpt_path: str | os.PathLike, device: str | torch.device = "cpu",
               fallback_class: str | None = None) -> tuple[Any, dict[str, Any]]:
    """Rebuild the model of a checkpoint from its hyper-parameters and weights, in eval mode on ``device``.

    Returns ``(model, checkpoint)``; ``model.data_spec`` is the data the model was trained on (domain names,
    sizes, the VAE of latent data)."""
    ckpt = read_checkpoint(ckpt_path)
    cls = model_class(model_class_of(ckpt, fallback_class))
    check_targets(ckpt["hyper_parameters"])
    model = cls(**current_model_args(cls, ckpt["hyper_parameters"]))
    model.on_load_checkpoint(ckpt)
    model.load_state_dict(ckpt["state_dict"])
    return model.to(device).eval().requires_grad_(False), ckpt


def current_model_args(cls: type, hparams: Mapping[str, Any]) -> dict[str, Any]:
    """A checkpoint's model arguments in today's names: checkpoints of lit_gans 0.1.0 keep an ``optim`` dict (now
    the ``optimizer`` / ``scheduler`` configs and ``mapping_lr``, ``f_s_lr``, ``fused_optimizer``), a ``loss``
    block with ``spec``/``terms``/``totals`` and keys of other families (now the model's own spec's keys only) and
    a few keys since renamed. Today's checkpoints pass through unchanged."""
    from lit_gans.losses.objective import make_objective, spec_keys

    class_name = cls.__name__
    args = dict(hparams)
    for old, new in RENAMED_ARGS:
        if old in args:
            args[new] = args.pop(old)
    optim = args.pop("optim", None)
    if isinstance(optim, Mapping):
        optim = dict(optim)
        args["fused_optimizer"] = optim.pop("fused", None)
        for old, new in (("f_lr", "mapping_lr"), ("f_s_lr", "f_s_lr")):
            if old in optim:
                args[new] = optim.pop(old)
        epochs = {k: optim.pop(k) for k in ("n_epochs", "n_epochs_decay") if k in optim}
        epochs.update({k: args.pop(k) for k in ("n_epochs", "n_epochs_decay") if k in args})  # pix2pix's
        warmup = optim.pop("warmup_steps", None)
        args["optimizer"] = {"_target_": OPTIMIZERS.get(class_name, "torch.optim.Adam"), "_partial_": True, **optim}
        if epochs:
            args["scheduler"] = {"_target_": "lit_gans.models.schedulers.linear_decay_scheduler", "_partial_": True,
                                 **epochs}
        elif warmup is not None:
            args["scheduler"] = {"_target_": "lit_gans.models.schedulers.linear_warmup_scheduler", "_partial_": True,
                                 "warmup_steps": warmup}
    loss = args.get("loss")
    if isinstance(loss, Mapping) and "spec" in loss:  # a 0.1.0 block
        known = set(spec_keys(cls.loss_spec)) | set(getattr(cls, "loss_other_keys", ()))
        args["loss"] = {k: v for k, v in loss.items() if k in known}
        old = {n: t["weight"] for n, t in (loss.get("terms") or {}).items()
               if isinstance(t, Mapping) and isinstance(t.get("weight"), (int, float))}
        if old:
            now = make_objective(cls.loss_spec, args["loss"], other_keys=known,
                                 model_args={k: args[k] for k in ("discriminators", "sem_mask") if k in args})
            lost = sorted(n for n, w in old.items() if n in now.terms and now.weight(n) != float(w))
            if lost:
                log.warning("per-term weights of this checkpoint are not carried over (%s): each term is now weighted "
                            "by its loss key", ", ".join(f"{n}={old[n]}" for n in lost))
    return args


def resolve_device(device: Any, key: str = "device") -> torch.device:
    """``auto``: the GPU when there is one. A device name torch does not know, or a GPU this machine does not
    have, is a one-line :class:`ConfigError` (``key=...``)."""
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(str(device))
    except (RuntimeError, TypeError, ValueError):
        raise ConfigError(f"{key}={device} is not a device: pass {key}=auto (the GPU when there is one), cpu, or "
                          "cuda / cuda:N") from None
    if dev.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ConfigError(f"{key}={device}: PyTorch sees no CUDA GPU here (torch.cuda.is_available() is false): "
                              f"pass {key}=cpu, or {key}=auto to use a GPU where there is one")
        if dev.index is not None and dev.index >= count:
            raise ConfigError(f"{key}={device}: this machine has {count} CUDA GPU(s), cuda:0 .. cuda:{count - 1}")
    elif dev.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"{key}={device}: PyTorch sees no Apple GPU (mps) here: pass {key}=cpu or auto")
    elif dev.type not in ("cpu", "cuda", "mps"):
        raise ConfigError(f"{key}={device}: lit_gans runs on cpu, cuda or mps")
    return dev


# ---------------------------------------------------------------------------------------------- VAE
def is_latent_model(model: Any) -> bool:
    return getattr(model, "latent_scale", 1.0) != 1.0 or getattr(model, "net_cfg", {}).get("in_channels") == 4


def model_vae(model: Any, path: str | None = None, subfolder: str | None = None,
              device: str | torch.device = "cpu", key: str = "vae=PATH") -> Any | None:
    """The SD VAE of a latent model: ``path`` when given, else the model's ``vae`` config, else the VAE named by
    the latent file it was trained on. ``None`` for pixel models; a :class:`ConfigError` when none is found."""
    from lit_gans.latents.vae import load_vae

    if not is_latent_model(model):
        return None
    cfg = getattr(model, "vae_cfg", None) or {}
    spec = getattr(model, "data_spec", {}) or {}
    if path:
        return load_vae(path, subfolder, device=device)
    if cfg.get("path"):
        return load_vae(cfg["path"], cfg.get("subfolder"), device=device)
    if spec.get("vae"):
        return load_vae(spec["vae"], spec.get("vae_subfolder"), device=device)
    raise ConfigError(f"this model works on SD-VAE latents and no VAE is known to decode them: pass {key} (a "
                      "diffusers AutoencoderKL folder or a hub id in the local cache)")


def to_pixels(x: Tensor, vae: Any | None) -> Tensor:
    """Data-space batch to RGB in [-1, 1]: pixels as they are, latents decoded by ``vae``."""
    if vae is None:
        return x.float().clamp(-1, 1)
    from lit_gans.latents.vae import decode_latents

    return decode_latents(vae, x).to(x.device)


# ---------------------------------------------------------------------------------------------- images
def image_files(path: str | os.PathLike, what: str = "input") -> list[Path]:
    """One image file, or every file of a folder (recursively); anything that is not a readable image is a
    :class:`DataError` naming it."""
    from lit_gans.data.images import check_image

    p = Path(os.path.expanduser(str(path)))
    if not p.exists():
        raise DataError(f"{what} {p} does not exist: pass {what}=IMAGE_OR_DIR")
    files = [p] if p.is_file() else sorted(f for f in p.rglob("*") if f.is_file()
                                           and not any(part.startswith(".") for part in f.relative_to(p).parts))
    if not files:
        raise DataError(f"{what} folder {p} has no files: put the images to translate in it")
    bad = [(f, why) for f in files if (why := check_image(f, decode=True)) is not None]
    if bad:
        raise DataError(f"{what}: {len(bad)} file(s) are not readable images: "
                        + "; ".join(f"{f} ({why})" for f, why in bad[:5]) + (" ..." if len(bad) > 5 else "")
                        + (f": remove them from {p}" if p.is_dir() else ""))
    return files


def load_images(files: list[Path], size: int) -> Tensor:
    """``(N, 3, size, size)`` in [-1, 1], each file resized to a square (as the validation transforms)."""
    from lit_gans.data.images import read_image
    from lit_gans.data.transforms import stargan_transform

    tf = stargan_transform(size, train=False)
    return torch.stack([tf(read_image(f)) for f in files])


def pixel_size(model: Any, vae: Any | None) -> int:
    """Side of the images the model takes (for latent models: its latent size times the VAE's downscale)."""
    size = int(model.net_cfg["img_size"])
    if vae is None:
        return size
    return size * 2 ** (len(vae.config.block_out_channels) - 1)


def encode(x: Tensor, vae: Any | None) -> Tensor:
    """Images in [-1, 1] to the model's data space (unscaled latents for a latent model)."""
    if vae is None:
        return x
    from lit_gans.latents.vae import encode_images

    return encode_images(vae, x).to(x.device)

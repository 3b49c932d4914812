"""``python -m lit_gans.export``: a checkpoint's inference path to ONNX, TorchScript or torch.export (pt2).

    python -m lit_gans.export ckpt=PATH [format=onnx|torchscript|pt2] [out=FILE] [vae_decoder=true vae=PATH]
                              [pix2pix_norm=auto|running|per_image] [opset=N] [verify=true] [device=cpu]
    python -m lit_gans.export info FILE      # the metadata stored in an exported file, as JSON

What is exported per model family (inputs and outputs, docs/export.md): StarGAN v2 - the EMA generator with
the style from the mapping network (latent code) or the style encoder (reference), the target domain an
input; CycleGAN - both generators; CUT/FastCUT and pix2pix - the generator; Palette - one step of the EMA
denoiser (the sampler loop stays in Python: lit_gans.export.sample_palette). Every batch axis is dynamic.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig

from lit_gans.errors import ConfigError

log = logging.getLogger("lit_gans.export")
CONF = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "conf")


def default_out(ckpt: str, fmt: str) -> Path:
    from lit_gans.export.formats import FORMATS

    p = Path(os.path.expanduser(str(ckpt)))
    return p.with_suffix(FORMATS[fmt])


def export_checkpoint(cfg: DictConfig) -> dict[str, Any]:
    """Export ``cfg.ckpt`` as ``cfg.format`` to ``cfg.out``; returns ``{"files": [...], "metadata": {...},
    "max_abs_diff": float | None}`` (the difference between the file's and PyTorch's outputs when
    ``cfg.verify``)."""
    from lit_gans import inference
    from lit_gans.export.formats import FORMATS, write
    from lit_gans.export.graphs import build_graph, example_inputs
    from lit_gans.export.runtime import load

    if cfg.get("ckpt") in (None, "", "???"):
        raise ConfigError("ckpt=... is required: python -m lit_gans.export ckpt=PATH format=onnx|torchscript|pt2")
    if cfg.format not in FORMATS:
        raise ConfigError(f"format={cfg.format} is not a format: choose one of {', '.join(FORMATS)}")
    opset = cfg.opset
    if opset is not None:
        if isinstance(opset, bool) or not isinstance(opset, int) or opset < 7:
            raise ConfigError(f"opset={opset}: pass an ONNX opset number (e.g. opset=18), or drop opset= for the "
                              "exporter's default")
        if cfg.format != "onnx":
            raise ConfigError(f"opset={opset} is for format=onnx; format={cfg.format} has no opset: drop opset=")
    batch = cfg.batch
    if isinstance(batch, bool) or not isinstance(batch, int):
        raise ConfigError(f"batch={batch}: pass a number of example inputs to trace with, at least 4")
    device = inference.resolve_device(cfg.device)
    model, _ = inference.load_model(cfg.ckpt, device)
    vae = None
    if cfg.vae_decoder:
        if not inference.is_latent_model(model):
            raise ConfigError("vae_decoder=true is for latent models; this checkpoint works on pixels already")
        vae = inference.model_vae(model, cfg.vae, cfg.vae_subfolder, device)
    graph, spec = build_graph(model, vae=vae, pix2pix_norm=cfg.pix2pix_norm)
    if int(cfg.batch) < 4:
        # StarGAN v2's example batch is split between latent codes and references: 2 of each at least, so
        # that no tracer takes a size of 0 or 1 for a constant.
        raise ConfigError(f"batch={cfg.batch}: trace with at least 4 items (the file takes any batch size)")
    example = example_inputs(spec, int(cfg.batch), device, torch.Generator().manual_seed(0))
    out = Path(os.path.expanduser(str(cfg.out))) if cfg.out else default_out(cfg.ckpt, cfg.format)
    extra = {"checkpoint": str(Path(os.path.expanduser(str(cfg.ckpt))).resolve()), "torch": torch.__version__}
    if vae is not None:
        extra["vae"] = {"path": cfg.vae or (getattr(model, "vae_cfg", None) or {}).get("path")
                        or (model.data_spec or {}).get("vae"), "scaling_factor": float(vae.config.scaling_factor)}
    if cfg.format == "torchscript":
        log.warning("TorchScript (torch.jit.trace/save) is deprecated in torch %s; it still loads in libtorch and "
                    "Python, but prefer format=onnx or format=pt2 for new deployments", torch.__version__)
    try:
        files = write(graph, spec, example, cfg.format, out, extra, cfg.opset)
    except ConfigError:
        raise
    except Exception as err:
        # An exporter failure is a bug or an unsupported op, not a user error: keep the traceback, but say
        # which exporter and what to try first.
        raise RuntimeError(f"the {cfg.format} exporter failed on {type(model).__name__}: {err}; try another "
                           "format (onnx, torchscript, pt2) and report the model settings") from err
    diff = None
    if cfg.verify:
        exported = load(out, device=str(device))
        check = example_inputs(spec, 3, device, torch.Generator().manual_seed(1))  # another batch size than traced
        with torch.no_grad():
            want = graph(*check.values())
        want = want if isinstance(want, tuple) else (want,)
        got = exported(**{k: v.cpu() for k, v in check.items()})
        diff = max(float((g - w.float().cpu()).abs().max()) for g, w in zip(got, want, strict=True))
    from lit_gans.export.formats import read_metadata

    return {"files": files, "metadata": read_metadata(out), "max_abs_diff": diff}


def compose(argv: list[str]) -> DictConfig:
    """conf/export.yaml with the command line's ``key=value`` overrides."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=CONF, version_base="1.3"):
            return hydra_compose(config_name="export", overrides=argv)
    except Exception as err:  # noqa: BLE001 - Hydra's override errors: show their first line, not a traceback
        if type(err).__module__.startswith(("hydra", "omegaconf")):
            raise ConfigError(str(err).splitlines()[0] + ": keys are ckpt, format, out, opset, vae_decoder, vae, "
                              "vae_subfolder, pix2pix_norm, verify, batch, device (see --help)") from None
        raise
    finally:
        GlobalHydra.instance().clear()


def info(path: str) -> str:
    """The metadata of an exported file as indented JSON (Palette's schedule shortened)."""
    from lit_gans.export.formats import sniff

    fmt, meta = sniff(path)
    if "palette" in meta and "alphas_cumprod" in meta["palette"]:
        ab = meta["palette"]["alphas_cumprod"]
        meta["palette"]["alphas_cumprod"] = f"[{len(ab)} values: {ab[0]:.6g} ... {ab[-1]:.6g}]"
    return json.dumps(meta, indent=2)


def main(argv: list[str] | None = None) -> None:
    from lit_gans.cli import user_errors

    argv = list(sys.argv[1:] if argv is None else argv)
    if any(a in ("-h", "--help") for a in argv):
        print(__doc__.strip() + "\n\nKeys (conf/export.yaml):\n" + Path(CONF, "export.yaml").read_text())
        return
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("onnxscript").setLevel(logging.WARNING)  # the graph optimiser's per-initializer notes
    with user_errors():
        if argv and argv[0] == "info":
            if len(argv) != 2:
                raise ConfigError("usage: python -m lit_gans.export info FILE")
            print(info(argv[1]))
            return
        cfg = compose(argv)
        result = export_checkpoint(cfg)
    names = ", ".join(str(f) for f in result["files"])
    line = f"wrote {names} ({cfg.format})"
    if result["max_abs_diff"] is not None:
        line += f"; the file's outputs differ from PyTorch's by at most {result['max_abs_diff']:.2e}"
    print(line)


if __name__ == "__main__":
    main()

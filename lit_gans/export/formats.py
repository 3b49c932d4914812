"""Writing an export graph as ONNX, TorchScript or a torch.export program, with its metadata inside the file,
and reading that metadata back (also to tell a file of ours from a corrupted or foreign one).

* ``onnx``: ``torch.onnx.export(..., dynamo=True)``, the torch.export-based exporter (the TorchScript-based
  one is deprecated in torch 2.9+); named dynamic axes; metadata as the model's ``metadata_props`` (key
  ``lit_gans``: the JSON, plus a few flat keys that viewers such as Netron show). Weights are stored inside
  the file up to 1.8 GB and beside it (``FILE.data``) above, the protobuf limit being 2 GB.
* ``torchscript``: ``torch.jit.trace`` + ``torch.jit.save`` with the metadata as the extra file
  ``lit_gans.json``. torch 2.14 marks TorchScript deprecated (``torch.jit.trace/save/load`` warn) but it
  still loads from C++ (libtorch) and Python; prefer ONNX or pt2 for new deployments.
* ``pt2``: ``torch.export.export`` + ``torch.export.save`` (extra file ``lit_gans.json``); load with
  ``torch.export.load(FILE).module()``.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import warnings
import zipfile
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from lit_gans.errors import ConfigError, DataError
from lit_gans.export.graphs import GraphSpec

log = logging.getLogger(__name__)

FORMATS = {"onnx": ".onnx", "torchscript": ".pt", "pt2": ".pt2"}
META_KEY = "lit_gans"
EXTRA_FILE = "lit_gans.json"
METADATA_VERSION = 1
ONNX_INLINE_LIMIT = 1_800_000_000  # bytes of weights kept inside the .onnx file (protobuf's limit is 2 GiB)
FLAT_KEYS = ("family", "domains", "img_size", "latent_scale")


def _size_oblivious() -> Any:
    """Trace with sizes 0 and 1 treated like any other size, so that the programs keep working on an empty
    input (StarGAN v2's ``z``/``ref``, CycleGAN's ``a``/``b``) and on batches of one instead of guarding
    ``size >= 2`` (:func:`lit_gans.compat.size_oblivious_tracing`; ``tests/test_export.py`` checks that a pt2
    program still accepts those sizes)."""
    from lit_gans.compat import size_oblivious_tracing

    return size_oblivious_tracing()


def _dynamic_dims(spec: GraphSpec) -> dict[str, dict[int, Any]]:
    """Named ``torch.export.Dim`` per dynamic axis (one object per name, so ``x`` and ``y`` share ``batch``)."""
    dims: dict[str, Any] = {}
    out: dict[str, dict[int, Any]] = {}
    for name, s in spec.inputs.items():
        out[name] = {}
        for i, d in enumerate(s.shape):
            if isinstance(d, str):
                out[name][i] = dims.setdefault(d, torch.export.Dim(d, min=0))
    return out


def metadata_json(spec: GraphSpec, fmt: str, extra: dict[str, Any]) -> str:
    meta = {"lit_gans_export": METADATA_VERSION, "format": fmt, **spec.metadata, **extra,
            "inputs": {k: v.as_dict() for k, v in spec.inputs.items()},
            "outputs": {k: v.as_dict() for k, v in spec.outputs.items()}}
    return json.dumps(meta)


def write(graph: nn.Module, spec: GraphSpec, example: dict[str, Tensor], fmt: str, path: Path,
          extra: dict[str, Any] | None = None, opset: int | None = None) -> list[Path]:
    """Write ``graph`` (called with ``example``) as ``fmt`` to ``path``; returns the files written."""
    if fmt not in FORMATS:
        raise ConfigError(f"format={fmt} is not a format: choose one of {', '.join(FORMATS)}")
    meta = metadata_json(spec, fmt, extra or {})
    path.parent.mkdir(parents=True, exist_ok=True)
    args = tuple(example[name] for name in spec.inputs)
    with torch.no_grad():
        if fmt == "onnx":
            return _write_onnx(graph, spec, args, path, meta, opset)
        if fmt == "torchscript":
            return _write_torchscript(graph, args, path, meta)
        return _write_pt2(graph, spec, args, path, meta)


def _write_onnx(graph: nn.Module, spec: GraphSpec, args: tuple[Tensor, ...], path: Path, meta: str,
                opset: int | None) -> list[Path]:
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")  # the exporter's notes on renamed axes; failures raise
        program = torch.onnx.export(graph, args, dynamo=True, input_names=list(spec.inputs),
                                    output_names=list(spec.outputs), dynamic_shapes=_dynamic_dims(spec),
                                    opset_version=opset, external_data=False, verbose=False)
    props = program.model.metadata_props
    props[META_KEY] = meta
    parsed = json.loads(meta)
    for key in FLAT_KEYS:
        if key in parsed:
            props[key] = json.dumps(parsed[key])
    program.model.doc_string = f"lit_gans export of {parsed['model_class']}: read with python -m lit_gans.export info FILE"
    weights = sum(p.numel() * p.element_size() for p in graph.parameters())
    external = weights > ONNX_INLINE_LIMIT
    for stale in (path, Path(f"{path}.data")):
        stale.unlink(missing_ok=True)
    program.save(str(path), external_data=external)
    return [path, Path(f"{path}.data")] if external else [path]


def _write_torchscript(graph: nn.Module, args: tuple[Tensor, ...], path: Path, meta: str) -> list[Path]:
    with warnings.catch_warnings():
        # torch.jit.trace/save warn that TorchScript is deprecated (said once in the CLI's output and the
        # docs), and the tracer warns about Python bools computed from shapes (instance norm's size check),
        # which do not change the traced ops.
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(graph, args, check_trace=False)
        torch.jit.save(traced, str(path), _extra_files={EXTRA_FILE: meta})
    return [path]


def _write_pt2(graph: nn.Module, spec: GraphSpec, args: tuple[Tensor, ...], path: Path, meta: str) -> list[Path]:
    with _size_oblivious():
        program = torch.export.export(graph, args, dynamic_shapes=_dynamic_dims(spec))
    torch.export.save(program, str(path), extra_files={EXTRA_FILE: meta})
    return [path]


# ---------------------------------------------------------------------------------------------- reading
def _foreign(path: Path, what: str) -> DataError:
    return DataError(f"{path} is {what}, not a file written by python -m lit_gans.export: export the checkpoint "
                     "with python -m lit_gans.export ckpt=... format=onnx|torchscript|pt2")


def sniff(path: str | os.PathLike) -> tuple[str, dict[str, Any]]:
    """``(format, metadata)`` of an exported file, read without loading its weights; a one-line
    :class:`DataError` for a missing, corrupted or foreign file."""
    p = Path(os.path.expanduser(str(path)))
    if not p.is_file():
        raise DataError(f"{p} does not exist: pass the path of a file written by python -m lit_gans.export")
    if zipfile.is_zipfile(p):
        try:
            with zipfile.ZipFile(p) as zf:
                names = zf.namelist()
                fmt = ("torchscript" if any(n.endswith("/constants.pkl") for n in names) else
                       "pt2" if any(n.endswith("/archive_format") for n in names) else None)
                if fmt is None:
                    raise _foreign(p, "a zip archive but neither TorchScript nor torch.export")
                meta_name = next((n for n in names if n.endswith(f"/extra/{EXTRA_FILE}")), None)
                if meta_name is None:
                    raise _foreign(p, f"a {fmt} file without lit_gans metadata")
                meta = json.loads(zf.read(meta_name))
        except DataError:
            raise
        except (zipfile.BadZipFile, OSError, ValueError) as err:
            raise DataError(f"{p} is a damaged archive ({type(err).__name__}: {str(err).splitlines()[0][:80]}): "
                            "export it again") from None
        return fmt, meta
    import onnx

    try:
        model = onnx.load(str(p), load_external_data=False)
    except Exception as err:  # noqa: BLE001 - protobuf's DecodeError and friends: not an ONNX file
        raise DataError(f"{p} is not a readable ONNX, TorchScript or torch.export file ({type(err).__name__}): a "
                        "truncated or corrupted file, or another format; export it again with python -m "
                        "lit_gans.export") from None
    props = {p_.key: p_.value for p_ in model.metadata_props}
    if META_KEY not in props:
        if not model.graph.node:
            raise DataError(f"{p} is not a readable ONNX, TorchScript or torch.export file (no graph): a corrupted "
                            "file or another format; export it again with python -m lit_gans.export")
        raise _foreign(p, "an ONNX model without lit_gans metadata")
    try:
        return "onnx", json.loads(props[META_KEY])
    except ValueError:
        raise DataError(f"{p} has damaged lit_gans metadata: export it again") from None


def read_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """The metadata stored in an exported file (see :func:`sniff`)."""
    return sniff(path)[1]

"""Running an exported file: ONNX through onnxruntime, TorchScript through ``torch.jit.load``, pt2 through
``torch.export.load``; and Palette's sampler loop around an exported denoiser.

    from lit_gans.export import load
    m = load("stargan.onnx")             # m.metadata: domains, sizes, value ranges, ...
    out, = m(x=x, y=y, z=z, ref=ref)     # numpy arrays or tensors in, float32 tensors out
"""

from __future__ import annotations

import contextlib
import math
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from lit_gans.errors import DataError
from lit_gans.export.formats import sniff


class Exported:
    """An exported file, ready to run on CPU (or ``device="cuda"``: onnxruntime's CUDA provider when installed,
    the TorchScript/pt2 program moved to the GPU). Call it with the inputs named in ``metadata["inputs"]``;
    it returns the outputs in the order of ``metadata["outputs"]`` as float32 tensors on the CPU."""

    def __init__(self, path: str | os.PathLike, device: str = "cpu"):
        self.path = Path(os.path.expanduser(str(path)))
        self.format, self.metadata = sniff(self.path)
        self.input_names = list(self.metadata["inputs"])
        self.output_names = list(self.metadata["outputs"])
        self.device = torch.device(device)
        try:
            if self.format == "onnx":
                import onnxruntime as ort

                providers = ["CPUExecutionProvider"]
                if self.device.type == "cuda" and "CUDAExecutionProvider" in ort.get_available_providers():
                    providers.insert(0, "CUDAExecutionProvider")
                self._session = ort.InferenceSession(str(self.path), providers=providers)
            elif self.format == "torchscript":
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", FutureWarning)  # TorchScript's deprecation, see formats.py
                    self._module = torch.jit.load(str(self.path), map_location=self.device)
            else:
                self._module = torch.export.load(str(self.path)).module().to(self.device)
        except DataError:
            raise
        except Exception as err:  # noqa: BLE001 - the runtime's own parse errors: a damaged file
            raise DataError(f"{self.path} could not be loaded by the {self.format} runtime ({type(err).__name__}: "
                            f"{str(err).splitlines()[0][:100] if str(err) else ''}): export it again") from None

    def __repr__(self) -> str:
        return f"Exported({str(self.path)!r}, format={self.format}, family={self.metadata.get('family')})"

    def _check(self, name: str, value: Tensor) -> None:
        spec = self.metadata["inputs"][name]
        shape = spec["shape"]
        if value.dim() != len(shape) or any(isinstance(d, int) and d != v for d, v in zip(shape, value.shape, strict=False)):
            want = "(" + ", ".join(str(d) for d in shape) + ")"
            raise DataError(f"input {name} has shape {tuple(value.shape)}, the exported model takes {want}")

    def __call__(self, **inputs: Any) -> tuple[Tensor, ...]:
        missing = [n for n in self.input_names if n not in inputs]
        unknown = [n for n in inputs if n not in self.input_names]
        if missing or unknown:
            raise DataError(f"the exported model takes inputs {', '.join(self.input_names)}; missing: "
                            f"{', '.join(missing) or '-'}, unknown: {', '.join(unknown) or '-'}")
        tensors = {}
        for name in self.input_names:
            dtype = torch.int64 if self.metadata["inputs"][name]["dtype"] == "int64" else torch.float32
            tensors[name] = torch.as_tensor(np.asarray(inputs[name]) if not isinstance(inputs[name], Tensor)
                                            else inputs[name]).to(dtype)
            self._check(name, tensors[name])
        if self.format == "onnx":
            outs = self._session.run(None, {k: v.cpu().numpy() for k, v in tensors.items()})
            return tuple(torch.from_numpy(np.asarray(o)).float() for o in outs)
        # TorchScript as traced, without the JIT's profiling runs and re-optimisation for every new input shape
        # (seconds per shape on a CPU, for no gain on these convolutional graphs).
        optimized = torch.jit.optimized_execution(False) if self.format == "torchscript" else contextlib.nullcontext()
        with torch.no_grad(), optimized:
            outs = self._module(*(tensors[n].to(self.device) for n in self.input_names))
        outs = outs if isinstance(outs, (tuple, list)) else (outs,)
        return tuple(o.float().cpu() for o in outs)


def load(path: str | os.PathLike, device: str = "cpu") -> Exported:
    """Open an exported file (see :class:`Exported`)."""
    return Exported(path, device)


class _Schedule:
    """The two things the samplers of :mod:`lit_gans.diffusion` read from a schedule, from the metadata."""

    def __init__(self, alphas_cumprod: list[float]):
        self.alpha_bars = tuple(float(a) for a in alphas_cumprod)

    @property
    def timesteps(self) -> int:
        return len(self.alpha_bars)

    def alpha_bar(self, t: int) -> float:
        return 1.0 if t < 0 else self.alpha_bars[t]


def sample_palette(denoiser: Exported, cond: Tensor, steps: int | None = None, sampler: str | None = None,
                   eta: float | None = None, noise: Tensor | None = None,
                   generator: torch.Generator | None = None) -> Tensor:
    """Palette's translation with an exported one-step denoiser: the sampler loop of
    :mod:`lit_gans.diffusion` (as ``Palette.translate``) calling the file once per step.

    ``cond``: sources ``(B, C, H, W)`` in the data's space; ``noise``: the starting ``x_T`` in model space
    (drawn when ``None``); ``steps``/``sampler``/``eta`` default to the model's sampling settings. Returns
    float32 ``(B, C, H, W)`` in the data's space."""
    from lit_gans.diffusion import sample

    meta = denoiser.metadata
    if meta.get("family") != "palette":
        raise DataError(f"{denoiser.path} holds a {meta.get('family')} model, not Palette's denoiser")
    p = meta["palette"]
    scale = float(meta["latent_scale"])
    c = cond.float() * scale
    shape = (c.shape[0], meta["out_channels"], *c.shape[-2:])
    x_T = torch.randn(shape, generator=generator) if noise is None else noise.float()

    def eps_fn(x: Tensor, t: Tensor) -> Tensor:
        return denoiser(x_t=x, t=t, cond=c)[0]

    x0 = sample(eps_fn, x_T, _Schedule(p["alphas_cumprod"]), sampler or p["sampler"],
                p["steps"] if steps is None else steps, p["eta"] if eta is None else eta, generator,
                p["clip_denoised"])
    return x0 / scale if not math.isclose(scale, 1.0) else x0

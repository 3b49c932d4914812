"""The official StarGAN v2 training iteration (clovaai/stargan-v2), timed on the device and batch ours runs on.

The official code is licensed CC BY-NC 4.0 and is never part of this repository: it is read at run time
from a git-ignored folder (default ``third_party/stargan-v2``), filled once with::

    git clone --depth 1 https://github.com/clovaai/stargan-v2 third_party/stargan-v2   # or: make official

What runs is its own code: ``core.model.build_model`` (the nets wrapped in ``nn.DataParallel``, as published),
``core.utils.he_init``, one ``torch.optim.Adam`` per net with ``Solver.__init__``'s settings, and the body of
``Solver.train``'s loop copied line for line (:func:`official_iteration`): two discriminator updates (latent
and reference path, R1 on each through ``core.solver.compute_d_loss``), two generator updates
(``compute_g_loss``), the three ``moving_average`` calls and the ``lambda_ds`` decay, with the published
host reads (``.item()`` of every logged term) left in. Arguments are the README's AFHQ command
(``--w_hpf 0 --lambda_reg 1 --lambda_sty 1 --lambda_ds 2 --lambda_cyc 1``) with ``--num_domains 2``.
``torch.backends`` flags are PyTorch's defaults plus ``cudnn.benchmark = True`` (``main.py``).

Two labelled departures, both outside the timed arithmetic:

* Modules the iteration never calls but that the official files import at their top (``cv2`` and
  ``skimage`` for the FAN of ``core/wing.py``, used only when ``w_hpf > 0``; ``ffmpeg`` for videos in
  ``core/utils.py``; ``scipy`` for FID in ``metrics/``) are replaced, *only while those files are imported
  and only when they are not installed*, by stub modules that raise if anything in them is used; ``munch``,
  which the iteration does use, falls back to a ``dict`` with attribute access when it is not installed.
  The report lists every stand-in used.
* For SD-VAE latents (4 channels), the four convolutions that the official nets hard-code to 3 channels
  (``Generator.from_rgb``, ``Generator.to_rgb[-1]``, ``StyleEncoder.shared[0]``, ``Discriminator.main[0]``)
  are rebuilt with 4, same kernel, stride and padding: everything else is the official architecture at
  ``img_size=32`` (base width ``2**14 // 32 = 512``).
"""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
import time
import types
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import nn

DEFAULT_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                           "third_party", "stargan-v2")
REPOSITORY = "https://github.com/clovaai/stargan-v2"  # the peer of the speed comparison (Choi et al. 2020)
HOW_TO_GET = ("git clone --depth 1 https://github.com/clovaai/stargan-v2 third_party/stargan-v2 "
              "(or `make official`)")
# Imported at the top of the official files, never called by the training iteration with w_hpf=0.
OPTIONAL_MODULES = ("cv2", "skimage", "skimage.filters", "ffmpeg", "scipy", "scipy.linalg")
AFHQ_ARGS = {"img_size": 256, "num_domains": 2, "latent_dim": 16, "hidden_dim": 512, "style_dim": 64,
             "lambda_reg": 1.0, "lambda_cyc": 1.0, "lambda_sty": 1.0, "lambda_ds": 2.0, "ds_iter": 100000,
             "w_hpf": 0.0, "lr": 1e-4, "f_lr": 1e-6, "beta1": 0.0, "beta2": 0.99, "weight_decay": 1e-4}


def find_official(path: str | None = None) -> str | None:
    """The official code's folder if it holds ``core/model.py`` and ``core/solver.py``, else ``None``."""
    path = os.path.abspath(path or DEFAULT_DIR)
    ok = all(os.path.isfile(os.path.join(path, "core", f)) for f in ("model.py", "solver.py", "utils.py"))
    return path if ok else None


class _AttrDict(dict):
    """Stand-in for ``munch.Munch`` (a dict whose keys are also attributes) when munch is not installed."""

    def __getattr__(self, key: str) -> Any:
        try:
            return self[key]
        except KeyError:
            raise AttributeError(key) from None

    def __setattr__(self, key: str, value: Any) -> None:
        self[key] = value


def _stub(name: str) -> types.ModuleType:
    module = types.ModuleType(name)
    module.__doc__ = "gpu_check stub: imported by the official StarGAN v2 files, unused by their training iteration"

    def missing(attr: str) -> Any:
        if attr.startswith("__"):
            raise AttributeError(attr)

        def unavailable(*args: Any, **kwargs: Any) -> Any:
            raise RuntimeError(f"{name}.{attr} is a gpu_check stub (not installed); the timed iteration never uses it")

        return unavailable

    module.__getattr__ = missing  # type: ignore[method-assign]
    return module


def _installed(name: str) -> bool:
    try:
        importlib.import_module(name)
        return True
    except Exception:
        return False


_LOADED: dict[str, types.SimpleNamespace] = {}


def load_official(path: str) -> types.SimpleNamespace:
    """Import the official ``core.model``, ``core.solver`` and ``core.utils`` from ``path``; returns their
    ``build_model``, ``compute_d_loss``, ``compute_g_loss``, ``moving_average``, ``he_init``, ``Munch``,
    and ``stand_ins`` (the stubs used). The process's modules are left as they were: the stubs and the
    official top-level packages (``core``, ``metrics``) are removed from ``sys.modules`` after the import."""
    if path in _LOADED:
        return _LOADED[path]
    before = set(sys.modules)
    stand_ins = [name for name in OPTIONAL_MODULES if not _installed(name)]
    injected = {name: _stub(name) for name in stand_ins}
    for name, module in injected.items():  # `from scipy import linalg` finds the submodule's stub
        parent, _, child = name.rpartition(".")
        if parent in injected:
            setattr(injected[parent], child, module)
    if not _installed("munch"):
        munch = types.ModuleType("munch")
        munch.Munch = _AttrDict  # type: ignore[attr-defined]
        injected["munch"] = munch
        stand_ins.append("munch (dict with attribute access)")
    for name in ("core", "metrics"):
        if name in sys.modules:
            raise RuntimeError(f"a module named {name!r} is already imported; the official code needs that name")
    sys.modules.update(injected)
    sys.path.insert(0, path)
    try:
        model = importlib.import_module("core.model")
        solver = importlib.import_module("core.solver")
        utils = importlib.import_module("core.utils")
    finally:
        sys.path.remove(path)
        for name in set(sys.modules) - before:
            if name in injected or name.split(".")[0] in ("core", "metrics"):
                del sys.modules[name]
        for name in injected:
            sys.modules.pop(name, None)
    ns = types.SimpleNamespace(build_model=model.build_model, compute_d_loss=solver.compute_d_loss,
                               compute_g_loss=solver.compute_g_loss, moving_average=solver.moving_average,
                               he_init=utils.he_init, Munch=model.Munch, stand_ins=stand_ins, path=path)
    _LOADED[path] = ns
    return ns


def _widen(nets: Any, channels: int) -> None:
    """Rebuild the four 3-channel convolutions of the official nets for ``channels`` input/output channels."""

    def like(conv: nn.Conv2d, cin: int, cout: int) -> nn.Conv2d:
        return nn.Conv2d(cin, cout, conv.kernel_size, conv.stride, conv.padding, bias=conv.bias is not None)

    g = nets.generator.module
    g.from_rgb = like(g.from_rgb, channels, g.from_rgb.out_channels)
    g.to_rgb[-1] = like(g.to_rgb[-1], g.to_rgb[-1].in_channels, channels)
    if "style_encoder" in nets:
        e = nets.style_encoder.module
        e.shared[0] = like(e.shared[0], channels, e.shared[0].out_channels)
    if "discriminator" in nets:
        d = nets.discriminator.module
        d.main[0] = like(d.main[0], channels, d.main[0].out_channels)


class OfficialStarGAN:
    """The official nets, EMA copies and optimizers, as ``Solver.__init__`` builds them for training."""

    def __init__(self, official: types.SimpleNamespace, device: torch.device, img_size: int = 256,
                 in_channels: int = 3, **overrides: Any):
        self.o = official
        self.args = official.Munch(**{**AFHQ_ARGS, "img_size": img_size, **overrides})
        nets, nets_ema = official.build_model(self.args)
        if in_channels != 3:
            _widen(nets, in_channels)
            _widen(nets_ema, in_channels)
        self.nets, self.nets_ema = nets, nets_ema
        for module in [*nets.values(), *nets_ema.values()]:
            module.to(device)
        for module in nets.values():
            module.apply(official.he_init)
        a = self.args
        self.optims = official.Munch()
        for net in nets.keys():
            self.optims[net] = torch.optim.Adam(params=nets[net].parameters(),
                                                lr=a.f_lr if net == "mapping_network" else a.lr,
                                                betas=[a.beta1, a.beta2], weight_decay=a.weight_decay)
        self.initial_lambda_ds = a.lambda_ds

    def _reset_grad(self) -> None:
        for optim in self.optims.values():
            optim.zero_grad()

    def iteration(self, inputs: Any, amp: Callable[[], Any] = contextlib.nullcontext) -> None:
        """One iteration of ``Solver.train`` (core/solver.py), line for line; ``amp`` wraps the two loss
        functions (``nullcontext``: as published, fp32)."""
        o, args, nets, nets_ema, optims = self.o, self.args, self.nets, self.nets_ema, self.optims
        x_real, y_org = inputs.x_src, inputs.y_src
        x_ref, x_ref2, y_trg = inputs.x_ref, inputs.x_ref2, inputs.y_ref
        z_trg, z_trg2 = inputs.z_trg, inputs.z_trg2

        masks = nets.fan.get_heatmap(x_real) if args.w_hpf > 0 else None

        # train the discriminator
        with amp():
            d_loss, d_losses_latent = o.compute_d_loss(nets, args, x_real, y_org, y_trg, z_trg=z_trg, masks=masks)
        self._reset_grad()
        d_loss.backward()
        optims.discriminator.step()

        with amp():
            d_loss, d_losses_ref = o.compute_d_loss(nets, args, x_real, y_org, y_trg, x_ref=x_ref, masks=masks)
        self._reset_grad()
        d_loss.backward()
        optims.discriminator.step()

        # train the generator
        with amp():
            g_loss, g_losses_latent = o.compute_g_loss(nets, args, x_real, y_org, y_trg, z_trgs=[z_trg, z_trg2],
                                                       masks=masks)
        self._reset_grad()
        g_loss.backward()
        optims.generator.step()
        optims.mapping_network.step()
        optims.style_encoder.step()

        with amp():
            g_loss, g_losses_ref = o.compute_g_loss(nets, args, x_real, y_org, y_trg, x_refs=[x_ref, x_ref2],
                                                    masks=masks)
        self._reset_grad()
        g_loss.backward()
        optims.generator.step()

        # compute moving average of network parameters
        o.moving_average(nets.generator, nets_ema.generator, beta=0.999)
        o.moving_average(nets.mapping_network, nets_ema.mapping_network, beta=0.999)
        o.moving_average(nets.style_encoder, nets_ema.style_encoder, beta=0.999)

        # decay weight for diversity sensitive loss
        if args.lambda_ds > 0:
            args.lambda_ds -= (self.initial_lambda_ds / args.ds_iter)
        self.last_losses = {"D/latent": d_losses_latent, "D/ref": d_losses_ref, "G/latent": g_losses_latent,
                            "G/ref": g_losses_ref}


def make_inputs(official: types.SimpleNamespace, batch_size: int, img_size: int, channels: int, num_domains: int,
                latent_dim: int, device: torch.device, n: int = 4) -> list[Any]:
    """``n`` input sets as ``core.data_loader.InputFetcher`` yields them (already on the device)."""
    sets = []
    for _ in range(n):
        def img() -> torch.Tensor:
            return torch.randn(batch_size, channels, img_size, img_size, device=device).clamp_(-1, 1)

        def label() -> torch.Tensor:
            return torch.randint(0, num_domains, (batch_size,), device=device)

        sets.append(official.Munch(x_src=img(), y_src=label(), x_ref=img(), x_ref2=img(), y_ref=label(),
                                   z_trg=torch.randn(batch_size, latent_dim, device=device),
                                   z_trg2=torch.randn(batch_size, latent_dim, device=device)))
    return sets


@contextlib.contextmanager
def published_backend_flags() -> Iterator[dict[str, bool]]:
    """PyTorch's default TF32 flags and ``cudnn.benchmark = True`` (the official ``main.py``), restored after."""
    saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32, torch.backends.cudnn.benchmark)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = True
    torch.backends.cudnn.benchmark = True
    try:
        yield {"matmul_allow_tf32": False, "cudnn_allow_tf32": True, "cudnn_benchmark": True}
    finally:
        (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32,
         torch.backends.cudnn.benchmark) = saved


def time_official(path: str, device: torch.device, batch_size: int, img_size: int = 256, in_channels: int = 3,
                  autocast_dtype: torch.dtype | None = None, steps: int = 10, warmup: int = 3,
                  count_flops: bool = True, seed: int = 0) -> dict[str, Any]:
    """Seconds per official iteration (one batch of ``batch_size`` sources), images/s, peak memory, FLOPs per
    iteration (``torch.utils.flop_counter``) and achieved TFLOP/s."""
    from lit_gans.bench.runner import StepFlopCounter, _peak_memory_gb, _sync

    official = load_official(path)
    torch.manual_seed(seed)
    with published_backend_flags() as flags:
        if device.type == "cuda":
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(device)
        model = OfficialStarGAN(official, device, img_size=img_size, in_channels=in_channels)
        a = model.args
        inputs = make_inputs(official, batch_size, img_size, in_channels, a.num_domains, a.latent_dim, device)

        def amp() -> Any:
            if autocast_dtype is None:
                return contextlib.nullcontext()
            return torch.autocast(device.type, dtype=autocast_dtype)

        for i in range(warmup):
            model.iteration(inputs[i % len(inputs)], amp)
        _sync(device)
        start = time.perf_counter()
        for i in range(steps):
            model.iteration(inputs[(warmup + i) % len(inputs)], amp)
        _sync(device)
        seconds = (time.perf_counter() - start) / steps
        result: dict[str, Any] = {
            "impl": "official", "path": path, "stand_ins": official.stand_ins, "backend_flags": flags,
            "precision": "32-true" if autocast_dtype is None else f"{str(autocast_dtype).replace('torch.', '')} autocast",
            "img_size": img_size, "in_channels": in_channels, "batch_size": batch_size, "steps": steps,
            "warmup": warmup, "s_per_step": seconds, "img_per_s": batch_size / seconds,
            "peak_memory_gb": _peak_memory_gb(device),
            "losses": {k: {n: round(float(v), 5) for n, v in d.items()} for k, d in model.last_losses.items()},
        }
        if count_flops:
            with StepFlopCounter() as counter:
                model.iteration(inputs[0], amp)
            result["tflop_per_step"] = counter.get_total_flops() / 1e12
            result["achieved_tflops"] = result["tflop_per_step"] / seconds
    del model, inputs
    return result

"""VGG perceptual loss: L1 between frozen VGG19 features of a generated image and of its target.

The network is torchvision's VGG19 ``features`` with the ImageNet weights (``IMAGENET1K_V1``), read from the
torch hub cache (where torchvision would download them) or from ``loss.vgg_weights``. It is never
downloaded here and never random: without weights, building the loss is a one-line :class:`ConfigError`
that says how to get them.

The loss is not an ``nn.Module`` on purpose: it lives in the model's objective, not among its submodules,
so the frozen VGG stays out of ``state_dict``, checkpoints and optimizers. It follows the input to its
device on first use and runs under the caller's autocast (bf16 features, float32 distances).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor, nn
from torchvision.models import VGG19_Weights
from torchvision.models.vgg import cfgs, make_layers

from lit_gans.errors import ConfigError
from lit_gans.utils.precision import float32_or_wider, wide_dtype
from lit_gans.utils.safe_load import load_data

VGG19_CFG = cfgs["E"]
WEIGHTS = VGG19_Weights.IMAGENET1K_V1
DEFAULT_LAYERS = ("relu1_2", "relu2_2", "relu3_3")
# pix2pixHD's VGGLoss: the first ReLU of each of the five blocks, deeper ones weighted more.
PIX2PIXHD_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
PIX2PIXHD_WEIGHTS = (1 / 32, 1 / 16, 1 / 8, 1 / 4, 1.0)


def vgg19_layer_names() -> list[str]:
    """Names of the modules of torchvision's ``vgg19().features`` by index: ``conv{block}_{i}``,
    ``relu{block}_{i}`` and ``pool{block}`` (index 3 is ``relu1_2``, 8 ``relu2_2``, 15 ``relu3_3``)."""
    names, block, conv = [], 1, 0
    for v in VGG19_CFG:
        if v == "M":
            names.append(f"pool{block}")
            block, conv = block + 1, 0
        else:
            conv += 1
            names += [f"conv{block}_{conv}", f"relu{block}_{conv}"]
    return names


def layer_indices(layers: Sequence[str]) -> list[int]:
    """Indices into ``vgg19().features`` of named layers, in the order given (strictly increasing)."""
    names = vgg19_layer_names()
    unknown = [n for n in layers if n not in names]
    if unknown:
        raise ConfigError(f"unknown VGG19 layer(s) {unknown} in loss.vgg_layers: use names like relu1_2, "
                          f"relu3_3, relu5_1 (conv/relu<block>_<i>, pool<block>)")
    idx = [names.index(n) for n in layers]
    if not layers or any(b <= a for a, b in zip(idx, idx[1:], strict=False)):
        raise ConfigError(f"loss.vgg_layers must list VGG19 layers from shallow to deep, got {list(layers)}")
    return idx


def hub_cache_path() -> Path:
    """Where torchvision keeps the ``IMAGENET1K_V1`` weights once downloaded."""
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(WEIGHTS.url)


def find_vgg19_weights(path: str | os.PathLike | None = None) -> Path:
    """``path`` when given, else the torch hub cache; a one-line :class:`ConfigError` when absent."""
    if path:
        p = Path(path).expanduser()
        if not p.is_file():
            raise ConfigError(f"loss.vgg_weights={path} does not exist: point it at torchvision's VGG19 "
                              f"IMAGENET1K_V1 state dict ({hub_cache_path().name})")
        return p
    p = hub_cache_path()
    if not p.is_file():
        raise ConfigError(
            f"the VGG perceptual loss needs torchvision's VGG19 IMAGENET1K_V1 weights, not found in the torch hub "
            f"cache ({p}): fetch them once with python -c \"import torchvision; "
            f"torchvision.models.vgg19(weights='IMAGENET1K_V1')\" or set loss.vgg_weights=PATH to a copy of "
            f"{p.name} (or drop +vgg from loss.subspec)"
        )
    return p


def load_vgg19_features(path: Path, last_index: int) -> nn.Sequential:
    """VGG19 ``features[: last_index + 1]`` with weights from a torchvision state dict (``features.N.*`` keys,
    as the released file; a bare ``features`` state dict also loads), frozen, in eval mode, on the CPU."""
    # make_layers builds only the convolutional trunk: vgg19() would also initialise the 102M-parameter
    # classifier that is never used here.
    net = make_layers(VGG19_CFG)[: last_index + 1]
    for m in net:
        if isinstance(m, nn.ReLU):
            m.inplace = False  # the outputs of cut ReLUs are kept, the next layer must not overwrite them
    state = load_data(path, "weights file", f"use {hub_cache_path().name} from torchvision")
    feats = {k.removeprefix("features."): v for k, v in state.items() if not k.startswith("classifier.")}
    want = net.state_dict()
    missing = [k for k in want if k not in feats]
    if missing:
        raise ConfigError(f"{path} is not a torchvision VGG19 state dict (no {missing[0]!r}): use "
                          f"{hub_cache_path().name} from torchvision")
    net.load_state_dict({k: feats[k] for k in want})
    return net.requires_grad_(False).eval()


class VGGPerceptualLoss:
    """``sum_k w_k * mean|phi_k(fake) - phi_k(real)|`` over VGG19 layers ``phi_k``.

    Args:
        layers: layer names, shallow to deep (default ``relu1_2, relu2_2, relu3_3``; pix2pixHD uses
            :data:`PIX2PIXHD_LAYERS` with :data:`PIX2PIXHD_WEIGHTS`).
        layer_weights: one weight per layer (default all 1).
        weights: path of the VGG19 state dict; ``None``: the torch hub cache.

    Called with ``fake``, ``real``: ``(B, 3, H, W)`` RGB in [-1, 1]; returns a 0-dim float32 tensor. Gradients
    flow to ``fake`` only; the target's features are computed without a graph.
    """

    def __init__(self, layers: Sequence[str] = DEFAULT_LAYERS, layer_weights: Sequence[float] | None = None,
                 weights: str | os.PathLike | None = None):
        self.layers = tuple(layers)
        self.indices = layer_indices(self.layers)
        self.layer_weights = tuple(float(w) for w in (layer_weights if layer_weights is not None else [1.0] * len(layers)))
        if len(self.layer_weights) != len(self.layers):
            raise ConfigError(f"loss.vgg_layer_weights has {len(self.layer_weights)} values for "
                              f"{len(self.layers)} loss.vgg_layers: give one weight per layer")
        self.path = find_vgg19_weights(weights)  # fail at build time, not at the first step
        self._slices: list[nn.Sequential] | None = None
        self._device: torch.device | None = None
        self._scale: Tensor | None = None
        self._shift: Tensor | None = None

    def _prepare(self, device: torch.device) -> list[nn.Sequential]:
        if self._slices is None:
            net = load_vgg19_features(self.path, self.indices[-1])
            bounds = [0] + [i + 1 for i in self.indices]
            self._slices = [net[a:b].eval() for a, b in zip(bounds, bounds[1:], strict=False)]
            # [-1, 1] -> [0, 1] -> ImageNet statistics, as one affine map: x * scale + shift.
            mean = torch.tensor(WEIGHTS.transforms().mean).view(1, 3, 1, 1)
            std = torch.tensor(WEIGHTS.transforms().std).view(1, 3, 1, 1)
            self._scale, self._shift = 0.5 / std, (0.5 - mean) / std
        if self._device != device:
            fmt = torch.channels_last if device.type == "cuda" else torch.contiguous_format
            for s in self._slices:
                s.to(device=device, memory_format=fmt)
            self._scale, self._shift = self._scale.to(device), self._shift.to(device)
            self._device = device
        return self._slices

    def features(self, x: Tensor) -> list[Tensor]:
        """The chosen layers' activations of ``x`` (RGB in [-1, 1]), shallow to deep."""
        if x.shape[1] != 3:
            raise ConfigError(f"the VGG perceptual loss needs RGB images (3 channels), got {x.shape[1]}: "
                              "drop +vgg from loss.subspec for latents")
        slices = self._prepare(x.device)
        h = x * self._scale + self._shift
        out = []
        for s in slices:
            h = s(h)
            out.append(h)
        return out

    def __call__(self, fake: Tensor, real: Tensor) -> Tensor:
        feats_fake = self.features(fake)
        with torch.no_grad():
            feats_real = self.features(real)
        total = fake.new_zeros((), dtype=wide_dtype(fake.dtype))
        for w, a, b in zip(self.layer_weights, feats_fake, feats_real, strict=True):
            total = total + w * (float32_or_wider(a) - float32_or_wider(b)).abs().mean()
        return total

"""The face-alignment network (FAN) whose landmark heatmaps drive StarGAN v2's high-pass filter on CelebA-HQ
(``w_hpf > 0``; Choi et al., 2020, Sec. 4 and appendix).

Architecture and mask post-processing follow the official ``core/wing.py`` of clovaai/stargan-v2 (itself from
face-alignment by A. Bulat and AdaptiveWingLoss by X. Wang): a CoordConv stem, three bottleneck blocks, one
4-level hourglass with CoordConv, and 98 landmark heatmaps (+1 boundary channel) at 64x64 for a 256x256 face.
Module names match the official ones, so its pretrained ``wing.ckpt`` loads as is (:func:`load_fan`).
:meth:`FAN.masks` gives the two masks of :meth:`get_heatmap` with ``b_preprocess=True``: ``(B, 1, 256, 256)``
each, in [0, 1] (the whole face; the face without its outline, mouth and eyebrows).

The weights are read from a local file only: lit_gans never downloads them.
"""

from __future__ import annotations

import os

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lit_gans.errors import ConfigError, LitGansError
from lit_gans.utils.safe_load import load_data

FAN_SIZE = 256  # the FAN works on 256x256 faces (its heatmaps are 64x64)
# Landmark index ranges of the 98-point WFLW layout: (start, end).
CHIN, EYEBROWS, EYEBROW_EDGES, NOSE = (8, 25), (33, 51), (33, 46), (51, 55)
NOSTRILS, EYES, LIP_EDGES, LIP_UPPER, LIP_LOWER, LIP_INNER = (55, 60), (60, 76), (76, 82), (77, 82), (83, 88), (88, 96)


class AddCoords(nn.Module):
    """Appends x and y coordinate channels in [-1, 1] (and their radius with ``with_r``; with ``with_boundary``
    and a heatmap, the coordinates on the heatmap's boundary channel)."""

    def __init__(self, height: int, width: int, with_r: bool, with_boundary: bool):
        super().__init__()
        self.with_r, self.with_boundary = with_r, with_boundary
        x = torch.arange(height).unsqueeze(1).expand(height, width).float() / (height - 1) * 2 - 1
        y = torch.arange(width).unsqueeze(0).expand(height, width).float() / (width - 1) * 2 - 1
        coords = torch.stack([x, y])
        if with_r:
            rr = torch.sqrt(x**2 + y**2)
            coords = torch.cat([coords, (rr / rr.max()).unsqueeze(0)])
        self.register_buffer("coords", coords.unsqueeze(0), persistent=False)
        self.register_buffer("x_coords", x, persistent=False)
        self.register_buffer("y_coords", y, persistent=False)

    def forward(self, x: Tensor, heatmap: Tensor | None = None) -> Tensor:
        coords = self.coords.expand(x.shape[0], -1, -1, -1)
        if self.with_boundary and heatmap is not None:
            boundary = torch.clamp(heatmap[:, -1:], 0.0, 1.0)
            zero = torch.zeros_like(self.x_coords)
            coords = torch.cat([coords, torch.where(boundary > 0.05, self.x_coords, zero),
                                torch.where(boundary > 0.05, self.y_coords, zero)], dim=1)
        return torch.cat([x, coords.to(x.dtype)], dim=1)


class CoordConv(nn.Module):
    """A convolution of the input with its coordinate channels; also returns the last two channels it saw."""

    def __init__(self, height: int, width: int, with_r: bool, with_boundary: bool, in_channels: int,
                 first_one: bool = False, **conv: int):
        super().__init__()
        self.addcoords = AddCoords(height, width, with_r, with_boundary)
        in_channels += 2 + int(with_r) + (2 if with_boundary and not first_one else 0)
        self.conv = nn.Conv2d(in_channels=in_channels, **conv)

    def forward(self, x: Tensor, heatmap: Tensor | None = None) -> tuple[Tensor, Tensor]:
        ret = self.addcoords(x, heatmap)
        return self.conv(ret), ret[:, -2:]


class ConvBlock(nn.Module):
    """Bulat & Tzimiropoulos' hierarchical bottleneck: three 3x3 convolutions of widths out/2, out/4, out/4,
    concatenated, plus the (projected) input."""

    def __init__(self, in_planes: int, out_planes: int):
        super().__init__()
        half, quarter = out_planes // 2, out_planes // 4
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, half, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(half)
        self.conv2 = nn.Conv2d(half, quarter, 3, 1, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(quarter)
        self.conv3 = nn.Conv2d(quarter, quarter, 3, 1, 1, bias=False)
        self.downsample = None
        if in_planes != out_planes:
            self.downsample = nn.Sequential(nn.BatchNorm2d(in_planes), nn.ReLU(True),
                                            nn.Conv2d(in_planes, out_planes, 1, 1, bias=False))

    def forward(self, x: Tensor) -> Tensor:
        out1 = self.conv1(F.relu(self.bn1(x)))
        out2 = self.conv2(F.relu(self.bn2(out1)))
        out3 = self.conv3(F.relu(self.bn3(out2)))
        residual = x if self.downsample is None else self.downsample(x)
        return torch.cat([out1, out2, out3], 1) + residual


class HourGlass(nn.Module):
    """A ``depth``-level hourglass of 256-channel ConvBlocks after a CoordConv."""

    def __init__(self, depth: int, first_one: bool = False):
        super().__init__()
        self.depth = depth
        self.coordconv = CoordConv(64, 64, True, True, 256, first_one, out_channels=256, kernel_size=1, stride=1,
                                   padding=0)
        for level in range(depth, 0, -1):
            self.add_module(f"b1_{level}", ConvBlock(256, 256))
            self.add_module(f"b2_{level}", ConvBlock(256, 256))
            self.add_module(f"b3_{level}", ConvBlock(256, 256))
        self.add_module("b2_plus_1", ConvBlock(256, 256))

    def _level(self, level: int, x: Tensor) -> Tensor:
        up1 = self._modules[f"b1_{level}"](x)
        low = self._modules[f"b2_{level}"](F.avg_pool2d(x, 2, stride=2))
        low = self._level(level - 1, low) if level > 1 else self._modules["b2_plus_1"](low)
        low = self._modules[f"b3_{level}"](low)
        return up1 + F.interpolate(low, scale_factor=2, mode="nearest")

    def forward(self, x: Tensor, heatmap: Tensor | None) -> tuple[Tensor, Tensor]:
        x, last_channel = self.coordconv(x, heatmap)
        return self._level(self.depth, x), last_channel


class FAN(nn.Module):
    """``(B, 3, 256, 256)`` faces in [0, 1] -> ``(B, num_landmarks + 1, 64, 64)`` heatmaps (the last channel is
    the boundary). Stays in eval mode: it is a fixed, pretrained feature extractor (its batch norms must use
    their running statistics even while the model around it trains)."""

    def __init__(self, num_landmarks: int = 98):
        super().__init__()
        self.conv1 = CoordConv(256, 256, True, False, in_channels=3, out_channels=64, kernel_size=7, stride=2,
                               padding=3)
        self.bn1 = nn.BatchNorm2d(64)
        self.conv2 = ConvBlock(64, 128)
        self.conv3 = ConvBlock(128, 128)
        self.conv4 = ConvBlock(128, 256)
        self.add_module("m0", HourGlass(4, first_one=True))
        self.add_module("top_m_0", ConvBlock(256, 256))
        self.add_module("conv_last0", nn.Conv2d(256, 256, 1, 1, 0))
        self.add_module("bn_end0", nn.BatchNorm2d(256))
        self.add_module("l0", nn.Conv2d(256, num_landmarks + 1, 1, 1, 0))
        self.requires_grad_(False)
        super().train(False)

    def train(self, mode: bool = True) -> FAN:
        return super().train(False)

    def forward(self, x: Tensor) -> Tensor:
        x, _ = self.conv1(x)
        x = F.avg_pool2d(self.conv2(F.relu(self.bn1(x))), 2, stride=2)
        x = self.conv4(self.conv3(x))
        ll, _ = self._modules["m0"](x, None)
        ll = self._modules["top_m_0"](ll)
        ll = F.relu(self._modules["bn_end0"](self._modules["conv_last0"](ll)))
        return self._modules["l0"](ll)

    @torch.no_grad()
    def masks(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Faces ``(B, 3, H, W)`` in [-1, 1] -> the two high-pass masks, ``(B, 1, 256, 256)`` each, in [0, 1]."""
        x = F.interpolate(x.float(), size=FAN_SIZE, mode="bilinear")
        heatmaps = self(x * 0.5 + 0.5)[:, :-1]
        heatmaps = F.interpolate(heatmaps, scale_factor=FAN_SIZE // heatmaps.shape[2], mode="bilinear",
                                 align_corners=True)
        return face_masks(heatmaps)


def _shift(x: Tensor, n: int) -> Tensor:
    """Roll the rows of ``(B, C, H, W)`` up by ``n`` (down for negative ``n``), wrapping around."""
    return torch.roll(x, shifts=-n, dims=2)


def face_masks(heatmaps: Tensor) -> tuple[Tensor, Tensor]:
    """The official ``preprocess``: 98 landmark heatmaps ``(B, 98, H, W)`` -> (whole-face mask, mask without
    the face outline, mouth and eyebrows), ``(B, 1, H, W)`` each, clamped to [0, 1]."""
    x = torch.where(heatmaps < 0.1, torch.zeros_like(heatmaps), heatmaps)
    flat = x.reshape(x.shape[0] * x.shape[1], -1)
    lo, hi = flat.min(dim=1, keepdim=True).values, flat.max(dim=1, keepdim=True).values
    x = ((flat - lo) / (hi - lo + 1e-6)).reshape(x.shape).clone()
    sw = x.shape[2] // 256
    for (start, end), shift, power in ((CHIN, 0, 3), (EYEBROWS, -7 * sw, 2), (NOSTRILS, 8 * sw, 4),
                                       (LIP_UPPER, -8 * sw, 4), (LIP_LOWER, 8 * sw, 4), (LIP_INNER, -2 * sw, 3)):
        x[:, start:end] = _shift(x[:, start:end], shift) ** power
    zero_out = [*range(0, CHIN[0]), *range(CHIN[1], 33), EYEBROW_EDGES[0], EYEBROW_EDGES[1], LIP_EDGES[0],
                LIP_EDGES[1]]
    x[:, zero_out] = 0
    start, end = NOSE
    x[:, start + 1:end] = _shift(x[:, start + 1:end], 4 * sw)
    start, end = EYES
    x[:, start:end] = _shift(x[:, start:end], -8) ** 3 + _shift(x[:, start:end], -24)
    x2 = x.clone()
    x2[:, CHIN[0]:CHIN[1]] = 0
    x2[:, LIP_EDGES[0]:LIP_INNER[1]] = 0
    x2[:, EYEBROWS[0]:EYEBROWS[1]] = 0
    mask, mask2 = x.sum(dim=1, keepdim=True), x2.sum(dim=1, keepdim=True)
    # The official code zeroes NaNs of the first mask only (its second assignment reads the first mask after
    # it was cleaned); kept as is.
    return torch.nan_to_num(mask, nan=0.0).clamp(0, 1), mask2.clamp(0, 1)


def load_fan(path: str | os.PathLike | None) -> FAN:
    """A FAN with the weights of a local ``wing.ckpt`` (a dict with ``state_dict``, as the official file, or a
    plain state dict). One-line :class:`ConfigError` when the file is missing or does not fit."""
    if not path:
        raise ConfigError("model.w_hpf > 0 needs the face-alignment network's weights: pass model.fan_path=FILE "
                          "(wing.ckpt of clovaai/stargan-v2: `bash download.sh wing` there); lit_gans never "
                          "downloads them")
    path = os.path.expanduser(str(path))
    if not os.path.isfile(path):
        raise ConfigError(f"model.fan_path={path} does not exist: download wing.ckpt with clovaai/stargan-v2's "
                          "`bash download.sh wing` and pass its path; lit_gans never downloads it")
    try:
        ckpt = load_data(path, "weights file", "pass wing.ckpt of clovaai/stargan-v2")
    except LitGansError:
        raise
    except Exception as err:  # noqa: BLE001 - any other unreadable file
        raise ConfigError(f"model.fan_path={path} is not a readable checkpoint ({type(err).__name__}): pass "
                          "wing.ckpt of clovaai/stargan-v2") from None
    state = ckpt.get("state_dict", ckpt) if isinstance(ckpt, dict) else None
    fan = FAN()
    # Batch-norm step counters are not weights (files written by older PyTorch versions lack them).
    own = {k: v for k, v in fan.state_dict().items() if not k.endswith("num_batches_tracked")}
    if not isinstance(state, dict) or not all(k in state and state[k].shape == v.shape for k, v in own.items()):
        raise ConfigError(f"model.fan_path={path} does not hold the FAN's weights (98 landmarks, one hourglass): "
                          "pass wing.ckpt of clovaai/stargan-v2")
    fan.load_state_dict({k: state[k] for k in own}, strict=False)
    return fan

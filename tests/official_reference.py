"""Transcriptions of the published definitions that tests/test_official_fidelity.py compares lit_gans with, kept
as close to the official files as possible (names, order, arithmetic) so that a difference is lit_gans'.

- CUT (taesungp/contrastive-unpaired-translation, models/networks.py): ``get_filter``, ``Downsample``,
  ``NLayerDiscriminator`` (``no_antialias=False``), ``init_weights``.
- StarGAN v2 (clovaai/stargan-v2): core/solver.py ``r1_reg``; core/model.py ``HighPass`` and the masked skip
  connections of ``Generator.forward`` (written over lit_gans' blocks); core/wing.py ``FAN`` (its modules),
  ``get_heatmap`` and ``preprocess``.
"""

from collections import namedtuple
from copy import deepcopy
from functools import partial

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn import init


# ---------------------------------------------------------------------------------------------- CUT
def get_filter(filt_size=3):
    a = {1: [1.0], 2: [1.0, 1.0], 3: [1.0, 2.0, 1.0], 4: [1.0, 3.0, 3.0, 1.0]}[filt_size]
    a = np.array(a)
    filt = torch.Tensor(a[:, None] * a[None, :])
    return filt / torch.sum(filt)


class Downsample(nn.Module):
    def __init__(self, channels, pad_type="reflect", filt_size=3, stride=2, pad_off=0):
        super().__init__()
        self.filt_size = filt_size
        self.pad_sizes = [int(1.0 * (filt_size - 1) / 2), int(np.ceil(1.0 * (filt_size - 1) / 2)),
                          int(1.0 * (filt_size - 1) / 2), int(np.ceil(1.0 * (filt_size - 1) / 2))]
        self.pad_sizes = [p + pad_off for p in self.pad_sizes]
        self.stride = stride
        self.channels = channels
        filt = get_filter(filt_size=self.filt_size)
        self.register_buffer("filt", filt[None, None, :, :].repeat((self.channels, 1, 1, 1)))
        self.pad = nn.ReflectionPad2d(self.pad_sizes)

    def forward(self, inp):
        return F.conv2d(self.pad(inp), self.filt, stride=self.stride, groups=inp.shape[1])


class NLayerDiscriminator(nn.Module):
    def __init__(self, input_nc, ndf=64, n_layers=3, norm_layer=nn.BatchNorm2d, no_antialias=False):
        super().__init__()
        if type(norm_layer) == partial:  # noqa: E721 - as published
            use_bias = norm_layer.func == nn.InstanceNorm2d
        else:
            use_bias = norm_layer == nn.InstanceNorm2d
        kw, padw = 4, 1
        if no_antialias:
            sequence = [nn.Conv2d(input_nc, ndf, kernel_size=kw, stride=2, padding=padw), nn.LeakyReLU(0.2, True)]
        else:
            sequence = [nn.Conv2d(input_nc, ndf, kernel_size=kw, stride=1, padding=padw), nn.LeakyReLU(0.2, True),
                        Downsample(ndf)]
        nf_mult = 1
        for n in range(1, n_layers):
            nf_mult_prev = nf_mult
            nf_mult = min(2**n, 8)
            if no_antialias:
                sequence += [nn.Conv2d(ndf * nf_mult_prev, ndf * nf_mult, kernel_size=kw, stride=2, padding=padw,
                                       bias=use_bias), norm_layer(ndf * nf_mult), nn.LeakyReLU(0.2, True)]
            else:
                sequence += [nn.Conv2d(ndf * nf_mult_prev, ndf * nf_mult, kernel_size=kw, stride=1, padding=padw,
                                       bias=use_bias), norm_layer(ndf * nf_mult), nn.LeakyReLU(0.2, True),
                             Downsample(ndf * nf_mult)]
        nf_mult_prev = nf_mult
        nf_mult = min(2**n_layers, 8)
        sequence += [nn.Conv2d(ndf * nf_mult_prev, ndf * nf_mult, kernel_size=kw, stride=1, padding=padw, bias=use_bias),
                     norm_layer(ndf * nf_mult), nn.LeakyReLU(0.2, True)]
        sequence += [nn.Conv2d(ndf * nf_mult, 1, kernel_size=kw, stride=1, padding=padw)]
        self.model = nn.Sequential(*sequence)

    def forward(self, input):
        return self.model(input)


def instance_norm():
    return partial(nn.InstanceNorm2d, affine=False, track_running_stats=False)


def init_weights(net, init_type="normal", init_gain=0.02):
    def init_func(m):
        classname = m.__class__.__name__
        if hasattr(m, "weight") and (classname.find("Conv") != -1 or classname.find("Linear") != -1):
            if init_type == "normal":
                init.normal_(m.weight.data, 0.0, init_gain)
            elif init_type == "xavier":
                init.xavier_normal_(m.weight.data, gain=init_gain)
            if hasattr(m, "bias") and m.bias is not None:
                init.constant_(m.bias.data, 0.0)
        elif classname.find("BatchNorm2d") != -1:
            init.normal_(m.weight.data, 1.0, init_gain)
            init.constant_(m.bias.data, 0.0)

    net.apply(init_func)


# ---------------------------------------------------------------------------------------------- StarGAN v2
def r1_reg(d_out, x_in):
    batch_size = x_in.size(0)
    grad_dout = torch.autograd.grad(outputs=d_out.sum(), inputs=x_in, create_graph=True, retain_graph=True,
                                    only_inputs=True)[0]
    grad_dout2 = grad_dout.pow(2)
    assert grad_dout2.size() == x_in.size()
    return 0.5 * grad_dout2.view(batch_size, -1).sum(1).mean(0)


class HighPass(nn.Module):
    def __init__(self, w_hpf):
        super().__init__()
        self.register_buffer("filter", torch.tensor([[-1, -1, -1], [-1, 8.0, -1], [-1, -1, -1]]) / w_hpf)

    def forward(self, x):
        filter = self.filter.unsqueeze(0).unsqueeze(1).repeat(x.size(1), 1, 1, 1)
        return F.conv2d(x, filter, padding=1, groups=x.size(1))


def generator_forward(g, hpf, x, s, masks=None):
    """core/model.py Generator.forward over a generator's blocks (from_rgb, encode, decode, to_rgb), 256 px."""
    x = g.from_rgb(x)
    cache = {}
    for block in g.encode:
        if (masks is not None) and (x.size(2) in [32, 64, 128]):
            cache[x.size(2)] = x
        x = block(x)
    for block in g.decode:
        x = block(x, s)
        if (masks is not None) and (x.size(2) in [32, 64, 128]):
            mask = masks[0] if x.size(2) in [32] else masks[1]
            mask = F.interpolate(mask, size=x.size(2), mode="bilinear")
            x = x + hpf(mask * cache[x.size(2)])
    return g.to_rgb(x)


class AddCoordsTh(nn.Module):
    def __init__(self, height=64, width=64, with_r=False, with_boundary=False):
        super().__init__()
        self.with_r, self.with_boundary = with_r, with_boundary
        with torch.no_grad():
            x_coords = torch.arange(height).unsqueeze(1).expand(height, width).float()
            y_coords = torch.arange(width).unsqueeze(0).expand(height, width).float()
            x_coords = (x_coords / (height - 1)) * 2 - 1
            y_coords = (y_coords / (width - 1)) * 2 - 1
            coords = torch.stack([x_coords, y_coords], dim=0)
            if self.with_r:
                rr = torch.sqrt(torch.pow(x_coords, 2) + torch.pow(y_coords, 2))
                rr = (rr / torch.max(rr)).unsqueeze(0)
                coords = torch.cat([coords, rr], dim=0)
            self.coords = coords.unsqueeze(0)
            self.x_coords, self.y_coords = x_coords, y_coords

    def forward(self, x, heatmap=None):
        coords = self.coords.repeat(x.size(0), 1, 1, 1)
        if self.with_boundary and heatmap is not None:
            boundary_channel = torch.clamp(heatmap[:, -1:, :, :], 0.0, 1.0)
            zero_tensor = torch.zeros_like(self.x_coords)
            xx = torch.where(boundary_channel > 0.05, self.x_coords, zero_tensor)
            yy = torch.where(boundary_channel > 0.05, self.y_coords, zero_tensor)
            coords = torch.cat([coords, xx, yy], dim=1)
        return torch.cat([x, coords], dim=1)


class CoordConvTh(nn.Module):
    def __init__(self, height, width, with_r, with_boundary, in_channels, first_one=False, *args, **kwargs):
        super().__init__()
        self.addcoords = AddCoordsTh(height, width, with_r, with_boundary)
        in_channels += 2
        if with_r:
            in_channels += 1
        if with_boundary and not first_one:
            in_channels += 2
        self.conv = nn.Conv2d(in_channels, *args, **kwargs)

    def forward(self, input_tensor, heatmap=None):
        ret = self.addcoords(input_tensor, heatmap)
        last_channel = ret[:, -2:, :, :]
        return self.conv(ret), last_channel


class ConvBlock(nn.Module):
    def __init__(self, in_planes, out_planes):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        conv3x3 = partial(nn.Conv2d, kernel_size=3, stride=1, padding=1, bias=False, dilation=1)
        self.conv1 = conv3x3(in_planes, int(out_planes / 2))
        self.bn2 = nn.BatchNorm2d(int(out_planes / 2))
        self.conv2 = conv3x3(int(out_planes / 2), int(out_planes / 4))
        self.bn3 = nn.BatchNorm2d(int(out_planes / 4))
        self.conv3 = conv3x3(int(out_planes / 4), int(out_planes / 4))
        self.downsample = None
        if in_planes != out_planes:
            self.downsample = nn.Sequential(nn.BatchNorm2d(in_planes), nn.ReLU(True),
                                            nn.Conv2d(in_planes, out_planes, 1, 1, bias=False))

    def forward(self, x):
        residual = x
        out1 = self.conv1(F.relu(self.bn1(x), True))
        out2 = self.conv2(F.relu(self.bn2(out1), True))
        out3 = self.conv3(F.relu(self.bn3(out2), True))
        out3 = torch.cat((out1, out2, out3), 1)
        if self.downsample is not None:
            residual = self.downsample(residual)
        out3 += residual
        return out3


class HourGlass(nn.Module):
    def __init__(self, num_modules, depth, num_features, first_one=False):
        super().__init__()
        self.depth = depth
        self.coordconv = CoordConvTh(64, 64, True, True, 256, first_one, out_channels=256, kernel_size=1, stride=1,
                                     padding=0)
        self._generate_network(self.depth)

    def _generate_network(self, level):
        self.add_module("b1_" + str(level), ConvBlock(256, 256))
        self.add_module("b2_" + str(level), ConvBlock(256, 256))
        if level > 1:
            self._generate_network(level - 1)
        else:
            self.add_module("b2_plus_" + str(level), ConvBlock(256, 256))
        self.add_module("b3_" + str(level), ConvBlock(256, 256))

    def _forward(self, level, inp):
        up1 = self._modules["b1_" + str(level)](inp)
        low1 = self._modules["b2_" + str(level)](F.avg_pool2d(inp, 2, stride=2))
        if level > 1:
            low2 = self._forward(level - 1, low1)
        else:
            low2 = self._modules["b2_plus_" + str(level)](low1)
        low3 = self._modules["b3_" + str(level)](low2)
        return up1 + F.interpolate(low3, scale_factor=2, mode="nearest")

    def forward(self, x, heatmap):
        x, last_channel = self.coordconv(x, heatmap)
        return self._forward(self.depth, x), last_channel


class FAN(nn.Module):
    def __init__(self, num_modules=1, end_relu=False, num_landmarks=98):
        super().__init__()
        self.end_relu = end_relu
        self.conv1 = CoordConvTh(256, 256, True, False, in_channels=3, out_channels=64, kernel_size=7, stride=2,
                                 padding=3)
        self.bn1 = nn.BatchNorm2d(64)
        self.conv2 = ConvBlock(64, 128)
        self.conv3 = ConvBlock(128, 128)
        self.conv4 = ConvBlock(128, 256)
        self.add_module("m0", HourGlass(1, 4, 256, first_one=True))
        self.add_module("top_m_0", ConvBlock(256, 256))
        self.add_module("conv_last0", nn.Conv2d(256, 256, 1, 1, 0))
        self.add_module("bn_end0", nn.BatchNorm2d(256))
        self.add_module("l0", nn.Conv2d(256, num_landmarks + 1, 1, 1, 0))

    def forward(self, x):
        x, _ = self.conv1(x)
        x = F.relu(self.bn1(x), True)
        x = F.avg_pool2d(self.conv2(x), 2, stride=2)
        x = self.conv3(x)
        x = self.conv4(x)
        ll, boundary_channel = self._modules["m0"](x, None)
        ll = self._modules["top_m_0"](ll)
        ll = F.relu(self._modules["bn_end0"](self._modules["conv_last0"](ll)), True)
        return [self._modules["l0"](ll)], [boundary_channel]

    @torch.no_grad()
    def get_heatmap(self, x, b_preprocess=True):
        x = F.interpolate(x, size=256, mode="bilinear")
        x_01 = x * 0.5 + 0.5
        outputs, _ = self(x_01)
        heatmaps = outputs[-1][:, :-1, :, :]
        scale_factor = x.size(2) // heatmaps.size(2)
        if b_preprocess:
            heatmaps = F.interpolate(heatmaps, scale_factor=scale_factor, mode="bilinear", align_corners=True)
            heatmaps = preprocess(heatmaps)
        return heatmaps


def normalize(x, eps=1e-6):
    x = x.contiguous()
    N, C, H, W = x.size()
    x_ = x.view(N * C, -1)
    max_val = torch.max(x_, dim=1, keepdim=True)[0]
    min_val = torch.min(x_, dim=1, keepdim=True)[0]
    x_ = (x_ - min_val) / (max_val - min_val + eps)
    return x_.view(N, C, H, W)


def truncate(x, thres=0.1):
    return torch.where(x < thres, torch.zeros_like(x), x)


def resize(x, p=2):
    return x**p


def shift(x, N):
    up = N >= 0
    N = abs(N)
    _, _, H, W = x.size()
    if up:
        head = torch.arange(H - N) + N
        tail = torch.arange(N)
    else:
        head = torch.arange(N) + (H - N)
        tail = torch.arange(H - N)
    perm = torch.cat([head, tail]).to(x.device)
    return x[:, :, perm, :]


IDXPAIR = namedtuple("IDXPAIR", "start end")
index_map = {"chin": IDXPAIR(0 + 8, 33 - 8), "eyebrows": IDXPAIR(33, 51), "eyebrowsedges": IDXPAIR(33, 46),
             "nose": IDXPAIR(51, 55), "nostrils": IDXPAIR(55, 60), "eyes": IDXPAIR(60, 76),
             "lipedges": IDXPAIR(76, 82), "lipupper": IDXPAIR(77, 82), "liplower": IDXPAIR(83, 88),
             "lipinner": IDXPAIR(88, 96)}
OPPAIR = namedtuple("OPPAIR", "shift resize")


def preprocess(x):
    N, C, H, W = x.size()
    x = truncate(x)
    x = normalize(x)
    sw = H // 256
    operations = {"chin": OPPAIR(0, 3), "eyebrows": OPPAIR(-7 * sw, 2), "nostrils": OPPAIR(8 * sw, 4),
                  "lipupper": OPPAIR(-8 * sw, 4), "liplower": OPPAIR(8 * sw, 4), "lipinner": OPPAIR(-2 * sw, 3)}
    for part, ops in operations.items():
        start, end = index_map[part]
        x[:, start:end] = resize(shift(x[:, start:end], ops.shift), ops.resize)
    zero_out = torch.cat([torch.arange(0, index_map["chin"].start), torch.arange(index_map["chin"].end, 33),
                          torch.LongTensor([index_map["eyebrowsedges"].start, index_map["eyebrowsedges"].end,
                                            index_map["lipedges"].start, index_map["lipedges"].end])])
    x[:, zero_out] = 0
    start, end = index_map["nose"]
    x[:, start + 1:end] = shift(x[:, start + 1:end], 4 * sw)
    x[:, start:end] = resize(x[:, start:end], 1)
    start, end = index_map["eyes"]
    x[:, start:end] = resize(x[:, start:end], 1)
    x[:, start:end] = resize(shift(x[:, start:end], -8), 3) + shift(x[:, start:end], -24)
    x2 = deepcopy(x)
    x2[:, index_map["chin"].start:index_map["chin"].end] = 0
    x2[:, index_map["lipedges"].start:index_map["lipinner"].end] = 0
    x2[:, index_map["eyebrows"].start:index_map["eyebrows"].end] = 0
    x = torch.sum(x, dim=1, keepdim=True)
    x2 = torch.sum(x2, dim=1, keepdim=True)
    x[x != x] = 0
    x2[x != x] = 0
    return x.clamp_(0, 1), x2.clamp_(0, 1)

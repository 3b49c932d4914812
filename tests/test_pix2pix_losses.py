"""pix2pix's extra losses against hand computation: pixel L1/L2 with maps, Sobel, Laplacian, VGG perceptual."""

import math

import pytest
import torch
import torch.nn.functional as F
from torchvision.models import vgg19
from torchvision.models.vgg import cfgs, make_layers

from lit_gans.errors import ConfigError
from lit_gans.losses import (
    VGGPerceptualLoss,
    laplacian,
    laplacian_loss,
    pixel_loss,
    sobel_loss,
    sobel_magnitude,
)
from lit_gans.losses.perceptual import PIX2PIXHD_LAYERS, hub_cache_path, layer_indices, vgg19_layer_names

# A vertical edge: gray image [[0,0,1],[0,0,1],[0,0,1]], put in the red channel x3 so that the channel
# mean (the grayscale) is that image.
EDGE = torch.tensor([[0.0, 0.0, 1.0]] * 3)


def edge_rgb() -> torch.Tensor:
    return torch.stack([3 * EDGE, torch.zeros(3, 3), torch.zeros(3, 3)])[None]  # (1, 3, 3, 3)


def test_sobel_magnitude_by_hand():
    mag = sobel_magnitude(edge_rgb())[0, 0]
    # Zero padding 1. Centre: gx = (1) + (2*1) + (1) = 4, gy = -1 + 1 = 0.
    assert mag[1, 1].item() == pytest.approx(math.sqrt(16 + 1e-6))
    # Top middle: rows (pad, row0, row1), cols 0..2: gx = 2*1 + 1*1 = 3; gy = 0 + 1*1 = 1.
    assert mag[0, 1].item() == pytest.approx(math.sqrt(10 + 1e-6))
    # Top right: cols 1..3 (3 = pad): gx = 0, gy = 2*1 = 2.
    assert mag[0, 2].item() == pytest.approx(math.sqrt(4 + 1e-6))
    # Top left sees only zeros: the epsilon alone.
    assert mag[0, 0].item() == pytest.approx(1e-3)
    # Every pixel against an independent loop over the zero-padded grayscale.
    kx = [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]]
    ky = [[-1, -2, -1], [0, 0, 0], [1, 2, 1]]
    pad = F.pad(EDGE, (1, 1, 1, 1))
    for i in range(3):
        for j in range(3):
            gx = sum(kx[a][b] * pad[i + a, j + b].item() for a in range(3) for b in range(3))
            gy = sum(ky[a][b] * pad[i + a, j + b].item() for a in range(3) for b in range(3))
            assert mag[i, j].item() == pytest.approx(math.sqrt(gx * gx + gy * gy + 1e-6)), (i, j)


def test_laplacian_by_hand():
    lap = laplacian(edge_rgb())[0, 0]
    # centre: up 0 + down 0 + left 0 + right 1 - 4*0 = 1; top right: down 1 - 4*1 = -3; middle right: 1+1-4 = -2
    # 1e-6: the grayscale weights 0.299 + 0.587 + 0.114 make white 1 only to float32 rounding
    assert torch.allclose(lap, torch.tensor([[0.0, 1.0, -3.0], [0.0, 1.0, -2.0], [0.0, 1.0, -3.0]]), atol=1e-6)


@pytest.mark.parametrize("metric", ["l1", "l2"])
def test_sobel_and_laplacian_losses_compare_fake_and_real(metric):
    real, fake = edge_rgb(), torch.zeros(1, 3, 3, 3)  # the fake's magnitude is 1e-3 everywhere, its Laplacian 0
    dist = (lambda d: d.abs()) if metric == "l1" else (lambda d: d.square())
    value, loss_map = sobel_loss(fake, real, metric=metric, return_map=True)
    want_map = dist(sobel_magnitude(real) - 1e-3)
    assert loss_map.shape == (1, 1, 3, 3) and torch.allclose(loss_map, want_map, atol=1e-6)
    assert value.item() == pytest.approx(want_map.mean().item(), rel=1e-6)
    assert sobel_loss(fake, real, metric=metric).item() == pytest.approx(value.item())
    lap_value, lap_map = laplacian_loss(fake, real, metric=metric, return_map=True)
    want = torch.tensor([[0.0, 1.0, -3.0], [0.0, 1.0, -2.0], [0.0, 1.0, -3.0]])
    assert torch.allclose(lap_map[0, 0], dist(want), atol=1e-5)
    assert lap_value.item() == pytest.approx(dist(want).mean().item())
    # Symmetric in its arguments, zero for identical images.
    assert laplacian_loss(real, fake, metric=metric).item() == pytest.approx(lap_value.item())
    assert sobel_loss(real, real).item() == 0.0


def test_pixel_losses_and_their_maps():
    torch.manual_seed(0)
    fake, real = torch.randn(2, 3, 4, 5), torch.randn(2, 3, 4, 5)
    l1, l1_map = pixel_loss(fake, real, "l1", return_map=True)
    assert l1.item() == pytest.approx(F.l1_loss(fake, real).item(), rel=1e-6)
    assert torch.allclose(l1_map, (fake - real).abs().mean(1, keepdim=True))
    assert pixel_loss(fake, real, "l2").item() == pytest.approx(F.mse_loss(fake, real).item(), rel=1e-6)
    with pytest.raises(ConfigError, match="l1 or l2"):
        pixel_loss(fake, real, "l3")


def test_structure_losses_are_float32_under_bf16_autocast_and_give_gradients():
    torch.manual_seed(0)
    real = torch.rand(2, 3, 8, 8) * 2 - 1
    fake = (torch.rand(2, 3, 8, 8) * 2 - 1).requires_grad_(True)
    want = sobel_loss(fake, real) + laplacian_loss(fake, real)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got_s, got_l = sobel_loss(fake.bfloat16(), real), laplacian_loss(fake, real)
    assert got_s.dtype == got_l.dtype == torch.float32
    assert (got_s + got_l).item() == pytest.approx(want.item(), rel=2e-2)
    (grad,) = torch.autograd.grad(got_s + got_l, fake)
    assert grad.shape == fake.shape and grad.abs().sum() > 0


# ---------------------------------------------------------------------------------------------- VGG


def save_random_vgg19(path) -> str:
    """A VGG19 state dict with torchvision's key names (``features.N.*``, plus a classifier entry the loss
    must ignore), randomly initialised. The trunk only: the real file's 102M-parameter classifier is never read."""
    torch.manual_seed(0)
    trunk = make_layers(cfgs["E"])
    state = {f"features.{k}": v for k, v in trunk.state_dict().items()}
    state["classifier.0.weight"] = torch.zeros(2, 2)
    torch.save(state, path)
    return str(path)


@pytest.fixture(scope="module")
def vgg_file(tmp_path_factory):
    return save_random_vgg19(tmp_path_factory.mktemp("vgg") / "vgg19-random.pth")


def test_layer_names_follow_torchvisions_vgg19_layout():
    with torch.device("meta"):  # the module layout without initialising 143M parameters
        features = vgg19(weights=None).features
    names = vgg19_layer_names()
    assert len(names) == len(features) == 37
    kinds = {"conv": torch.nn.Conv2d, "relu": torch.nn.ReLU, "pool": torch.nn.MaxPool2d}
    for name, module in zip(names, features, strict=True):
        assert isinstance(module, kinds[name[:4]]), name
    convs = [m for m in features if isinstance(m, torch.nn.Conv2d)]
    assert [m.out_channels for m in convs] == [64] * 2 + [128] * 2 + [256] * 4 + [512] * 8
    assert layer_indices(["relu1_2", "relu2_2", "relu3_3"]) == [3, 8, 15]
    assert layer_indices(PIX2PIXHD_LAYERS) == [1, 6, 11, 20, 29]  # pix2pixHD's slice ends
    with pytest.raises(ConfigError, match="unknown VGG19 layer"):
        layer_indices(["relu6_1"])
    with pytest.raises(ConfigError, match="shallow to deep"):
        layer_indices(["relu3_3", "relu1_2"])


def test_vgg_loss_against_hand_computation(vgg_file):
    torch.manual_seed(1)
    fake = (torch.rand(2, 3, 32, 32) * 2 - 1).requires_grad_(True)
    real = torch.rand(2, 3, 32, 32) * 2 - 1
    loss = VGGPerceptualLoss(["relu1_2", "relu2_2", "relu3_3"], [1.0, 0.5, 2.0], weights=vgg_file)
    got = loss(fake, real)
    # Reference: the full trunk with the same weights, activations at indices 3, 8, 15.
    ref = make_layers(cfgs["E"])
    ref.load_state_dict({k.removeprefix("features."): v for k, v in torch.load(vgg_file).items() if "features" in k})
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)

    def acts(x):
        h, out = ((x + 1) / 2 - mean) / std, []
        for i, m in enumerate(ref):
            h = m(h)
            if i in (3, 8, 15):
                out.append(h.clone())
            if i == 15:
                return out

    want = sum(w * (a - b).abs().mean() for w, a, b in zip([1.0, 0.5, 2.0], acts(fake), acts(real), strict=True))
    assert got.item() == pytest.approx(want.item(), rel=1e-5)
    (grad,) = torch.autograd.grad(got, fake)
    assert grad.abs().sum() > 0
    # Frozen, eval mode, on the input's device, never trained.
    params = [p for s in loss._slices for p in s.parameters()]
    assert params and not any(p.requires_grad for p in params)
    assert all(not s.training for s in loss._slices) and loss._device == fake.device
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = loss(fake, real)
    assert low.dtype == torch.float32 and low.item() == pytest.approx(got.item(), rel=5e-2)


def test_vgg_weights_from_the_hub_cache_or_a_clear_error(vgg_file, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    assert hub_cache_path() == tmp_path / "torch" / "hub" / "checkpoints" / "vgg19-dcbb9e9d.pth"
    with pytest.raises(ConfigError) as err:
        VGGPerceptualLoss()
    msg = str(err.value)
    assert "\n" not in msg and "vgg19(weights='IMAGENET1K_V1')" in msg and "loss.vgg_weights=PATH" in msg
    with pytest.raises(ConfigError, match="loss.vgg_weights=/nonexistent.pth does not exist"):
        VGGPerceptualLoss(weights="/nonexistent.pth")
    hub_cache_path().parent.mkdir(parents=True)
    hub_cache_path().symlink_to(vgg_file)
    found = VGGPerceptualLoss()
    assert found.path == hub_cache_path()
    x = torch.rand(1, 3, 16, 16)
    assert found(x, x).item() == 0.0


def test_vgg_layer_weights_must_match_layers_and_inputs_must_be_rgb(vgg_file):
    with pytest.raises(ConfigError, match="one weight per layer"):
        VGGPerceptualLoss(["relu1_1", "relu2_1"], [1.0], weights=vgg_file)
    with pytest.raises(ConfigError, match="needs RGB"):
        VGGPerceptualLoss(weights=vgg_file)(torch.zeros(1, 4, 8, 8), torch.zeros(1, 4, 8, 8))

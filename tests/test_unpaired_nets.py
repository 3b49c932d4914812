"""CycleGAN/CUT networks against the published architectures: parameter counts, shapes, CUT's feature
layers, the blur filters, the multi-scale discriminator, the projection heads and the f_s U-Net."""

import pytest
import torch

from lit_gans.nets.discriminators import build_discriminator
from lit_gans.nets.patch_projection import PatchProjection
from lit_gans.nets.patchgan import PatchDiscriminator
from lit_gans.nets.resnet import BlurDownsample, BlurUpsample, ResnetGenerator, default_n_blocks
from lit_gans.nets.segmenter import UNetSegmenter


def n_params(net):
    return sum(p.numel() for p in net.parameters())


@pytest.mark.parametrize("antialias", [False, True])
def test_resnet_9blocks_has_cyclegans_11_378_m_parameters(antialias):
    g = ResnetGenerator(3, 3, ngf=64, n_blocks=default_n_blocks(256), antialias=antialias)
    assert n_params(g) == 11_378_179  # CycleGAN prints "[Network G_A] Total number of parameters : 11.378 M"
    assert default_n_blocks(128) == 6
    # instance norm without affine parameters, normal(0, 0.02) weights, zero biases
    assert not any(isinstance(m, torch.nn.InstanceNorm2d) and m.affine for m in g.modules())
    w = g.model[1].weight
    assert abs(w.std().item() - 0.02) < 0.004 and g.model[1].bias.abs().max() == 0


def test_patchgan_70x70_has_2_765_m_parameters():
    assert n_params(PatchDiscriminator(3, 64, 3, "instance")) == 2_764_737
    d = build_discriminator("basic", 3)
    out = d(torch.randn(2, 3, 64, 64))
    assert len(out) == 1 and out[0].shape == (2, 1, 6, 6) and n_params(d) == 2_764_737


def test_multiscale_discriminator_sees_the_input_at_each_scale():
    d = build_discriminator("multiscale", 3, ndf=8, num_scales=3)
    assert n_params(d) == 3 * n_params(PatchDiscriminator(3, 8))
    x = torch.randn(1, 3, 128, 128)
    out = d(x)
    assert [o.shape[-1] for o in out] == [14, 6, 2]  # 128, 64, 32 px inputs
    half = torch.nn.functional.avg_pool2d(x, 3, 2, 1, count_include_pad=False)
    assert torch.allclose(out[1], d.scales[1](half))


@pytest.mark.parametrize("antialias", [False, True])
def test_generator_shapes_and_cut_feature_layers(antialias):
    g = ResnetGenerator(3, 3, ngf=8, n_blocks=6, antialias=antialias).eval()
    x = torch.randn(2, 3, 32, 32)
    feats = g.encode(x, (0, 4, 8, 12, 16))
    if antialias:  # CUT's default: conv outputs at full and half resolution, then residual blocks 1 and 5
        want = [(3, 38), (16, 32), (32, 16), (32, 8), (32, 8)]
    else:  # CUT --no_antialias: 4 conv at 1/2, 8 norm at 1/4, 12 block 3, 16 the first up-convolution
        want = [(3, 38), (16, 16), (32, 8), (32, 8), (16, 16)]
    assert [(f.shape[1], f.shape[-1]) for f in feats] == want
    out, feats2 = g.forward_with_features(x, (0, 4, 8, 12, 16))
    assert out.shape == x.shape and out.abs().max() <= 1  # tanh
    assert torch.equal(out, g(x)) and all(torch.equal(a, b) for a, b in zip(feats, feats2, strict=True))
    # features are the outputs of model[i]
    ref = x
    for layer in g.model[:17]:
        ref = layer(ref)
    assert torch.allclose(feats[-1], ref)
    with pytest.raises(ValueError, match="feature layers"):
        g.encode(x, (0, 99))


def test_latent_generator_has_no_tanh():
    g = ResnetGenerator(4, ngf=8, n_blocks=2, output_activation="none")
    assert isinstance(g.model[-1], torch.nn.Conv2d) and g.model[-1].out_channels == 4
    torch.nn.init.constant_(g.model[-1].bias, 5.0)
    assert g(torch.randn(1, 4, 16, 16)).min() > 1  # unbounded, unlike tanh


def test_blur_filters_keep_constants_and_halve_or_double_the_size():
    x = torch.full((1, 2, 8, 8), 3.0)
    down, up = BlurDownsample(2)(x), BlurUpsample(2)(x)
    assert down.shape == (1, 2, 4, 4) and torch.allclose(down, torch.full_like(down, 3.0))
    assert up.shape == (1, 2, 16, 16) and torch.allclose(up, torch.full_like(up, 3.0))
    assert BlurDownsample(1).filt[0, 0].tolist() == [[1 / 16, 2 / 16, 1 / 16], [2 / 16, 4 / 16, 2 / 16],
                                                     [1 / 16, 2 / 16, 1 / 16]]
    # a unit impulse spreads as the [1, 2, 1] kernel (reflect padding leaves an interior impulse alone)
    imp = torch.zeros(1, 1, 8, 8)
    imp[0, 0, 4, 4] = 16.0
    assert BlurDownsample(1)(imp)[0, 0, 2, 2] == 4.0


def test_projection_heads_sample_the_same_positions_and_normalise():
    feats = [torch.randn(2, 3, 5, 5), torch.randn(2, 7, 2, 2)]
    heads = PatchProjection.from_features(feats, dim=16)
    assert heads.in_channels == (3, 7)
    assert [tuple(m[0].weight.shape) for m in heads.mlps] == [(16, 3), (16, 7)]
    ids = heads.sample_ids(feats, num_patches=10)
    assert [len(i) for i in ids] == [10, 4] and len(set(ids[0].tolist())) == 10
    out = heads(feats, ids)
    assert [o.shape for o in out] == [(2, 10, 16), (2, 4, 16)]
    raw_norm = torch.stack([heads.mlps[0](feats[0][b].flatten(1)[:, ids[0]].T).norm(dim=-1) for b in range(2)])
    assert torch.allclose(out[0].norm(dim=-1), raw_norm / (raw_norm + 1e-7))  # unit norm but for CUT's epsilon
    # row p of sample b is the head applied to the feature vector at flat position ids[p] of sample b
    p = ids[0][3]
    v = feats[0][1, :, p // 5, p % 5]
    want = heads.mlps[0](v)
    assert torch.allclose(out[0][1, 3], want / (want.norm() + 1e-7), atol=1e-6)
    with pytest.raises(ValueError, match="built for 3 channels"):
        heads([torch.randn(1, 4, 5, 5), feats[1]], ids)


def test_projection_heads_normalise_as_cuts_normalize_at_xavier_init_norms():
    """CUT's heads (xavier, gain 0.02) start with embedding norms near 1e-5, where CUT's ``x / (||x|| + 1e-7)``
    and ``F.normalize``'s ``x / max(||x||, 1e-7)`` differ by about 1 %: the heads give the official form to 1e-6
    (relative; float32 rounding of one division), and the test checks that the two forms do differ there."""
    torch.manual_seed(0)
    heads = PatchProjection([8, 16], dim=32, init="xavier", init_gain=0.02)
    feats = [torch.randn(2, 8, 6, 6) * 0.05, torch.randn(2, 16, 4, 4) * 0.05]
    ids = [torch.arange(10), torch.arange(7)]
    with torch.no_grad():
        out = heads(feats, ids)
        for f, i, mlp, got in zip(feats, ids, heads.mlps, out, strict=True):
            raw = mlp(f.flatten(2).index_select(2, i).transpose(1, 2))
            norm = raw.norm(dim=-1, keepdim=True)
            assert norm.max() < 1e-3  # the regime this test is for
            official = raw / (norm + 1e-7)
            clamped = torch.nn.functional.normalize(raw, dim=-1, eps=1e-7)
            assert ((got - official).abs().max() / official.abs().max()) < 1e-6
            assert ((clamped - official).abs().max() / official.abs().max()) > 1e-4


def test_unet_segmenter_gives_per_pixel_logits():
    f_s = UNetSegmenter(3, num_classes=5, width=8, depth=3)
    assert f_s(torch.randn(2, 3, 32, 32)).shape == (2, 5, 32, 32)

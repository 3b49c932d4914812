"""FID/KID and LPIPS diversity: torchmetrics' real code on randomly initialised extractors the tests save in the
real files' formats, and the one-line error when a weights file is missing."""

import pytest
import torch
from metricweights import write_random_alexnet, write_random_inception
from torchmetrics.image.fid import FrechetInceptionDistance

from lit_gans.data.synthetic import synthetic_domains
from lit_gans.errors import ConfigError
from lit_gans.metrics import weights
from lit_gans.metrics.distances import FeatureDistances
from lit_gans.metrics.diversity import lpips_diversity

FEATURE = 64  # the Inception's first pooling layer: the same code path as 2048, a fraction of the CPU time


@pytest.fixture(scope="session")
def weight_files(tmp_path_factory):
    root = tmp_path_factory.mktemp("weights")
    return write_random_inception(root / weights.INCEPTION_FILE), write_random_alexnet(root / "alexnet.pth")


@pytest.fixture(scope="session")
def extractor(weight_files):
    return weights.inception(FEATURE, str(weight_files[0]))


@pytest.fixture(scope="session")
def lpips_net(weight_files):
    return weights.lpips("alex", str(weight_files[1]))


@pytest.fixture(scope="session")
def images():
    x, _ = synthetic_domains(num_domains=2, per_domain=6, img_size=32, seed=0)
    return ((x * 0.5 + 0.5) * 255).round() / 255  # (12, 3, 32, 32) in [0, 1], exact 8-bit values


def distances(extractor, real, fake):
    d = FeatureDistances(extractor, kid_subsets=20, kid_subset_size=len(real))
    d.update(real, real=True)
    d.update(fake, real=False)
    return d.compute()


def test_fid_kid_zero_for_identical_sets_and_growing_with_noise(extractor, images):
    g = torch.Generator().manual_seed(0)
    noise = torch.randn(images.shape, generator=g)
    same = distances(extractor, images, images)
    small = distances(extractor, images, (images + 0.05 * noise).clamp(0, 1))
    large = distances(extractor, images, (images + 0.3 * noise).clamp(0, 1))
    assert large["FID"] > small["FID"] > 0
    assert abs(same["FID"]) < 1e-3 * small["FID"]
    assert large["KID"] > small["KID"] > 0
    # KID(x, x) with subsets of all m images: torchmetrics' estimate with the cubic kernel k = (f.g / d + 1)^3,
    # by hand: 2 * mean_off-diagonal(K) - 2 * mean(K) (the cross term keeps the diagonal): ~0, not exactly 0.
    f = FeatureDistances(extractor).features(images)
    k = (f @ f.T / f.shape[1] + 1) ** 3
    m = len(images)
    off = (k.sum() - k.diagonal().sum()) / (m * (m - 1))
    assert same["KID"] == pytest.approx(float(2 * off - 2 * k.mean()), rel=1e-4)
    assert abs(same["KID"]) < small["KID"]
    # Seeded KID subsets: equal inputs, equal numbers.
    assert distances(extractor, images, (images + 0.05 * noise).clamp(0, 1)) == small


def test_shared_feature_pass_equals_torchmetrics_own_fid(extractor, weight_files, images):
    """Features computed once and fed to FID/KID give torchmetrics' FID with its own Inception pass."""
    fake = images.flip(0).roll(3, dims=-1)
    ours = distances(extractor, images, fake)["FID"]
    theirs = FrechetInceptionDistance(feature=FEATURE, normalize=True, feature_extractor_weights_path=str(weight_files[0]))
    theirs.update(images, real=True)
    theirs.update(fake, real=False)
    assert ours == pytest.approx(float(theirs.compute()), rel=1e-4)


def test_real_features_are_kept_across_reset(extractor, images):
    d = FeatureDistances(extractor, kid_subsets=10, kid_subset_size=6)
    d.update(images, real=True)
    d.update(images.flip(-1), real=False)
    first = d.compute()
    d.reset(keep_real=True)
    assert d.num_real == len(images)
    d.update(images.flip(-1), real=False)
    assert d.compute() == first
    d.reset(keep_real=False)
    assert d.num_real == 0


def test_lpips_diversity_is_zero_for_identical_styles_and_the_mean_over_pairs(lpips_net, images):
    x = images[:4] * 2 - 1
    same = torch.stack([x, x, x])  # 3 styles, all the same output
    assert torch.equal(lpips_diversity(lpips_net, same), torch.zeros(4))
    outs = torch.stack([x, x.flip(-1), x.roll(5, dims=-2)])
    div = lpips_diversity(lpips_net, outs)
    up = [torch.nn.functional.interpolate(o, size=(64, 64), mode="bilinear", align_corners=False) for o in outs]
    pairs = [lpips_net(up[i], up[j]).flatten() for i, j in ((0, 1), (0, 2), (1, 2))]
    assert div.shape == (4,) and (div > 0).all()
    assert div == pytest.approx(torch.stack(pairs).mean(0), rel=1e-5)


def test_lpips_backbone_comes_from_the_weights_file(lpips_net, weight_files):
    saved = torch.load(weight_files[1], weights_only=True)
    assert torch.equal(getattr(lpips_net.net.slice2, "3").weight, saved["features.3.weight"])
    assert torch.equal(getattr(lpips_net.net.slice5, "10").bias, saved["features.10.bias"])
    assert lpips_net.lin0.model[-1].weight.abs().sum() > 0  # the linear heads torchmetrics ships


def test_missing_weights_name_the_file_and_where_to_put_it(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    with pytest.raises(ConfigError) as err:
        weights.inception(FEATURE)
    msg = str(err.value)
    assert "\n" not in msg
    assert weights.INCEPTION_FILE in msg and str(tmp_path / "torch" / "hub" / "checkpoints") in msg
    assert "metrics.inception_weights=PATH" in msg
    with pytest.raises(ConfigError, match="alexnet-owt-7be5be79.pth.*metrics.lpips_weights=PATH"):
        weights.lpips("alex")
    with pytest.raises(ConfigError, match=r"metrics.inception_weights=/nonexistent.pth does not exist"):
        weights.inception(FEATURE, "/nonexistent.pth")


def test_weights_in_the_hub_cache_are_found(tmp_path, monkeypatch, weight_files):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    cache = tmp_path / "torch" / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    (cache / weights.INCEPTION_FILE).symlink_to(weight_files[0])
    assert weights.find_weights(None, weights.INCEPTION_FILE, "k", "u") == cache / weights.INCEPTION_FILE

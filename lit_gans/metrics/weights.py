"""Feature-extractor weights for the metrics, read from local files; downloaded only when asked to
(``metrics.download=true`` or ``LIT_GANS_DOWNLOAD_WEIGHTS=1``).

Each network is looked up, in this order, at the path given in config and in the torch hub cache, where
``torch.hub.load_state_dict_from_url`` (used by torch-fidelity and torchvision) would have saved it:
``$TORCH_HOME/hub/checkpoints/<file>`` (``~/.cache/torch/hub/checkpoints`` by default). A missing file is a
one-line :class:`ConfigError` that names the file, where to get it and where to put it.

* FID/KID: torch-fidelity's InceptionV3 (the TF-FID graph ported to PyTorch), ``weights-inception-2015-12-05-
  6726825d.pth``, a ``state_dict``; built through torchmetrics' :class:`NoTrainInceptionV3`.
* LPIPS: torchmetrics' LPIPS network, whose linear heads ship inside torchmetrics; only the ImageNet backbone
  (torchvision's ``alexnet-owt-7be5be79.pth`` for ``net=alex``) comes from a file.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import torch
from torch import nn

from lit_gans.errors import ConfigError
from lit_gans.utils.safe_load import load_data

INCEPTION_FILE = "weights-inception-2015-12-05-6726825d.pth"
INCEPTION_URL = f"https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/{INCEPTION_FILE}"
# LPIPS backbones: torchvision's ImageNet weights, as torchmetrics' LPIPS loads them.
LPIPS_BACKBONES = {
    "alex": ("alexnet", "alexnet-owt-7be5be79.pth"),
    "vgg": ("vgg16", "vgg16-397923af.pth"),
    "squeeze": ("squeezenet1_1", "squeezenet1_1-b8a52dc0.pth"),
}
TORCHVISION_URL = "https://download.pytorch.org/models/"


def hub_checkpoint_dir() -> Path:
    """Where ``torch.hub.load_state_dict_from_url`` keeps downloaded weights."""
    return Path(torch.hub.get_dir()) / "checkpoints"


DOWNLOAD_ENV = "LIT_GANS_DOWNLOAD_WEIGHTS"


def download_allowed(configured: bool | None = None) -> bool:
    """``metrics.download`` when set, else the environment variable ``LIT_GANS_DOWNLOAD_WEIGHTS`` (1/true/yes)."""
    if configured is not None:
        return bool(configured)
    return os.environ.get(DOWNLOAD_ENV, "").strip().lower() in ("1", "true", "yes")


def find_weights(configured: str | None, file_name: str, key: str, url: str, download: bool = False) -> Path:
    """The weights file: ``configured`` when set (it must exist), else the hub cache's ``file_name``; with
    ``download``, a missing cache file is fetched from ``url`` into the cache first (as torch-fidelity and
    torchvision would fetch it)."""
    if configured:
        path = Path(os.path.expanduser(str(configured)))
        if not path.is_file():
            raise ConfigError(f"{key}={configured} does not exist: point {key} to {file_name} (from {url})")
        return path
    cached = hub_checkpoint_dir() / file_name
    if cached.is_file():
        return cached
    if download:
        cached.parent.mkdir(parents=True, exist_ok=True)
        try:
            torch.hub.download_url_to_file(url, str(cached), progress=False)
        except Exception as err:  # noqa: BLE001 - no network, a proxy, a full disk: one line
            raise ConfigError(f"could not download {url} into {cached.parent}/ ({type(err).__name__}: "
                              f"{str(err).splitlines()[0] if str(err) else ''}): download it by hand and pass "
                              f"{key}=PATH") from None
        return cached
    raise ConfigError(f"feature-extractor weights not found: {file_name} is not in {cached.parent}/; "
                      f"metrics.download=true (or {DOWNLOAD_ENV}=1) fetches it from {url}, or pass {key}=PATH")


def inception(feature: int = 2048, weights: str | None = None, key: str = "metrics.inception_weights",
              download: bool = False) -> nn.Module:
    """torch-fidelity's InceptionV3 as torchmetrics uses it for FID/KID: ``uint8 (N, 3, H, W)`` in [0, 255] ->
    ``(N, feature)`` pool features (``feature`` one of 64, 192, 768, 2048; 2048 is the standard)."""
    from torchmetrics.image.fid import NoTrainInceptionV3

    path = find_weights(weights, INCEPTION_FILE, key, INCEPTION_URL, download)
    # torch-fidelity reads the file with torch.load(weights_only=False): it gets a copy written here of what
    # was read as data, so a weights file holding pickled code is refused (one line) and never run.
    state = load_data(path, "weights file", f"pass {key}=PATH of torch-fidelity's {INCEPTION_FILE}")
    with tempfile.TemporaryDirectory(prefix="lit_gans_inception_") as tmp:
        clean = os.path.join(tmp, INCEPTION_FILE)
        torch.save(state, clean)
        del state
        net = NoTrainInceptionV3(name="inception-v3-compat", features_list=[str(feature)],
                                 feature_extractor_weights_path=clean)
    net.num_features = feature
    return net


def lpips(net: str = "alex", weights: str | None = None, key: str = "metrics.lpips_weights",
          download: bool = False) -> nn.Module:
    """torchmetrics' LPIPS network (linear heads from torchmetrics, backbone from the weights file):
    ``(img1, img2)`` in [-1, 1], ``(N, 3, H, W)`` -> ``(N, 1, 1, 1)`` distances."""
    # torchmetrics' metric class builds its backbone with a download; its network class takes a random
    # backbone (pnet_rand) and still loads the linear heads it ships, so the backbone is filled in here.
    if net not in LPIPS_BACKBONES:
        raise ConfigError(f"metrics.lpips_net={net} is not one of {', '.join(LPIPS_BACKBONES)}")
    _, file_name = LPIPS_BACKBONES[net]
    path = find_weights(weights, file_name, key, TORCHVISION_URL + file_name, download)
    from lit_gans.compat import lpips_network

    model = lpips_network(net)
    load_backbone(model.net, load_data(path, "weights file", f"pass {key}=PATH of torchvision's {file_name}"), path)
    return model.eval().requires_grad_(False)


def load_backbone(slices: nn.Module, state_dict: dict[str, torch.Tensor], path: Path) -> None:
    """Load torchvision ``features.<i>.*`` weights into torchmetrics' LPIPS backbone, whose slices keep the
    layers of ``features`` under their original index (``slice2.3.weight`` is ``features.3.weight``)."""
    where = {name: f"{s}.{name}" for s, block in slices.named_children() for name, _ in block.named_children()}
    remapped = {}
    for key, value in state_dict.items():
        if key.startswith("features."):
            index, rest = key[len("features."):].split(".", 1)
            if index in where:
                remapped[f"{where[index]}.{rest}"] = value
    try:
        slices.load_state_dict(remapped, strict=True)
    except RuntimeError as err:
        raise ConfigError(f"{path} does not hold the torchvision backbone LPIPS expects "
                          f"({str(err).splitlines()[0][:160]})") from None

"""Feature-extractor weight files made at test time: randomly initialised networks saved in the format of the
real downloads (the numbers they give mean nothing; the plumbing around them is what the tests check)."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn


def write_random_inception(path: Path, seed: int = 0) -> Path:
    """A state_dict in the format of torch-fidelity's ``weights-inception-2015-12-05-6726825d.pth``."""
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    class RandomInception(FeatureExtractorInceptionV3):
        def load_state_dict(self, state_dict, strict=True):  # keep the random initialisation
            return None

    empty = path.with_suffix(".empty")
    torch.save({}, empty)
    torch.manual_seed(seed)
    net = RandomInception("random", ["64"], feature_extractor_weights_path=str(empty))
    for m in net.modules():  # He init: activations keep their scale through the depth (default init fades them)
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
    torch.save(net.state_dict(), path)
    empty.unlink()
    return path


def write_random_alexnet(path: Path, seed: int = 0) -> Path:
    """A state_dict in the format of torchvision's ``alexnet-owt-7be5be79.pth`` (LPIPS's backbone)."""
    import torchvision

    torch.manual_seed(seed)
    torch.save(torchvision.models.alexnet().state_dict(), path)
    return path

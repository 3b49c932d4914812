"""LPIPS diversity (StarGAN v2, Sec. 4): how different the outputs for one source under several styles are."""

from __future__ import annotations

import itertools

import torch
from torch import Tensor, nn
from torch.nn import functional as F


@torch.no_grad()
def lpips_diversity(lpips: nn.Module, outputs: Tensor, min_size: int = 64) -> Tensor:
    """Mean LPIPS over all pairs of styles, per source.

    Args:
        lpips: ``(img1, img2)`` in [-1, 1] -> ``(N, 1, 1, 1)`` (see :func:`lit_gans.metrics.weights.lpips`).
        outputs: ``(S, N, 3, H, W)`` in [-1, 1]: ``S >= 2`` outputs (styles) for each of ``N`` sources.
        min_size: smaller images are upsampled (bilinear) to this side first: the backbone's five stages need
            about 64 px (AlexNet's last pooling fails below ~32).

    Returns:
        ``(N,)``: for each source the mean of ``LPIPS(outputs[i], outputs[j])`` over the ``S (S - 1) / 2`` pairs
        ``i < j``, as the original's ``calculate_lpips_given_images``. 0 when every style gives the same image.
    """
    s = outputs.shape[0]
    if s < 2:
        raise ValueError(f"LPIPS diversity needs at least 2 outputs per source, got {s}")
    pairs = list(itertools.combinations(range(s), 2))
    first = torch.cat([outputs[i] for i, _ in pairs])
    second = torch.cat([outputs[j] for _, j in pairs])
    device = next(lpips.parameters()).device
    if outputs.shape[-1] < min_size or outputs.shape[-2] < min_size:
        first, second = (F.interpolate(t.float(), size=(min_size, min_size), mode="bilinear", align_corners=False)
                         for t in (first, second))
    dist = lpips(first.to(device).float().clamp(-1, 1), second.to(device).float().clamp(-1, 1)).flatten()
    return dist.view(len(pairs), -1).mean(0)

"""StarGAN v2 items from any labelled collection of images or latents.

An item is the source, its domain, a reference from one target domain (and a second one when a model uses it:
``with_ref2``) and two style codes::

    {"x_src": (C,H,W), "y_src": (), "x_ref": (C,H,W), ["x_ref2": (C,H,W),] "y_trg": (), "z1": (L,), "z2": (L,)}

The target domain is drawn uniformly over domains (as the original's domain-balanced reference loader does)
and the two references are distinct items of it when it has more than one. All random choices come from
the item's seed (see :mod:`lit_gans.data.sampling`), so they are the same in every worker and after a resume.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor
from torch.utils.data import Dataset

from lit_gans.data.sampling import ItemKey, item_generator, pinned_cpu_rng, split_key


class MultiDomainItems(Dataset):
    """Args:
        load: ``load(i) -> Tensor (C,H,W)`` for item ``i`` (already transformed).
        labels: domain of each item, ``(N,)`` long, values in ``[0, num_domains)``.
        num_domains: number of domains.
        latent_dim: size of the random style codes ``z1``, ``z2``.
        with_ref2: include the second reference ``x_ref2`` (one more image to load per item; the random draws
            are the same either way, so turning it on or off changes no other part of an item).
    """

    def __init__(self, load: Callable[[int], Tensor], labels: Tensor, num_domains: int, latent_dim: int = 16,
                 with_ref2: bool = False):
        self.load = load
        self.labels = torch.as_tensor(labels, dtype=torch.long)
        self.num_domains = num_domains
        self.latent_dim = latent_dim
        self.with_ref2 = with_ref2
        self.members = [torch.nonzero(self.labels == d).flatten() for d in range(num_domains)]
        empty = [d for d, m in enumerate(self.members) if len(m) == 0]
        if empty:
            raise ValueError(f"domains {empty} have no items")

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, key: int | ItemKey) -> dict[str, Tensor]:
        index, seed = split_key(key)
        g = item_generator(seed)
        y_trg = int(torch.randint(self.num_domains, (), generator=g))
        members = self.members[y_trg]
        n = len(members)
        r1 = int(torch.randint(n, (), generator=g))
        r2 = int(torch.randint(max(1, n - 1), (), generator=g))
        r2 = r2 + 1 if n > 1 and r2 >= r1 else r1  # a different item of the domain when it has more than one
        ref, ref2 = int(members[r1]), int(members[r2])
        z = torch.randn(2, self.latent_dim, generator=g)
        # Transforms draw from torch's global RNG: pin it to the item's seed for their draws.
        with pinned_cpu_rng(seed):
            item = {"x_src": self.load(index), "y_src": self.labels[index], "x_ref": self.load(ref)}
            if self.with_ref2:
                item["x_ref2"] = self.load(ref2)
        item.update(y_trg=torch.tensor(y_trg), z1=z[0], z2=z[1])
        return item

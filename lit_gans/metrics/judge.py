"""A judge trained on the user's own data: a small classifier of the domains, learned from the real training
images (or latents) of each domain, then asked which domain each translation belongs to.

This is the "classification accuracy" protocol of the StarGAN and attribute-editing papers (a translation
counts as successful when a classifier trained on real data assigns it the target domain), with a classifier
trained here rather than downloaded: it needs no weights from the network and works on any data, pixels or
latents. Reported with it:

- ``judge_accuracy``: the fraction of translations classified as their target domain, per source -> target
  pair and on average; chance is ``1 / num_domains``.
- ``judge_fd``: the Fréchet distance between the judge's features of the translations into a domain and of
  that domain's real images (torchmetrics' FID computation on the judge's pooled features), per target domain
  and on average. Lower is closer. It is not comparable with published FIDs (another feature space).
- ``judge_real_accuracy``: the judge's accuracy on held-out real images. A weak judge (near chance) makes the
  other numbers meaningless; it is reported so that this is visible.

The judge is cached (``judge_<key>.pt``) where the data lives, keyed by a hash of the training tensors, so a
dataset trains its judge once.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from lit_gans.nets.classifier import DomainClassifier
from lit_gans.utils.modes import evaluating
from lit_gans.utils.safe_load import load_data

log = logging.getLogger(__name__)
CACHE_ENV = "LIT_GANS_JUDGE_CACHE"


@dataclass
class Judge:
    """A trained :class:`~lit_gans.nets.classifier.DomainClassifier` with its input standardisation.

    ``mean``/``std``: per-channel statistics of the training data (``(C,)``); inputs are resized to ``size``.
    """

    net: DomainClassifier
    mean: Tensor
    std: Tensor
    size: int
    domain_names: list[str]
    real_accuracy: float = float("nan")
    key: str = ""
    history: list[float] = field(default_factory=list)

    def prepare(self, x: Tensor) -> Tensor:
        device = next(self.net.parameters()).device
        x = x.to(device=device, dtype=torch.float32)
        if x.shape[-1] != self.size or x.shape[-2] != self.size:
            x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", antialias=True, align_corners=False)
        return (x - self.mean.to(device)[None, :, None, None]) / self.std.to(device)[None, :, None, None]

    @torch.no_grad()
    def predict(self, x: Tensor, batch_size: int = 256) -> Tensor:
        """Domain index of each of ``(N, C, H, W)`` images, ``(N,)`` on the CPU."""
        self.net.eval()
        return torch.cat([self.net(self.prepare(b)).argmax(1).cpu() for b in x.split(batch_size)])

    @torch.no_grad()
    def features(self, x: Tensor, batch_size: int = 256) -> Tensor:
        """``(N, C, H, W)`` -> ``(N, D)`` float64 pooled features (on the CPU)."""
        self.net.eval()
        return torch.cat([self.net.features(self.prepare(b)).double().cpu() for b in x.split(batch_size)])

    @torch.no_grad()
    def style_features(self, x: Tensor, batch_size: int = 256) -> Tensor:
        """``(N, C, H, W)`` -> ``(N, D)`` float64 style statistics of the first two stages (on the CPU), see
        :meth:`~lit_gans.nets.classifier.DomainClassifier.style_statistics`."""
        self.net.eval()
        return torch.cat([self.net.style_statistics(self.prepare(b)).double().cpu() for b in x.split(batch_size)])

    def state(self) -> dict[str, Any]:
        return {"net": self.net.state_dict(), "mean": self.mean, "std": self.std, "size": self.size,
                "domain_names": list(self.domain_names), "real_accuracy": self.real_accuracy, "key": self.key,
                "in_channels": int(self.mean.numel()), "width": self.net.num_features // 4}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Judge:
        net = DomainClassifier(int(state["in_channels"]), len(state["domain_names"]), int(state["width"]))
        net.load_state_dict(state["net"])
        return cls(net.eval(), state["mean"], state["std"], int(state["size"]), list(state["domain_names"]),
                   float(state["real_accuracy"]), str(state["key"]))


def data_key(images: Tensor, labels: Tensor, size: int) -> str:
    """A short hash of the training data and the judge's input size (the cache key)."""
    h = hashlib.sha1()
    h.update(str((tuple(images.shape), str(images.dtype), size)).encode())
    h.update(images.contiguous().float().numpy().tobytes())
    h.update(labels.to(torch.int64).contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def train_judge(images: Tensor, labels: Tensor, domain_names: Sequence[str], size: int | None = None,
                steps: int = 300, batch_size: int = 64, lr: float = 3e-3, held_out: float = 0.15, seed: int = 0,
                width: int = 16) -> Judge:
    """Train a judge on ``images`` ``(N, C, H, W)`` (data space: pixels in [-1, 1] or unscaled latents) with
    domain ``labels`` ``(N,)``; ``held_out`` of each domain is kept for :attr:`Judge.real_accuracy`.

    Augmentation: horizontal flips and small translations (what a translation may change without changing
    its domain). ``size``: input size (default ``min(H, 64)``). ``steps`` batches of ``batch_size`` with a
    one-cycle learning rate."""
    images, labels = images.float(), labels.long()
    num_domains = len(domain_names)
    size = int(size or min(images.shape[-1], 64))
    g = torch.Generator().manual_seed(seed)
    train_idx, test_idx = [], []
    for d in range(num_domains):
        idx = torch.nonzero(labels == d).flatten()
        idx = idx[torch.randperm(len(idx), generator=g)]
        k = max(1, int(round(held_out * len(idx)))) if len(idx) > 1 else 0
        test_idx.append(idx[:k])
        train_idx.append(idx[k:])
    tr, te = torch.cat(train_idx), torch.cat(test_idx)
    x_tr = images[tr]
    mean = x_tr.mean(dim=(0, 2, 3))
    std = x_tr.std(dim=(0, 2, 3)).clamp_min(1e-6)
    # Trained with gradients whatever the caller's mode (evaluate and the callback run under no_grad).
    with torch.random.fork_rng(devices=[]), torch.enable_grad():
        torch.manual_seed(seed)
        net = DomainClassifier(images.shape[1], num_domains, width)
        judge = Judge(net, mean, std, size, list(domain_names), key=data_key(images, labels, size))
        opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-4)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps)
        x_all, y_all = judge.prepare(x_tr), labels[tr]
        net.train()
        for _ in range(steps):
            pick = torch.randint(len(x_all), (min(batch_size, len(x_all)),), generator=g)
            x, y = x_all[pick], y_all[pick]
            flip = torch.rand(len(x), generator=g) < 0.5
            x = torch.where(flip[:, None, None, None], x.flip(-1), x)
            shift = int(torch.randint(-size // 16, size // 16 + 1, (), generator=g)) if size >= 16 else 0
            x = torch.roll(x, shifts=(shift, -shift), dims=(-2, -1))
            loss = F.cross_entropy(net(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            judge.history.append(float(loss.detach()))
    net.eval()
    if len(te):
        judge.real_accuracy = float((judge.predict(images[te]) == labels[te]).float().mean())
    return judge


def cached_judge(images: Tensor, labels: Tensor, domain_names: Sequence[str], cache_dir: str | os.PathLike | None,
                 **train_kw: Any) -> Judge:
    """The judge of this data from ``cache_dir`` when one was trained on the same tensors, else a new one (saved
    there). ``cache_dir=None``: no cache."""
    size = int(train_kw.get("size") or min(images.shape[-1], 64))
    key = data_key(images.float(), labels.long(), size)
    path = os.path.join(str(cache_dir), f"judge_{key}.pt") if cache_dir else None
    if path and os.path.isfile(path):
        try:
            judge = Judge.from_state(load_data(path, "judge cache", "it is trained again"))
            if judge.domain_names == list(domain_names):
                return judge
        except Exception as err:  # noqa: BLE001 - a damaged cache entry is retrained
            log.warning("retraining the judge: cannot read %s (%s)", path, err)
    judge = train_judge(images, labels, domain_names, **train_kw)
    if path:
        try:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            tmp = f"{path}.tmp{os.getpid()}"
            torch.save(judge.state(), tmp)
            os.replace(tmp, path)
        except OSError as err:  # a read-only data folder: the judge is simply not cached
            log.warning("the judge is not cached (%s): %s", path, err)
    return judge


def frechet_distance(real: Tensor, fake: Tensor) -> float:
    """Fréchet distance between two sets of features ``(N, D)``, ``(M, D)`` (torchmetrics' FID maths on them)."""
    from torchmetrics.image.fid import FrechetInceptionDistance

    from lit_gans.metrics.distances import _Precomputed

    # One process computes it (the callback runs on global rank zero): no gathering across DDP processes.
    fid = FrechetInceptionDistance(feature=_Precomputed(real.shape[1]), normalize=False, sync_on_compute=False)
    fid.update(real.double(), real=True)
    fid.update(fake.double(), real=False)
    return float(fid.compute())


@torch.no_grad()
def judge_multidomain(translate: Any, judge: Judge, sources: Tensor, source_labels: Tensor, reals: Tensor,
                      real_labels: Tensor, latent_dim: int, num_styles: int = 4, seed: int = 0,
                      batch_size: int = 64) -> dict[str, Any]:
    """The judge's numbers for a multi-domain model (StarGAN v2, latent-guided).

    ``translate(x, y_trg, z)`` maps data-space sources to target domain ``y_trg`` with style codes ``z``
    ``(B, latent_dim)`` (the model's :meth:`translate`); every source goes to every other domain with ``num_styles`` style codes drawn from
    ``seed``. ``reals``: real images of every domain (held out from the judge's training when possible), for
    the Fréchet distances."""
    names = judge.domain_names
    n_dom = len(names)
    g = torch.Generator().manual_seed(seed)
    pairs: dict[str, float] = {}
    fds: dict[str, float] = {}
    fakes_by_target: dict[int, list[Tensor]] = {t: [] for t in range(n_dom)}
    for s in range(n_dom):
        x = sources[source_labels == s]
        if not len(x):
            continue
        for t in range(n_dom):
            if t == s:
                continue
            outs = []
            for _ in range(num_styles):
                z = torch.randn(len(x), latent_dim, generator=g)
                outs += [translate(xb, t, z=zb).cpu() for xb, zb in zip(x.split(batch_size), z.split(batch_size), strict=True)]
            fake = torch.cat(outs)
            fakes_by_target[t].append(fake)
            pairs[f"{names[s]}->{names[t]}"] = float((judge.predict(fake) == t).float().mean())
    real_feats = judge.features(reals)
    for t in range(n_dom):
        if fakes_by_target[t] and int((real_labels == t).sum()) >= 2:
            fds[names[t]] = frechet_distance(real_feats[real_labels == t], judge.features(torch.cat(fakes_by_target[t])))
    return {"judge_accuracy": sum(pairs.values()) / max(1, len(pairs)), "judge_accuracy_pairs": pairs,
            "judge_fd": sum(fds.values()) / max(1, len(fds)) if fds else float("nan"), "judge_fd_domains": fds,
            "judge_real_accuracy": judge.real_accuracy, "judge_chance": 1.0 / n_dom}


def spread_indices(n: int, limit: int | None) -> list[int]:
    """At most ``limit`` of the indices ``0 .. n-1``, spread evenly (all of them when ``limit`` is None or >= n)."""
    if limit is None or limit >= n:
        return list(range(n))
    return torch.linspace(0, n - 1, limit).round().long().tolist()


def domain_tensors(items: Any, limit: int | None = None) -> tuple[Tensor, Tensor]:
    """``(images (N, C, H, W), labels (N,))`` of a multi-domain dataset's sources (its ``x_src``/``y_src``), in
    the data's own space; at most ``limit`` items, spread evenly."""
    xs, ys = [], []
    for i in spread_indices(len(items), limit):
        item = items[i]
        xs.append(item["x_src"])
        ys.append(int(item["y_src"]))
    return torch.stack(xs), torch.tensor(ys)


def default_cache_dir(datamodule: Any) -> str:
    """Where a data module's judge is kept: next to its data (``<root>/.lit_gans_judges``) when the data has a
    writable folder, else ``$LIT_GANS_JUDGE_CACHE`` or ``~/.cache/lit_gans/judges`` (built-in data). The file name
    carries the data's hash."""
    root = getattr(datamodule, "root", None) or getattr(datamodule, "path", None)
    if root:
        folder = root if os.path.isdir(str(root)) else os.path.dirname(str(root))
        if folder and os.access(folder, os.W_OK):
            return os.path.join(folder, ".lit_gans_judges")
    return os.environ.get(CACHE_ENV) or os.path.join(os.path.expanduser("~"), ".cache", "lit_gans", "judges")


def _pixels(x: Tensor, vae: Any, batch_size: int = 16) -> Tensor:
    """Data-space tensors as the judge sees them: decoded to RGB when a VAE is given, else as they are."""
    if vae is None:
        return x
    from lit_gans import inference

    return torch.cat([inference.to_pixels(b, vae).cpu() for b in x.split(batch_size)])


def judge_multidomain_model(model: Any, datamodule: Any, cache_dir: str | os.PathLike | None = None,
                            num_styles: int = 4, seed: int = 0, max_train: int | None = 6000,
                            max_sources: int | None = 300, vae: Any = None, hallmarks: bool = True,
                            hallmark_styles: int = 4, lpips: Any = None) -> dict[str, Any]:
    """:func:`judge_multidomain` of a StarGAN v2 ``model`` on a multi-domain ``datamodule``: the judge learns from
    (at most ``max_train`` of) the training split's sources; translations start from (at most ``max_sources`` of)
    the validation split (the training split when there is none), whose images are also the reals of the
    Fréchet distances. Latent data are decoded by ``vae`` when one is given, else judged as latents.

    With ``hallmarks``, also StarGAN v2's hallmarks (:mod:`lit_gans.metrics.hallmarks`), ``hallmark_styles``
    references and codes per source: ``judge_accuracy_ref``, ``ref_retrieval``, ``latent_diversity`` (and
    ``lpips_diversity`` with an ``lpips`` network, RGB data only) on any data; on the built-in shapes in pixels
    also the ``shapes_*`` measures from the known factors (on 60 scenes drawn afresh). The references (and the
    reals that diversity is relative to) are the judge's training images."""
    from lit_gans.metrics.hallmarks import feature_hallmarks, shapes_hallmarks

    datamodule.setup("fit")
    train_x, train_y = domain_tensors(datamodule.train_set, max_train)
    judge = cached_judge(_pixels(train_x, vae), train_y, list(datamodule.domain_names), cache_dir)
    held = datamodule.val_set if datamodule.val_set is not None else datamodule.train_set
    x, y = domain_tensors(held, max_sources)
    latent_dim = int(model.net_cfg["latent_dim"])

    def translate(xb: Tensor, t: int, z: Tensor) -> Tensor:
        return _pixels(model.translate(xb.to(model.device), t, z=z.to(model.device)).cpu(), vae)

    def translate_any(xb: Tensor, t: Any, x_ref: Tensor | None = None, z: Tensor | None = None) -> Tensor:
        x_ref = None if x_ref is None else x_ref.to(model.device)
        return model.translate(xb.to(model.device), t, x_ref=x_ref, z=None if z is None else z.to(model.device)).cpu()

    with evaluating(model):
        out = judge_multidomain(translate, judge, x, y, _pixels(x, vae), y, latent_dim, num_styles=num_styles,
                                seed=seed)
        if not hallmarks:
            return out
        rgb = vae is not None or int(x.shape[1]) == 3
        found = feature_hallmarks(translate_any, judge, x, y, train_x, train_y, latent_dim, hallmark_styles, seed,
                                  lpips=lpips if rgb else None, decode=lambda t: _pixels(t, vae))
        names = judge.domain_names
        out.update({k: ({names[d]: v for d, v in val.items()} if k.endswith("_domains") else val)
                    for k, val in found.items()})
        if is_shapes_in_pixels(datamodule):
            out.update(shapes_hallmarks(translate_any, latent_dim, len(names), int(x.shape[-1]), judge.predict,
                                        num_styles=hallmark_styles, seed=seed))
    return out


def is_shapes_in_pixels(datamodule: Any) -> bool:
    """Whether ``datamodule`` is the built-in shapes data as RGB pixels (whose factors the ``shapes_*`` hallmarks
    read)."""
    from lit_gans.data.synthetic import SyntheticDomainsDataModule

    return isinstance(datamodule, SyntheticDomainsDataModule) and datamodule.channels == 3


def _side(load: Any, n: int, limit: int | None) -> Tensor:
    return torch.stack([load(i) for i in spread_indices(n, limit)])


@torch.no_grad()
def judge_a_to_b_model(model: Any, datamodule: Any, cache_dir: str | os.PathLike | None = None, seed: int = 0,
                       max_train: int | None = 6000, max_sources: int | None = 300, vae: Any = None,
                       batch_size: int = 16, options: dict[str, Any] | None = None) -> dict[str, Any]:
    """The judge's numbers for an A -> B model (CycleGAN, CUT, pix2pix): a two-domain judge learns A from B on
    the training split; ``judge_accuracy`` is the fraction of translations ``G(A)`` of the held-out A images it
    calls B (chance 0.5), ``judge_fd`` the Fréchet distance of their features to those of the real B images."""
    from lit_gans import inference
    from lit_gans.metrics.protocols import a_to_b_sides, items_of

    datamodule.setup("fit")
    load_a, n_a, load_b, n_b = a_to_b_sides(datamodule.train_set)
    half = None if max_train is None else max(1, max_train // 2)
    a, b = _side(load_a, n_a, half), _side(load_b, n_b, half)
    judge = cached_judge(_pixels(torch.cat([a, b]), vae), torch.cat([torch.zeros(len(a)), torch.ones(len(b))]).long(),
                         ["A", "B"], cache_dir, seed=seed)
    load_a, n_a, load_b, n_b = a_to_b_sides(items_of(datamodule, "val"))
    sources, reals = _side(load_a, n_a, max_sources), _side(load_b, n_b, max_sources)
    translate = inference.adapter_for(model)
    with evaluating(model), torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        fake = torch.cat([_pixels(translate(model, x.to(model.device), options or {}).cpu(), vae)
                          for x in sources.split(batch_size)])
    accuracy = float((judge.predict(fake) == 1).float().mean())
    fd = frechet_distance(judge.features(_pixels(reals, vae)), judge.features(fake)) if len(reals) >= 2 else float("nan")
    return {"judge_accuracy": accuracy, "judge_accuracy_pairs": {"A->B": accuracy}, "judge_fd": fd,
            "judge_fd_domains": {"B": fd}, "judge_real_accuracy": judge.real_accuracy, "judge_chance": 0.5}


def judge_model(model: Any, datamodule: Any, cache_dir: str | os.PathLike | None = None, **kwargs: Any) -> dict[str, Any]:
    """The judge's protocol of the model's family (multi-domain or A -> B); ``cache_dir=None``: next to the data
    (:func:`default_cache_dir`)."""
    from lit_gans import inference

    cache_dir = cache_dir or default_cache_dir(datamodule)
    if type(model).__name__ in inference.MULTI_DOMAIN:
        kwargs.pop("options", None)
        return judge_multidomain_model(model, datamodule, cache_dir, **kwargs)
    for key in ("num_styles", "hallmarks", "hallmark_styles", "lpips"):  # multi-domain settings
        kwargs.pop(key, None)
    return judge_a_to_b_model(model, datamodule, cache_dir, **kwargs)

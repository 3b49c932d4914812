"""StarGAN v2's hallmarks beside the judge's target domain (Choi et al., CVPR 2020, Figs. 1, 4 and 5): a
translation is in the target domain, **in the style of its reference** (reference-guided) or of a random code
(latent-guided, **diverse over codes**), and **keeps the source's content**.

Two sets of measures:

* **On the built-in shapes**, whose generating factors are known (:mod:`lit_gans.data.synthetic`: domain = shape,
  style = colour and size, content = position), exactly: scenes with known factors are drawn afresh, translated,
  and the output's foreground colour and centre are read off the pixels (:func:`foreground`):

  - ``shapes_target_ref`` / ``shapes_target_latent``: fraction of translations the judge assigns to the target
    shape, per path;
  - ``shapes_colour_followed``: reference-guided, ``1 - err / err_other`` with ``err`` the RGB distance of the
    output's colour to its reference's and ``err_other`` the distance to another reference's colour
    (0: the reference is ignored, 1: its colour exactly);
  - ``shapes_colour_diversity``: latent-guided, the mean pairwise RGB distance of the colours of one source's
    outputs over ``num_styles`` codes, relative to the mean distance between two real colours (0: one colour
    whatever the code);
  - ``shapes_position_error``: mean distance of the output's foreground centre to the source's shape centre, in
    image widths (0: the content is kept).

* **On any data**, approximately, in the judge's style statistics (:meth:`~lit_gans.metrics.judge.Judge.style_features`:
  the channel means and standard deviations of its first two stages' activations, AdaIN's notion of style, which
  describe colour and texture and not position; its pooled features encode the domain and position more than
  the style: a translator that paints the reference's colour exactly was retrieved at 0.28 in them, at 0.98 in
  these):

  - ``ref_retrieval``: for each source, ``num_styles`` references of the target domain are translated; an output
    counts as retrieved against another reference when it is closer to its own reference than to that one.
    Reported chance-corrected, ``2 * accuracy - 1``: 0 when the output ignores the reference, 1 when it is always
    nearest its own;
  - ``latent_diversity``: the mean pairwise feature distance of one source's outputs over ``num_styles`` codes,
    relative to the mean pairwise distance of real images of the target domain (0: mode collapse);
  - ``lpips_diversity``: StarGAN v2's own diversity measure (mean LPIPS over pairs of codes,
    :func:`~lit_gans.metrics.diversity.lpips_diversity`), when an LPIPS network is given.

Each measure is checked on ideal renders of the built-in shapes and on the failures it exists for (one style
whatever the code or reference, the identity): ``tests/test_hallmarks.py``.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from lit_gans.data.synthetic import _hsv_to_rgb, render_scenes

# translate(x, y_trg, x_ref=None, z=None) -> outputs, data space (a StarGAN v2's ``translate``)
Translate = Callable[..., Tensor]
SHAPES_BACKGROUND = (0.16, 0.18, 0.24)  # the built-in multi-domain data's background colour


# ------------------------------------------------------------------------------------------------ built-in shapes
def foreground(images: Tensor) -> tuple[Tensor, Tensor]:
    """The shape's colour and centre in ``(N, 3, H, W)`` RGB images in [-1, 1] of one shape on a plain background.

    The background colour is the median of the border pixels; the shape is where a pixel is farther from it than
    half the image's largest distance (at least 0.1); its colour is the median over its inner part (distance at
    least 0.9 of the largest, which leaves the anti-aliased edge out) and its centre the mean position of the shape.

    Returns ``colour (N, 3)`` in [0, 1] and ``centre (N, 2)`` (x, y) in [-1, 1] image coordinates.
    """
    x = (images.float().clamp(-1, 1) + 1) / 2
    n, _, h, w = x.shape
    border = torch.cat([x[:, :, 0], x[:, :, -1], x[:, :, 1:-1, 0], x[:, :, 1:-1, -1]], dim=2)
    bg = border.median(dim=2).values[:, :, None, None]
    dist = (x - bg).norm(dim=1)  # (N, H, W)
    top = dist.flatten(1).max(1).values[:, None, None]
    shape = (dist > torch.clamp(0.5 * top, min=0.1)).float()
    inner = dist >= 0.9 * top
    colour = torch.stack([x[i][:, inner[i]].median(dim=1).values for i in range(n)])
    ys, xs = torch.meshgrid(torch.linspace(-1, 1, h), torch.linspace(-1, 1, w), indexing="ij")
    area = shape.flatten(1).sum(1).clamp_min(1)
    centre = torch.stack([(shape * xs).flatten(1).sum(1) / area, (shape * ys).flatten(1).sum(1) / area], dim=1)
    return colour, centre


@dataclass
class ShapeScenes:
    """Sources and references of the built-in shapes with their factors: sources of domains ``y_src`` at
    ``centres``; one reference per source in its target domain ``y_trg`` with colour ``ref_colours`` and radius
    ``ref_radii``. ``other`` pairs each source with another one, whose reference is the "other reference"."""

    sources: Tensor
    y_src: Tensor
    centres: Tensor
    references: Tensor
    y_trg: Tensor
    ref_colours: Tensor
    ref_radii: Tensor
    other: Tensor

    def ideal(self, colours: Tensor | None = None) -> Tensor:
        """The ideal translations: the target shape at the source's position, in the reference's size and in
        ``colours`` (default: the reference's colour)."""
        colours = self.ref_colours if colours is None else colours
        n = len(self.y_trg)
        bg = torch.tensor(SHAPES_BACKGROUND).expand(n, 3)
        return render_scenes(self.y_trg, self.centres, self.ref_radii, colours, bg, self.sources.shape[-1])


def _shape_factors(n: int, g: torch.Generator) -> tuple[Tensor, Tensor, Tensor]:
    """Centres, radii and colours drawn as :func:`lit_gans.data.synthetic.sample_scenes` draws them."""
    centres = (torch.rand(n, 2, generator=g) * 2 - 1) * 0.45
    radii = 0.28 + 0.22 * torch.rand(n, generator=g)
    colours = _hsv_to_rgb(torch.rand(n, generator=g), 0.6 + 0.4 * torch.rand(n, generator=g),
                          0.75 + 0.25 * torch.rand(n, generator=g))
    return centres, radii, colours


def random_colours(n: int, g: torch.Generator) -> Tensor:
    """``(n, 3)`` colours from the built-in data's colour distribution."""
    return _shape_factors(n, g)[2]


def shape_scenes(num_domains: int, img_size: int, n: int = 60, seed: int = 0) -> ShapeScenes:
    """``n`` sources, each with a reference in another domain, drawn afresh from the built-in data's factors."""
    g = torch.Generator().manual_seed(seed)
    y_src = torch.randint(0, num_domains, (n,), generator=g)
    y_trg = (y_src + torch.randint(1, num_domains, (n,), generator=g)) % num_domains
    bg = torch.tensor(SHAPES_BACKGROUND).expand(n, 3)
    centres, radii, colours = _shape_factors(n, g)
    sources = render_scenes(y_src, centres, radii, colours, bg, img_size)
    ref_centres, ref_radii, ref_colours = _shape_factors(n, g)
    references = render_scenes(y_trg, ref_centres, ref_radii, ref_colours, bg, img_size)
    other = (torch.arange(n) + 1 + torch.randint(0, n - 1, (n,), generator=g)) % n  # never the source itself
    return ShapeScenes(sources, y_src, centres, references, y_trg, ref_colours, ref_radii, other)


def score_shapes(scenes: ShapeScenes, ref_outputs: Tensor, latent_outputs: Tensor,
                 predict: Callable[[Tensor], Tensor] | None = None, real_spread: float | None = None) -> dict[str, float]:
    """The shapes' hallmarks of reference-guided outputs ``(N, 3, H, W)`` and latent-guided outputs
    ``(S, N, 3, H, W)`` (``S >= 2`` codes per source) of ``scenes``. ``predict``: a judge's domain prediction
    (target-shape accuracies are left out without one). ``real_spread``: the mean RGB distance between two real
    colours (default: between the references' colours and the other references')."""
    out: dict[str, float] = {}
    if predict is not None:
        out["shapes_target_ref"] = float((predict(ref_outputs) == scenes.y_trg).float().mean())
        out["shapes_target_latent"] = float(torch.stack([(predict(o) == scenes.y_trg).float().mean()
                                                         for o in latent_outputs]).mean())
    colour, centre = foreground(ref_outputs)
    err = (colour - scenes.ref_colours).norm(dim=1).mean()
    err_other = (colour - scenes.ref_colours[scenes.other]).norm(dim=1).mean()
    out["shapes_colour_followed"] = float(1 - err / err_other.clamp_min(1e-6))
    if real_spread is None:
        real_spread = float((scenes.ref_colours - scenes.ref_colours[scenes.other]).norm(dim=1).mean())
    colours = torch.stack([foreground(o)[0] for o in latent_outputs])  # (S, N, 3)
    pairs = [(colours[i] - colours[j]).norm(dim=1).mean() for i, j in itertools.combinations(range(len(colours)), 2)]
    out["shapes_colour_diversity"] = float(torch.stack(pairs).mean() / max(real_spread, 1e-6))
    centres = torch.cat([centre, *[foreground(o)[1] for o in latent_outputs]])
    out["shapes_position_error"] = float((centres - scenes.centres.repeat(len(latent_outputs) + 1, 1))
                                         .norm(dim=1).mean() / 2)  # coordinates span 2 units per width
    return out


@torch.no_grad()
def shapes_hallmarks(translate: Translate, latent_dim: int, num_domains: int, img_size: int,
                     predict: Callable[[Tensor], Tensor] | None = None, n: int = 60, num_styles: int = 4,
                     seed: int = 0, batch_size: int = 64) -> dict[str, float]:
    """:func:`score_shapes` of a StarGAN v2's ``translate`` (its :meth:`translate`, data space) on ``n`` fresh
    scenes of the built-in shapes, ``num_styles`` random codes per source."""
    scenes = shape_scenes(num_domains, img_size, n, seed)
    g = torch.Generator().manual_seed(seed + 1)

    def run(**style: Tensor) -> Tensor:
        parts = [translate(scenes.sources[i:i + batch_size], scenes.y_trg[i:i + batch_size],
                           **{k: v[i:i + batch_size] for k, v in style.items()}).float().cpu()
                 for i in range(0, n, batch_size)]
        return torch.cat(parts)

    ref_outputs = run(x_ref=scenes.references)
    latent_outputs = torch.stack([run(z=torch.randn(n, latent_dim, generator=g)) for _ in range(num_styles)])
    return score_shapes(scenes, ref_outputs, latent_outputs, predict)


# ------------------------------------------------------------------------------------------------ any data
def pairwise_mean(features: Tensor) -> Tensor:
    """``(S, N, D)`` -> ``(N,)``: the mean Euclidean distance over the ``S (S - 1) / 2`` pairs of each column."""
    pairs = list(itertools.combinations(range(features.shape[0]), 2))
    return torch.stack([(features[i] - features[j]).norm(dim=-1) for i, j in pairs]).mean(0)


def retrieval(out_features: Tensor, ref_features: Tensor) -> Tensor:
    """``(S, N, D)`` features of outputs and of the references that guided them (``S >= 2`` references per
    source) -> ``(N,)``: the fraction of (output, other reference of the same source) pairs in which the output is
    closer to its own reference, chance-corrected: ``2 * fraction - 1``."""
    s = out_features.shape[0]
    dist = torch.cdist(out_features.transpose(0, 1), ref_features.transpose(0, 1))  # (N, S outputs, S refs)
    own = dist.diagonal(dim1=1, dim2=2)[:, :, None]  # (N, S, 1)
    off = ~torch.eye(s, dtype=torch.bool)
    closer = (own < dist).float() + 0.5 * (own == dist).float()
    return 2 * closer[:, off].mean(1) - 1


@torch.no_grad()
def feature_hallmarks(translate: Translate, judge: Any, sources: Tensor, source_labels: Tensor, reals: Tensor,
                      real_labels: Tensor, latent_dim: int, num_styles: int = 4, seed: int = 0,
                      lpips: torch.nn.Module | None = None, decode: Callable[[Tensor], Tensor] = lambda x: x,
                      batch_size: int = 64) -> dict[str, Any]:
    """``judge_accuracy_ref``, ``ref_retrieval`` and ``latent_diversity`` (and ``lpips_diversity`` with ``lpips``)
    of a multi-domain ``translate``: every source goes to every other domain, guided by ``num_styles`` references
    of that domain drawn from ``reals`` and by ``num_styles`` random codes.

    ``judge``: a :class:`~lit_gans.metrics.judge.Judge` (its ``predict`` and ``style_features``); sources, reals and
    outputs are in the data's space and reach the judge and LPIPS through ``decode`` (a VAE's decoder for latents,
    giving RGB in [-1, 1]). Per target domain (``<key>_domains``, by index) and the mean over domains.
    ``judge_accuracy_ref`` is the fraction of reference-guided outputs the judge assigns to the target domain."""
    if num_styles < 2:
        raise ValueError(f"the hallmarks compare styles: num_styles must be at least 2, got {num_styles}")
    g = torch.Generator().manual_seed(seed)
    domains = sorted(int(d) for d in real_labels.unique())
    keys = ("judge_accuracy_ref", "ref_retrieval", "latent_diversity", "lpips_diversity")
    per: dict[str, dict[int, float]] = {k: {} for k in keys}
    for t in domains:
        x = sources[source_labels != t]
        pool = reals[real_labels == t]
        if not len(x) or len(pool) < 2:
            continue
        real_feats = judge.style_features(decode(pool))
        real_spread = torch.pdist(real_feats).mean()
        hits, retrieved, spread, lp = [], [], [], []
        for xb in x.split(batch_size):
            b = len(xb)
            # num_styles distinct references of domain t per source (repeated when the domain has fewer)
            picks = torch.stack([torch.randperm(len(pool), generator=g)[:num_styles] for _ in range(b)], dim=1)
            picks = picks.repeat((num_styles + len(picks) - 1) // len(picks), 1)[:num_styles]
            ref_out = torch.stack([decode(translate(xb, t, x_ref=pool[p]).cpu()) for p in picks])
            lat_out = torch.stack([decode(translate(xb, t, z=torch.randn(b, latent_dim, generator=g)).cpu())
                                   for _ in range(num_styles)])
            hits.append((judge.predict(ref_out.flatten(0, 1)) == t).float())
            ref_feats = judge.style_features(ref_out.flatten(0, 1)).view(num_styles, b, -1)
            retrieved.append(retrieval(ref_feats, real_feats[picks]))
            spread.append(pairwise_mean(judge.style_features(lat_out.flatten(0, 1)).view(num_styles, b, -1))
                          / real_spread.clamp_min(1e-12))
            if lpips is not None:
                from lit_gans.metrics.diversity import lpips_diversity

                lp.append(lpips_diversity(lpips, lat_out).cpu())
        per["judge_accuracy_ref"][t] = float(torch.cat(hits).mean())
        per["ref_retrieval"][t] = float(torch.cat(retrieved).mean())
        per["latent_diversity"][t] = float(torch.cat(spread).mean())
        if lp:
            per["lpips_diversity"][t] = float(torch.cat(lp).mean())
    out: dict[str, Any] = {}
    for key, values in per.items():
        if values:
            out[key] = sum(values.values()) / len(values)
            out[f"{key}_domains"] = values
    return out

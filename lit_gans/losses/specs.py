"""Loss specs: functions that return ``{name: LossTerm}`` for one model family, and the registry that lets
a Hydra ``loss`` config name them (``loss.spec: stargan_v2``).

A spec gives each term its callable and default weight and tags; the ``loss.terms`` table of the config
overrides weights and tags per term (``loss.terms.G_L1.weight=50``). Every spec declares all the term
names it can produce (over all its sub-specs), so a misspelt name in config is an error, not a no-op.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

from lit_gans.errors import ConfigError
from lit_gans.losses.adversarial import adversarial_loss
from lit_gans.losses.objective import LossTerm, Objective, apply_term_overrides, call_with_known_kwargs
from lit_gans.losses.reconstruction import (
    cycle_consistency_loss,
    diversity_sensitive_loss,
    identity_loss,
    style_reconstruction_loss,
)
from lit_gans.losses.regularizers import r1_penalty

SpecFn = Callable[..., dict[str, LossTerm]]
SPECS: dict[str, SpecFn] = {}


def register_spec(name: str, term_names: tuple[str, ...]) -> Callable[[SpecFn], SpecFn]:
    """Decorator: make a spec function selectable as ``loss.spec: <name>``."""

    def deco(fn: SpecFn) -> SpecFn:
        fn.spec_name = name  # type: ignore[attr-defined]
        fn.term_names = tuple(term_names)  # type: ignore[attr-defined]
        SPECS[name] = fn
        return fn

    return deco


def get_spec(name: str) -> SpecFn:
    try:
        return SPECS[name]
    except KeyError:
        raise ConfigError(f"unknown loss spec {name!r}: registered specs are {', '.join(sorted(SPECS))}") from None


def build_objective(spec: str, terms: Mapping[str, Mapping[str, Any]] | None = None,
                    totals: Mapping[str, str] | None = None, **options: Any) -> Objective:
    """Build an :class:`Objective` from a ``loss`` config block.

    Args:
        spec: registered spec name.
        terms: per-term overrides ``{name: {weight, tags, maximize}}``.
        totals: logged name of each tag's total, e.g. ``{"G": "g_loss"}``.
        options: the rest of the block; the spec receives the keys its signature names
            (``adversarial``, ``subspec``, ``ds_margin`` ...), the others are for other readers.
    """
    fn = get_spec(spec)
    unknown = sorted(set(terms or {}) - set(fn.term_names))  # type: ignore[attr-defined]
    if unknown:
        raise ConfigError(
            f"loss.terms names {unknown} that spec {spec!r} does not have; its terms are "
            f"{', '.join(fn.term_names)}"  # type: ignore[attr-defined]
        )
    spec_terms = call_with_known_kwargs(fn, options)
    return Objective(apply_term_overrides(spec_terms, terms, spec), dict(totals or {}))


STARGAN_V2_TERMS = ("d_adv", "r1", "g_adv", "sty", "ds", "cyc", "id")


@register_spec("stargan_v2", STARGAN_V2_TERMS)
def stargan_v2(adversarial: str = "hinge", ds_margin: float | None = None) -> dict[str, LossTerm]:
    """StarGAN v2's objective as the latent-StarGAN seed defines it.

    ``d_loss = d_adv + w_r1 * gain * r1`` (tag ``D``) and
    ``g_loss = w_adv*g_adv + w_sty*sty + w_cyc*cyc + w_id*id - lambda_ds*ds`` (tag ``G``).
    """
    adv = adversarial_loss(adversarial)
    return {
        "d_adv": LossTerm("d_adv", adv.d, 1.0, ("D",)),
        "r1": LossTerm("r1", r1_penalty, 1.0, ("D",)),
        "g_adv": LossTerm("g_adv", adv.g, 1.0, ("G",)),
        "sty": LossTerm("sty", style_reconstruction_loss, 1.0, ("G",)),
        "ds": LossTerm("ds", partial(diversity_sensitive_loss, margin=ds_margin), 1.0, ("G",), maximize=True),
        "cyc": LossTerm("cyc", cycle_consistency_loss, 1.0, ("G",)),
        "id": LossTerm("id", identity_loss, 0.0, ("G",)),
    }

"""Loss terms as data: named, weighted, tagged callables and the objective that totals them per tag.

A *term* is a name, a callable, a weight and tags (``G``, ``D``, ...). A *spec* is any callable that returns
``dict[str, LossTerm]``. An :class:`Objective` registers terms one by one or from a spec, evaluates them
during a training step, forms the weighted total of each tag group (``objective.total("G")``), and keeps
each term's last value and, for map-producing terms, its last per-pixel loss map.

Weights are plain floats set from config; schedules (a callback) change them through a *gain* that
multiplies the configured weight (``set_gain``), the way StyleGAN2-ADA scales lazy regularisation. A term
whose effective weight is 0 is *inactive*: models skip computing it and it is logged as 0.

Nothing here touches Lightning or synchronises with the device: values stay tensors until a logger reads
them.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import torch
from torch import Tensor

from lit_gans.errors import ConfigError


@dataclass
class LossTerm:
    """One loss term.

    Attributes:
        name: the curve's name (``g_adv``, ``G_L1``, ``G_NCE`` ...).
        fn: returns a 0-dim tensor, or ``(value, map)`` when ``returns_map`` is set (map ``(B, 1, H, W)``).
        weight: multiplies the value in its tag group's total.
        tags: groups the term belongs to; the first is the TensorBoard group it is logged under.
        maximize: the term enters totals with a minus sign (StarGAN v2's diversity term).
        returns_map: ``fn`` also returns a per-pixel loss map, kept as ``Objective.last_maps[name]``.
    """

    name: str
    fn: Callable[..., Any]
    weight: float = 1.0
    tags: tuple[str, ...] = ()
    maximize: bool = False
    returns_map: bool = False

    def __post_init__(self) -> None:
        self.tags = tuple(self.tags)
        self.weight = float(self.weight)


@dataclass
class Objective:
    """Registry and evaluator of loss terms (see the module docstring).

    Args:
        terms: initial terms by name.
        totals: logged name of each tag's weighted total, e.g. ``{"D": "d_loss", "G": "g_loss"}``.
    """

    terms: dict[str, LossTerm] = field(default_factory=dict)
    totals: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.terms = dict(self.terms)
        self.totals = dict(self.totals)
        self._gains: dict[str, float] = {}
        self._values: dict[str, Tensor] = {}
        self._total_values: dict[str, Tensor] = {}
        self.last_values: dict[str, Tensor] = {}
        self.last_maps: dict[str, Tensor] = {}
        self._zero: Tensor | None = None

    # ------------------------------------------------------------------ registration
    def register(self, term: LossTerm) -> None:
        """Add (or replace) one term."""
        self.terms[term.name] = term

    def register_loss(self, name: str, fn: Callable[..., Any], weight: float = 1.0, tags: Iterable[str] = (),
                      **kwargs: Any) -> None:
        """Add a term from its parts (``LossTerm`` fields as keywords)."""
        self.register(LossTerm(name=name, fn=fn, weight=weight, tags=tuple(tags), **kwargs))

    def init_from_spec(self, spec: Callable[..., Mapping[str, LossTerm]], *args: Any, **kwargs: Any) -> None:
        """Replace all terms by those a spec returns (``spec(*args, **kwargs) -> {name: LossTerm}``)."""
        terms = spec(*args, **kwargs)
        for name, term in terms.items():
            if not isinstance(term, LossTerm):
                raise TypeError(f"spec {getattr(spec, '__name__', spec)!r} returned {type(term).__name__} for {name!r}")
        self.terms = {name: replace(term, name=name) for name, term in terms.items()}

    @classmethod
    def from_spec(cls, spec: Callable[..., Mapping[str, LossTerm]], *args: Any,
                  totals: Mapping[str, str] | None = None, **kwargs: Any) -> Objective:
        obj = cls(totals=dict(totals or {}))
        obj.init_from_spec(spec, *args, **kwargs)
        return obj

    # ------------------------------------------------------------------ weights
    def weight(self, name: str) -> float:
        """Effective weight: configured weight times the schedule's gain (0 for unknown terms)."""
        term = self.terms.get(name)
        return 0.0 if term is None else term.weight * self._gains.get(name, 1.0)

    def set_gain(self, name: str, gain: float) -> None:
        """Scale a term's configured weight (schedules: diversity decay, R1 every N steps)."""
        self._require(name)
        self._gains[name] = float(gain)

    def gain(self, name: str) -> float:
        return self._gains.get(name, 1.0)

    def set_weight(self, name: str, weight: float) -> None:
        self._require(name).weight = float(weight)

    def active(self, name: str) -> bool:
        """Whether the term exists and has a non-zero effective weight (worth computing this step)."""
        return self.weight(name) != 0.0

    def tags(self) -> list[str]:
        """All tags in registration order."""
        seen: dict[str, None] = {}
        for term in self.terms.values():
            seen.update(dict.fromkeys(term.tags))
        return list(seen)

    # ------------------------------------------------------------------ evaluation
    def start_step(self) -> None:
        """Forget the previous step's values (call at the top of ``training_step``)."""
        self._values = {}
        self._total_values = {}

    def compute(self, name: str, *args: Any, **kwargs: Any) -> Tensor:
        """Evaluate a term's callable, record its value for this step and return it.

        Evaluating the same term several times in one step records their sum (StarGAN v2's terms are the
        sum of a reference path and a latent path).
        """
        term = self._require(name)
        out = term.fn(*args, **kwargs)
        if term.returns_map:
            out, loss_map = out
            self.last_maps[name] = loss_map.detach()
        self.add(name, out)
        return out

    def add(self, name: str, value: Tensor) -> Tensor:
        """Record a value computed elsewhere for this step (summed with earlier ones of the same step)."""
        self._require(name)
        self._values[name] = self._values[name] + value if name in self._values else value
        self.last_values[name] = self._values[name].detach()
        return self._values[name]

    def fn(self, name: str) -> Callable[..., Any]:
        """A term's callable (to combine several calls before recording with :meth:`add`)."""
        return self._require(name).fn

    def computed(self) -> set[str]:
        """Names of the terms evaluated this step (a lazy regulariser is not, on most steps)."""
        return set(self._values)

    def value(self, name: str) -> Tensor:
        """This step's raw (unweighted) value of a term."""
        return self._values[name]

    def total(self, tag: str) -> Tensor:
        """Weighted sum of this step's values of the terms tagged ``tag`` (maximised terms subtracted)."""
        parts = []
        for name, value in self._values.items():
            term = self.terms[name]
            w = self.weight(name)
            if tag in term.tags and w != 0.0:
                parts.append(value * (-w if term.maximize else w))
        if not parts:
            raise RuntimeError(f"no active loss term tagged {tag!r} was computed this step")
        total = parts[0]
        for p in parts[1:]:
            total = total + p
        self._total_values[tag] = total.detach()
        return total

    def scalars(self) -> dict[str, Tensor]:
        """This step's values for logging, as ``{"<tag>/<name>": tensor}``: every term (0 when it was not
        computed) and each tag's total under its name in ``totals``. Detached; no host sync."""
        zero = self._zero_like()
        out: dict[str, Tensor] = {}
        for tag, total_name in self.totals.items():
            if tag in self._total_values:
                out[f"{tag}/{total_name}"] = self._total_values[tag]
        for name, term in self.terms.items():
            group = term.tags[0] if term.tags else "loss"
            value = self._values.get(name)
            out[f"{group}/{name}"] = zero if value is None else value.detach()
        return out

    # ------------------------------------------------------------------ copying
    def __getstate__(self) -> dict[str, Any]:
        """Copies and pickles leave out the current step's values (they hold autograd graphs)."""
        state = self.__dict__.copy()
        state["_values"], state["_total_values"] = {}, {}
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    # ------------------------------------------------------------------ helpers
    def _zero_like(self) -> Tensor:
        ref = next(iter(self._values.values()), None)
        if ref is None:
            return torch.zeros(())
        if self._zero is None or self._zero.device != ref.device:
            self._zero = torch.zeros((), device=ref.device)
        return self._zero

    def _require(self, name: str) -> LossTerm:
        try:
            return self.terms[name]
        except KeyError:
            raise KeyError(f"no loss term {name!r}; registered: {', '.join(self.terms) or 'none'}") from None


def apply_term_overrides(terms: dict[str, LossTerm], overrides: Mapping[str, Mapping[str, Any]] | None,
                         spec_name: str) -> dict[str, LossTerm]:
    """Apply config overrides ``{name: {weight, tags, maximize}}`` to a spec's terms.

    Names in ``overrides`` that the spec does not define are ignored when they belong to another sub-spec
    (config lists every term a spec can have, so a weight can be set before the sub-spec that uses it is
    chosen); the caller validates names against the full spec.
    """
    out = dict(terms)
    for name, fields in (overrides or {}).items():
        if name not in out:
            continue
        allowed = {"weight", "tags", "maximize"}
        unknown = set(fields) - allowed
        if unknown:
            raise ConfigError(
                f"loss.terms.{name} has unknown field(s) {sorted(unknown)}: a term takes {sorted(allowed)}"
            )
        kw: dict[str, Any] = {}
        if fields.get("weight") is not None:
            kw["weight"] = float(fields["weight"])
        if fields.get("tags") is not None:
            kw["tags"] = tuple(fields["tags"])
        if fields.get("maximize") is not None:
            kw["maximize"] = bool(fields["maximize"])
        out[name] = replace(out[name], **kw)
    return out


def call_with_known_kwargs(fn: Callable[..., Any], options: Mapping[str, Any]) -> Any:
    """Call ``fn`` with the subset of ``options`` its signature names (config blocks carry keys for
    callbacks and other readers too)."""
    params = inspect.signature(fn).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return fn(**options)
    return fn(**{k: v for k, v in options.items() if k in params})

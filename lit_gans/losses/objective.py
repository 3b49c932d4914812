"""Loss terms as data: each term is declared once, with its name, its function, the group it is logged and
totalled under, its sign, and the ``loss`` config key that weights it; an :class:`Objective` evaluates them during a
training step, forms the weighted total of each group (``objective.total("G")``), and keeps each term's last
per-pixel loss map when it makes one.

A model family declares its terms in a *spec*: a function whose parameters are the family's ``loss`` config keys
(with their defaults) and which returns the list of :class:`LossTerm` (``lit_gans.losses.stargan_spec`` ...).
:func:`make_objective` calls it with the ``loss`` config block, so adding a term is one :class:`LossTerm` in the
spec (with a new parameter for its weight key) plus one line in the family's ``conf/loss/<family>.yaml``.

Schedules (a callback) change weights through a *gain* that multiplies the configured weight (``set_gain``), the
way StyleGAN2-ADA scales lazy regularisation. A term whose effective weight is 0 is *inactive*: models skip its
gradient work, and it is logged as 0 unless the model records its value anyway.

Nothing here touches Lightning or synchronises with the device: values stay tensors until a logger reads them.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from lit_gans.errors import ConfigError

Weight = float | str | Callable[[Mapping[str, Any]], float]


@dataclass
class LossTerm:
    """One loss term.

    Attributes:
        name: the curve's name (``g_adv``, ``G_L1``, ``G_NCE`` ...).
        fn: returns a 0-dim tensor, or ``(value, map)`` when ``returns_map`` is set (map ``(B, 1, H, W)``).
        weight: multiplies the value in its group's total: a number, the name of the ``loss`` config key that
            sets it (``"w_sty"``), or a function of the spec's keys (CycleGAN's identity weight
            ``lambda_B * lambda_identity``).
        group: the total it enters and the TensorBoard group it is logged under (``D``, ``G`` ...).
        maximize: the term enters its total with a minus sign (StarGAN v2's diversity term).
        returns_map: ``fn`` also returns a per-pixel loss map, kept as ``Objective.last_maps[name]``.
    """

    name: str
    fn: Callable[..., Any]
    weight: Weight = 1.0
    group: str = "loss"
    maximize: bool = False
    returns_map: bool = False


def spec_keys(spec: Callable[..., Any]) -> dict[str, Any]:
    """The ``loss`` config keys a spec takes, with their defaults."""
    return {name: p.default for name, p in inspect.signature(spec).parameters.items()
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}


def make_objective(spec: Callable[..., Iterable[LossTerm]], loss: Mapping[str, Any] | None = None,
                   totals: Mapping[str, str] | None = None, model_args: Mapping[str, Any] | None = None,
                   other_keys: Iterable[str] = ()) -> Objective:
    """The :class:`Objective` of ``spec`` for a ``loss`` config block.

    Args:
        spec: the model family's terms (see the module docstring).
        loss: the ``loss`` config block: values of the spec's keys. A key that neither the spec nor
            ``other_keys`` knows is a one-line :class:`ConfigError` (a preset of another model family, a typo).
        totals: logged name of each group's total, e.g. ``{"D": "d_loss", "G": "g_loss"}``.
        model_args: spec arguments that come from the model, not from the ``loss`` block (its discriminators).
        other_keys: further ``loss`` keys read elsewhere (schedules: ``ds_decay_epochs``, ``r1_interval``).
    """
    keys = spec_keys(spec)
    loss = dict(loss or {})
    model_args = dict(model_args or {})
    unknown = sorted(set(loss) - set(keys) - set(other_keys) - set(model_args))
    if unknown:
        known = sorted(k for k in [*keys, *other_keys] if k not in model_args)
        raise ConfigError(f"loss.{unknown[0]} is not a key of this model's objective ({getattr(spec, '__name__', spec)}"
                          f"; its keys: {', '.join(known)}): use the model's own loss preset or fix the key")
    values = {**keys, **{k: v for k, v in loss.items() if k in keys}, **model_args}
    missing = [k for k, v in values.items() if v is inspect.Parameter.empty]
    if missing:
        raise ConfigError(f"loss.{missing[0]} is required by {getattr(spec, '__name__', spec)}")
    return Objective(list(spec(**values)), dict(totals or {}), values)


@dataclass
class Objective:
    """Evaluator of a family's loss terms (see the module docstring).

    Args:
        terms: the terms (see :class:`LossTerm`).
        totals: logged name of each group's total, e.g. ``{"D": "d_loss", "G": "g_loss"}``.
        config: the values of the spec's keys, which the terms' weights name.
    """

    terms: list[LossTerm] | dict[str, LossTerm] = field(default_factory=dict)
    totals: dict[str, str] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        terms = self.terms.values() if isinstance(self.terms, Mapping) else self.terms
        self.terms = {t.name: t for t in terms}
        self.totals = dict(self.totals)
        self._base: dict[str, float] = {n: self._resolve(t) for n, t in self.terms.items()}
        self._gains: dict[str, float] = {}
        self._values: dict[str, Tensor] = {}
        self._total_values: dict[str, Tensor] = {}
        self.last_maps: dict[str, Tensor] = {}
        self._zero: Tensor | None = None

    def _resolve(self, term: LossTerm) -> float:
        w = term.weight
        if isinstance(w, str):
            try:
                return float(self.config[w])
            except KeyError:
                raise ConfigError(f"loss term {term.name} is weighted by loss.{w}, which is not set") from None
        return float(w(self.config)) if callable(w) else float(w)

    # ------------------------------------------------------------------ weights
    def weight(self, name: str) -> float:
        """Effective weight: configured weight times the schedule's gain (0 for unknown terms)."""
        return self._base[name] * self._gains.get(name, 1.0) if name in self.terms else 0.0

    def set_gain(self, name: str, gain: float) -> None:
        """Scale a term's configured weight (schedules: diversity decay, R1 every N steps)."""
        self._require(name)
        self._gains[name] = float(gain)

    def switch_off(self, name: str) -> None:
        """Weight 0 for a term whose inputs the run does not have (a model without masks)."""
        self._require(name)
        self._base[name] = 0.0

    def active(self, name: str) -> bool:
        """Whether the term exists and has a non-zero effective weight (worth computing this step)."""
        return self.weight(name) != 0.0

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

    def total(self, group: str) -> Tensor:
        """Weighted sum of this step's values of the terms of ``group`` (maximised terms subtracted)."""
        parts = []
        for name, value in self._values.items():
            term = self.terms[name]
            w = self.weight(name)
            if term.group == group and w != 0.0:
                parts.append(value * (-w if term.maximize else w))
        if not parts:
            raise RuntimeError(f"no active loss term of group {group!r} was computed this step")
        total = parts[0]
        for p in parts[1:]:
            total = total + p
        self._total_values[group] = total.detach()
        return total

    def scalars(self) -> dict[str, Tensor]:
        """This step's values for logging, as ``{"<group>/<name>": tensor}``: every term (0 when it was not
        computed) and each group's total under its name in ``totals``. Detached; no host sync."""
        zero = self._zero_like()
        out: dict[str, Tensor] = {}
        for group, total_name in self.totals.items():
            if group in self._total_values:
                out[f"{group}/{total_name}"] = self._total_values[group]
        for name, term in self.terms.items():
            value = self._values.get(name)
            out[f"{term.group}/{name}"] = zero if value is None else value.detach()
        return out

    def curve_names(self) -> list[str]:
        """``<group>/<name>`` of every total and term, as :meth:`scalars` names them."""
        return [f"{g}/{t}" for g, t in self.totals.items()] + [f"{t.group}/{n}" for n, t in self.terms.items()]

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

"""Patterns in a run's curves worth a look, each a rule with a ``check(run) -> [Finding]``.

Rules read epoch means (and per-step values for non-finite checks). Their thresholds are attributes, so a
caller can make a rule stricter or looser: ``HingeDFlat(epochs=10)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lit_gans.curves.reading import Curve, Run


@dataclass(frozen=True)
class Finding:
    rule: str
    run: str
    curve: str
    message: str
    severity: str = "warn"  # warn | info

    def __str__(self) -> str:
        return f"[{self.severity}] {self.run}: {self.curve}: {self.message}"


def _finite(c: Curve) -> tuple[np.ndarray, np.ndarray]:
    ok = np.isfinite(c.means)
    return c.epochs[ok], c.means[ok]


def _thirds(values: np.ndarray) -> tuple[float, float]:
    """Means of the first and last third (at least one point each)."""
    k = max(1, len(values) // 3)
    return float(values[:k].mean()), float(values[-k:].mean())


@dataclass
class HingeDFlat:
    """The hinge discriminator loss stays near 2 (``|mean - 2| <= tolerance``) for ``epochs`` consecutive
    epochs or more: D's logits stay inside the margin, it is not learning to separate real from fake."""

    epochs: int = 5
    tolerance: float = 0.1
    name: str = "hinge_d_flat"

    def check(self, run: Run) -> list[Finding]:
        adversarial = run.loss_option("adversarial")
        if adversarial not in (None, "hinge"):
            return []
        c = run.find("d_adv", "d_loss")  # d_adv is d_loss without R1: the pure hinge value
        if c is None:
            return []
        epochs, means = _finite(c)
        near = np.abs(means - 2.0) <= self.tolerance
        best, start, cur = 0, 0, 0
        for i, flag in enumerate(near):
            cur = cur + 1 if flag else 0
            if cur > best:
                best, start = cur, i - cur + 1
        if best < self.epochs:
            return []
        part = "d_loss" if c.short == "d_loss" else "d_loss (its hinge part d_adv)"
        return [Finding(self.name, run.label, c.name,
                        f"{part} stayed within 2 ± {self.tolerance} for {best} epochs (epochs {epochs[start]}-"
                        f"{epochs[start + best - 1]}): D's logits sit near 0, inside the hinge margin, so D is "
                        "barely separating real from fake. Check the grids; consider D's learning rate and w_r1.")]


@dataclass
class DiversityOff:
    """``lambda_ds`` reached 0: from then on the diversity term no longer acts (and ``ds`` is not computed)."""

    name: str = "lambda_ds_zero"

    def check(self, run: Run) -> list[Finding]:
        c = run.find("lambda_ds")
        if c is None:
            return []
        epochs, means = _finite(c)
        zero = np.flatnonzero(means <= 1e-12)
        if not zero.size:
            return []
        if zero[0] == 0:
            return [Finding(self.name, run.label, c.name, "lambda_ds is 0 from the first epoch: the diversity term "
                            "is off in this run (w_ds = 0).", "info")]
        return [Finding(self.name, run.label, c.name,
                        f"lambda_ds reached 0 at epoch {int(epochs[zero[0]])}: from there on the diversity term ds "
                        "no longer pushes G (ds_decay_epochs); later changes in g_loss are not from diversity.",
                        "info")]


@dataclass
class R1Growing:
    """``r1`` grows: the mean of the last third of the epochs is at least ``factor`` times that of the first
    third and most epoch-to-epoch changes (``share``) are increases; needs ``min_epochs`` epochs."""

    factor: float = 2.0
    share: float = 0.6
    min_epochs: int = 4
    name: str = "r1_growing"

    def check(self, run: Run) -> list[Finding]:
        c = run.find("r1")
        if c is None:
            return []
        epochs, means = _finite(c)
        if len(means) < self.min_epochs:
            return []
        early, late = _thirds(means)
        rising = float((np.diff(means) > 0).mean())
        if early <= 0 or late < self.factor * early or rising < self.share:
            return []
        return [Finding(self.name, run.label, c.name,
                        f"r1 grew {late / early:.1f}x from epochs {epochs[0]}-{epochs[len(means) // 3]} to the last "
                        f"ones: D's gradients at real data keep getting steeper (D sharpening or overfitting, often "
                        "before a collapse). Consider a larger w_r1 or a lower D learning rate.")]


@dataclass
class NonFinite:
    """A NaN or Inf in any curve (epoch mean or per-step value)."""

    name: str = "non_finite"

    def check(self, run: Run) -> list[Finding]:
        out = []
        for c in run.curves.values():
            bad_steps = np.flatnonzero(~np.isfinite(c.values))
            bad_epochs = np.flatnonzero(~np.isfinite(c.means))
            if bad_steps.size:
                where = f"first at step {int(c.steps[bad_steps[0]])} (epoch {int(c.step_epochs[bad_steps[0]])})"
            elif bad_epochs.size:
                where = f"first in the mean of epoch {int(c.epochs[bad_epochs[0]])}"
            else:
                continue
            out.append(Finding(self.name, run.label, c.name,
                               f"non-finite values (NaN/Inf), {where}: training diverged there; resume from an "
                               "earlier checkpoint with a lower learning rate, or check the data and precision."))
        return out


@dataclass
class TotalsDiverging:
    """The generator and discriminator totals move apart: from the first to the last third of the epochs one
    rises and the other falls, each by at least ``change`` of its early level (relative), and their gap
    at least doubles. Needs ``min_epochs`` epochs."""

    change: float = 0.3
    min_epochs: int = 6
    name: str = "totals_diverging"

    def check(self, run: Run) -> list[Finding]:
        g, d = run.find("g_loss", "G_tot"), run.find("d_loss", "D_tot")
        if g is None or d is None:
            return []
        common = np.intersect1d(g.epochs[np.isfinite(g.means)], d.epochs[np.isfinite(d.means)])
        if len(common) < self.min_epochs:
            return []
        gv = np.asarray([g.means[g.epochs == e][0] for e in common])
        dv = np.asarray([d.means[d.epochs == e][0] for e in common])
        (g0, g1), (d0, d1) = _thirds(gv), _thirds(dv)
        rel_g = (g1 - g0) / max(abs(g0), 1e-8)
        rel_d = (d1 - d0) / max(abs(d0), 1e-8)
        gap0, gap1 = abs(g0 - d0), abs(g1 - d1)
        if rel_g * rel_d >= 0 or min(abs(rel_g), abs(rel_d)) < self.change or gap1 < 2 * max(gap0, 1e-8):
            return []
        winner = "D is winning (fakes easy to spot)" if rel_d < 0 else "G is winning or D has stopped learning"
        return [Finding(self.name, run.label, f"{g.name} vs {d.name}",
                        f"{g.short} went {g0:.3g} -> {g1:.3g} while {d.short} went {d0:.3g} -> {d1:.3g} "
                        f"(first vs last third of epochs {common[0]}-{common[-1]}): {winner}. Look at the grids "
                        "and the adversarial terms; rebalance learning rates or regularisation.")]


RULES = (HingeDFlat(), DiversityOff(), R1Growing(), NonFinite(), TotalsDiverging())


def check_run(run: Run, rules=RULES) -> list[Finding]:
    """Every finding of ``rules`` on ``run``."""
    return [f for rule in rules for f in rule.check(run)]

"""The ensemble's statistics, pure numpy: bootstrap draws of whole mixture groups, the combinations
cross-validation chooses among, and the spread that becomes a prediction's uncertainty.

:class:`regmix_megatron.regression.models.EnsembleRegressor` is the model built from these; this module knows
nothing of regressors (it scores arrays of out-of-fold predictions), so the choice is testable on its own.

- Groups: rows with identical mixtures (noise-seed repeats, runs re-trained under new ids) form one group
  (:func:`regmix_megatron.regression.data.mixture_groups`); folds (:func:`~regmix_megatron.regression.data.kfold_indices`)
  and bootstrap draws take or leave a group whole, so no mixture is on both sides of a fold and a repeated
  mixture is never split across a resample.
- Combinations: every non-empty subset of the members averaged with equal weights (``mean``), and one convex
  stack (``stacked``: non-negative weights summing to 1, fit by least squares on out-of-fold predictions). Each
  is scored by the Spearman correlation of its out-of-fold predictions with the runs' values; the stack's weights
  are themselves cross-fitted for scoring (fit on the other folds' out-of-fold predictions, applied to the held-out
  fold), so it is not scored on the rows it was fit on. The choice among the candidates is still a choice on the
  same rows: the ensemble's reported CV Spearman comes from nested CV (each outer fold's ensemble makes its own
  choice on its own training runs), never from these scores.
- Uncertainty of a prediction: ``sd_members`` (weighted spread of the members' predictions around the ensemble's
  mean: where the model families disagree, a stand-in for the bias a bootstrap cannot see) and ``sd_bootstrap``
  (spread of the ensemble's prediction over refits on group-bootstrap resamples of the runs: the estimation
  variance), combined as ``sd = sqrt(sd_members**2 + sd_bootstrap**2)``.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Literal, Mapping, Sequence

import numpy as np

from ..errors import RegmixError
from .metrics import spearman

#: The rules a combination can follow.
RULES = ("mean", "stacked")
#: Members an ensemble may draw on, in preference order (ties go to the earlier, then to fewer members).
MEMBER_KINDS = ("lightgbm", "quadratic", "linear")
#: Bootstrap refits of every member (the spread of the ensemble over them is ``sd_bootstrap``).
DEFAULT_NUM_BOOTSTRAP = 10
#: Folds of the cross-validation that chooses the members.
DEFAULT_NUM_FOLDS = 5
#: A stacked member whose weight falls below this is dropped (its weight is noise, its refits cost time).
MIN_STACK_WEIGHT = 0.02


def group_bootstrap(groups: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Row indices of one bootstrap resample: as many groups as there are, drawn with replacement, each drawn group
    contributing all its rows (a mixture's repeats stay together)."""
    groups = np.asarray(groups)
    ids, inverse = np.unique(groups, return_inverse=True)
    rows_of = [np.flatnonzero(inverse == i) for i in range(ids.size)]
    drawn = rng.integers(0, ids.size, size=ids.size)
    return np.concatenate([rows_of[g] for g in drawn])


@dataclass(frozen=True)
class Combination:
    """How the members' predictions combine: weights per member kind (summing to 1) and its CV score."""

    rule: Literal["mean", "stacked"]
    weights: Mapping[str, float]
    """Member kind -> weight, in :data:`MEMBER_KINDS` order, every weight > 0."""
    spearman: float = float("nan")
    """Spearman correlation of its out-of-fold predictions with the runs' values (what chose it)."""

    def combine(self, predictions: Mapping[str, np.ndarray]) -> np.ndarray:
        """The weighted sum of the members' predictions, always summed in the same order."""
        total = np.zeros_like(np.asarray(predictions[next(iter(self.weights))], dtype=np.float64))
        for kind, w in self.weights.items():
            total += w * np.asarray(predictions[kind], dtype=np.float64)
        return total

    def to_json(self) -> dict:
        return {"rule": self.rule, "weights": {k: float(w) for k, w in self.weights.items()},
                "cv_spearman": None if not np.isfinite(self.spearman) else float(self.spearman)}

    @classmethod
    def from_json(cls, obj: Mapping) -> "Combination":
        rule, weights = obj["rule"], {str(k): float(v) for k, v in obj["weights"].items()}
        if rule not in RULES or not weights or any(w <= 0 for w in weights.values()):
            raise ValueError(f"combination {dict(obj)} is not one this tool writes")
        spear = obj.get("cv_spearman")
        return cls(rule, weights, float("nan") if spear is None else float(spear))


def convex_weights(predictions: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Least-squares weights of the columns of ``predictions`` (runs x members), non-negative and summing to 1
    (non-negative least squares with the sum enforced by a heavily weighted extra row); weights below
    :data:`MIN_STACK_WEIGHT` are set to 0 and the rest rescaled."""
    from scipy.optimize import nnls

    p = np.asarray(predictions, dtype=np.float64)
    scale = 1e3 * max(1.0, float(np.abs(p).max()), float(np.abs(y).max()))
    a = np.vstack([p, np.full((1, p.shape[1]), scale)])
    w, _ = nnls(a, np.append(np.asarray(y, dtype=np.float64), scale))
    w = np.clip(w, 0.0, None)
    w = w / w.sum() if w.sum() > 0 else np.full(p.shape[1], 1.0 / p.shape[1])
    w[w < MIN_STACK_WEIGHT] = 0.0
    return w / w.sum()


def candidate_combinations(oof: Mapping[str, np.ndarray], y: np.ndarray, folds: Sequence[np.ndarray]
                           ) -> list[Combination]:
    """Every equal-weight subset of the members, and the cross-fitted convex stack of all of them, each scored
    by the Spearman correlation of its out-of-fold predictions (``oof``: member kind -> predictions of every run
    by a model that did not see it)."""
    kinds = [k for k in MEMBER_KINDS if k in oof] + [k for k in oof if k not in MEMBER_KINDS]
    y = np.asarray(y, dtype=np.float64)
    out = []
    for size in range(1, len(kinds) + 1):
        for subset in itertools.combinations(kinds, size):
            comb = Combination("mean", {k: 1.0 / size for k in subset})
            out.append(Combination("mean", comb.weights, _score(y, comb.combine(oof))))
    if len(kinds) >= 2:
        p = np.column_stack([oof[k] for k in kinds])
        crossed = np.empty_like(y)
        for held in folds:
            keep = np.setdiff1d(np.arange(y.size), held)
            crossed[held] = p[held] @ convex_weights(p[keep], y[keep])
        w = convex_weights(p, y)
        weights = {k: float(v) for k, v in zip(kinds, w) if v > 0}
        total = sum(weights.values())
        out.append(Combination("stacked", {k: v / total for k, v in weights.items()}, _score(y, crossed)))
    return out


def _score(y: np.ndarray, pred: np.ndarray) -> float:
    rho = spearman(y, pred)
    return rho if np.isfinite(rho) else -np.inf


def choose_combination(candidates: Sequence[Combination]) -> Combination:
    """The highest Spearman; ties (to 1e-12) go to fewer members, then to the equal mean, then to the earlier
    kinds of :data:`MEMBER_KINDS`."""
    if not candidates:
        raise RegmixError("ensemble: no candidate combination to choose from")
    rank = {k: i for i, k in enumerate(MEMBER_KINDS)}

    def key(c: Combination):
        return (-round(c.spearman, 12), len(c.weights), RULES.index(c.rule),
                [rank.get(k, len(rank)) for k in c.weights])

    return min(candidates, key=key)


@dataclass(frozen=True)
class Spread:
    """A prediction's uncertainty and its two parts (each None where it cannot be measured)."""

    sd: np.ndarray | None
    sd_members: np.ndarray | None = None
    sd_bootstrap: np.ndarray | None = None


def spread(combination: Combination, members: Mapping[str, np.ndarray],
           bootstrap: Sequence[Mapping[str, np.ndarray]] = ()) -> Spread:
    """Uncertainty of ``combination``'s prediction from its members' predictions on all runs (``members``) and on
    each bootstrap refit (``bootstrap``): ``sd_members`` needs 2 members, ``sd_bootstrap`` 2 refits."""
    sd_members = sd_bootstrap = None
    if len(combination.weights) >= 2:
        mean = combination.combine(members)
        var = sum(w * (np.asarray(members[k], dtype=np.float64) - mean) ** 2
                  for k, w in combination.weights.items())
        sd_members = np.sqrt(var)
    if len(bootstrap) >= 2:
        sd_bootstrap = np.std(np.stack([combination.combine(b) for b in bootstrap]), axis=0, ddof=1)
    parts = [p for p in (sd_members, sd_bootstrap) if p is not None]
    sd = np.sqrt(sum(p ** 2 for p in parts)) if parts else None
    return Spread(sd, sd_members, sd_bootstrap)


@dataclass
class Selection:
    """What cross-validation saw when it chose the combination (recorded in the model file and ``metrics.json``)."""

    num_folds: int
    seed: int
    candidates: list[Combination] = field(default_factory=list)
    chosen: Combination | None = None

    def to_json(self) -> dict:
        return {"num_folds": self.num_folds, "seed": self.seed,
                "chosen": None if self.chosen is None else self.chosen.to_json(),
                "candidates": [c.to_json() for c in self.candidates]}

"""The confirmation round: before any full-scale run, the few best distinct candidates are trained at proxy scale
with several seeds, and the measured best, within noise, becomes the pick.

The regression's pick is a prediction. The sweep also *measured* mixtures: the best single domains and the best
sweep mixtures, each with one seed. A tool that handed over its prediction when a mixture it had measured was better
beyond noise would hand over a worse mixture than one it knew. So the candidates (:func:`choose_candidates`):

- ``regmix``: the search's pick (the top-k average);
- ``top1``: the single best candidate of the search's pool;
- ``best_domain:<name>``: the best single-domain sweep mixtures by their proxy target loss;
- ``best_sweep:<run id>``: the best sampled sweep mixtures by their proxy target loss;

distinct by hash (a candidate equal to an earlier one is dropped), are trained with the same proxy recipe and
``seeds`` (at least two), and :func:`decide` compares each with ``regmix`` on the selection split (validation),
in units of the combined sd (seed noise and the paired document bootstrap, :mod:`.document_noise`):

- if no candidate is better than ``regmix`` beyond ``threshold_sd``, the pick stays ``regmix``;
- otherwise the candidate with the lowest measured mean becomes the pick.

The test split is never looked at: it judges the pick later, at full scale.

Pure core: numpy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Sequence, TypeVar

import numpy as np

from ..errors import ConfigError, DataError
from ..regression.target import Target
from ..runs.noise import pooled_seed_sd, seed_stats
from .document_noise import Runs, combine, document_bootstrap
from .verdict import DEFAULT_THRESHOLD_SD

PICK = "regmix"
TOP1 = "top1"
BEST_DOMAIN = "best_domain"
BEST_SWEEP = "best_sweep"

T = TypeVar("T")  # a trained thing with a content hash: a Mixture or a Schedule


def choose_candidates(pick: T, top1: T | None, sweep: Sequence[T], sweep_values: Sequence[float],
                      single_domain: Sequence[bool], sweep_ids: Sequence[str], *, num_domains: int = 2,
                      num_sweep: int = 2) -> dict[str, T]:
    """Label -> candidate, in order: ``regmix``, ``top1``, the ``num_domains`` best single-domain sweep entries
    and the ``num_sweep`` best sampled ones (lowest ``sweep_values``, the proxy target loss on the selection split;
    ties by position). A candidate whose hash an earlier one has is left out."""
    if not (len(sweep) == len(sweep_values) == len(single_domain) == len(sweep_ids)):
        raise ValueError("choose_candidates: sweep, sweep_values, single_domain and sweep_ids differ in length")
    out: dict[str, T] = {PICK: pick}
    seen = {pick.hash}

    def add(label: str, item: T) -> None:
        if item.hash not in seen:
            out[label] = item
            seen.add(item.hash)

    if top1 is not None:
        add(TOP1, top1)
    values = np.asarray(sweep_values, dtype=np.float64)
    order = [int(i) for i in np.argsort(values, kind="stable") if math.isfinite(values[i])]
    singles = [i for i in order if single_domain[i]][:num_domains]
    sampled = [i for i in order if not single_domain[i]][:num_sweep]
    for i in singles:
        add(f"{BEST_DOMAIN}:{_single_domain_name(sweep[i])}", sweep[i])
    for i in sampled:
        add(f"{BEST_SWEEP}:{sweep_ids[i]}", sweep[i])
    return out


def _single_domain_name(item) -> str:
    weights = item.overall().as_dict() if hasattr(item, "overall") else item.as_dict()
    return max(weights, key=lambda d: weights[d])


@dataclass(frozen=True)
class CandidateOutcome:
    """One candidate measured: its per-seed selection losses and its comparison with the pick."""

    label: str
    losses: Mapping[int, float]
    mean: float
    difference: float | None
    """``mean(regmix) - mean(this)``: positive when this candidate is better (lower loss); None for the pick."""
    noise: Mapping | None
    """The comparison's sd by part (:class:`.document_noise.NoiseOfDifference` as JSON); None for the pick."""
    num_sd: float | None
    better_than_pick: bool

    def to_json(self) -> dict:
        return {"label": self.label, "losses": {str(s): v for s, v in sorted(self.losses.items())},
                "mean": self.mean, "pick_minus_candidate": self.difference, "noise": self.noise,
                "num_sd": self.num_sd, "better_than_pick": self.better_than_pick}


@dataclass(frozen=True)
class Decision:
    """What the confirmation round measured and which candidate it hands on."""

    chosen: str
    reason: str
    outcomes: tuple[CandidateOutcome, ...]
    pooled_seed_sd: float | None
    seed_dof: int
    threshold_sd: float

    def to_json(self) -> dict:
        return {"chosen": self.chosen, "reason": self.reason, "threshold_sd": self.threshold_sd,
                "pooled_seed_sd": self.pooled_seed_sd, "seed_dof": self.seed_dof,
                "candidates": [o.to_json() for o in self.outcomes]}


def decide(losses: Mapping[str, Mapping[int, float]], documents: Mapping[str, Runs] | None, target: Target, *,
           threshold_sd: float = DEFAULT_THRESHOLD_SD, num_draws: int = 2000, seed: int = 0) -> Decision:
    """Choose among measured candidates (label -> seed -> selection loss; ``regmix`` among them).

    ``documents`` (label -> its runs' per-document losses on the selection split, one per seed) adds the document
    noise of each comparison (the paired bootstrap); without it only the seed noise counts. A candidate better than the pick
    beyond ``threshold_sd`` combined sd hands the pick to the lowest measured mean."""
    if threshold_sd <= 0:
        raise ConfigError(f"threshold_sd={threshold_sd}: use a positive number of sd")
    if PICK not in losses:
        raise DataError(f"confirmation: no measured losses of {PICK!r} (candidates: {sorted(losses)})")
    few = sorted(label for label, by_seed in losses.items() if len(by_seed) < 2)
    if few:
        raise DataError(f"confirmation: {few} measured with fewer than 2 seeds; train each candidate with at least "
                        "2 seeds so its seed noise is measured")
    pooled, dof = pooled_seed_sd([list(v.values()) for v in losses.values()])
    pick_mean = seed_stats(losses[PICK]).mean
    outcomes = [CandidateOutcome(PICK, dict(losses[PICK]), pick_mean, None, None, None, False)]
    for label, by_seed in losses.items():
        if label == PICK:
            continue
        mean = seed_stats(by_seed).mean
        draws = None
        if documents is not None:
            draws = document_bootstrap(documents[PICK], documents[label], target, num_draws=num_draws, seed=seed)
        noise = combine(pooled, len(losses[PICK]), len(by_seed), draws)
        combined = noise.combined_sd
        num_sd = None if not combined else (pick_mean - mean) / combined
        better = num_sd is not None and num_sd > threshold_sd
        outcomes.append(CandidateOutcome(label, dict(by_seed), mean, pick_mean - mean, noise.to_json(), num_sd,
                                         better))
    winners = [o for o in outcomes if o.better_than_pick]
    if not winners:
        chosen, reason = PICK, (f"no candidate is better than the search's pick by more than {threshold_sd:g} "
                                "combined sd on the selection split: the pick stands")
    else:
        best = min(outcomes, key=lambda o: (o.mean, o.label))
        chosen = best.label
        reason = (f"{', '.join(o.label for o in winners)} better than the search's pick by more than "
                  f"{threshold_sd:g} combined sd; the lowest measured mean, {best.label} ({best.mean:.4f} against "
                  f"{pick_mean:.4f}), becomes the pick")
    return Decision(chosen, reason, tuple(outcomes), pooled, dof, threshold_sd)

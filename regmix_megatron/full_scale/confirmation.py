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

The round's record is ``confirm/confirmation.json`` (:class:`Confirmation`, format :data:`FORMAT`), written by
:func:`write_confirmation` and read back, typed, by :func:`read_confirmation`: the target and split, the seeds, each
candidate's mixture and runs, and the :class:`Decision` (per-seed losses, each comparison's noise by part, the
chosen label and why).

Pure core: numpy.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence, TypeVar

import numpy as np

from ..configs import Field
from ..errors import ConfigError, DataError
from ..fileio import atomic_write_json, file_or_in_folder, read_json
from ..regression.target import Target
from ..runs.noise import pooled_seed_sd, seed_stats
from .document_noise import Runs, combine, document_bootstrap
from .verdict import DEFAULT_THRESHOLD_SD

PICK = "regmix"
TOP1 = "top1"
BEST_DOMAIN = "best_domain"
BEST_SWEEP = "best_sweep"

#: ``confirm/confirmation.json``: the round's record.
FILE_NAME = "confirmation.json"
FORMAT = "regmix-megatron/confirmation/v1"
#: The split the round compares on: the selection split (the test split judges the pick later).
SPLIT = "valid"

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

    @classmethod
    def from_json(cls, doc: Field) -> "CandidateOutcome":
        noise = doc["noise"].value
        return cls(label=doc["label"].text(), losses=_by_seed(doc["losses"], Field.number),
                   mean=doc["mean"].number(), difference=doc["pick_minus_candidate"].maybe(Field.number),
                   noise=None if noise is None else doc["noise"].mapping(), num_sd=doc["num_sd"].maybe(Field.number),
                   better_than_pick=doc["better_than_pick"].flag())

    @property
    def combined_sd(self) -> float | None:
        """The comparison's combined sd (None for the pick, or when the seed noise was not measured)."""
        return None if self.noise is None else self.noise.get("combined_sd")


def _by_seed(doc: Field, read) -> dict[int, Any]:
    out = {}
    for key, value in doc.fields().items():
        try:
            out[int(key)] = read(value)
        except ValueError:
            raise DataError(f"{doc.where}: field {doc.path!r}: key {key!r} is not a seed (an integer)") from None
    return out


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

    @classmethod
    def from_json(cls, doc: Field) -> "Decision":
        outcomes = tuple(CandidateOutcome.from_json(o) for o in doc["candidates"].items())
        chosen = doc["chosen"].text()
        if chosen not in {o.label for o in outcomes}:
            raise DataError(f"{doc.where}: field 'decision.chosen': {chosen!r} is not among the candidates")
        return cls(chosen=chosen, reason=doc["reason"].text(), outcomes=outcomes,
                   pooled_seed_sd=doc["pooled_seed_sd"].maybe(Field.number), seed_dof=doc["seed_dof"].count(),
                   threshold_sd=doc["threshold_sd"].number())

    @property
    def replaced(self) -> bool:
        """Whether a measured candidate replaced the search's pick."""
        return self.chosen != PICK

    def outcome(self, label: str) -> CandidateOutcome:
        return next(o for o in self.outcomes if o.label == label)


def decide(losses: Mapping[str, Mapping[int, float]], documents: Mapping[str, Runs] | None, target: Target, *,
           threshold_sd: float = DEFAULT_THRESHOLD_SD, num_draws: int = 2000, seed: int = 0) -> Decision:
    """Choose among measured candidates (label -> seed -> selection loss; ``regmix`` among them).

    ``documents`` (label -> its runs' per-document losses on the selection split, one per seed) adds the document
    noise of each comparison (the paired bootstrap); without it only the seed noise counts. A candidate better than
    the pick beyond ``threshold_sd`` combined sd hands the pick to the lowest measured mean."""
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


# ---- the record (confirm/confirmation.json) -----------------------------------------------------------------
@dataclass(frozen=True)
class CandidateRuns:
    """One candidate: what it is and the proxy runs that measured it."""

    label: str
    mixture: Mapping[str, float]
    mixture_hash: str
    run_dirs: Mapping[int, str]
    """Seed -> its run directory (relative to the pipeline's output directory: a finished sweep run, or one of the
    round's own)."""

    def to_json(self) -> dict:
        return {"label": self.label, "mixture": dict(self.mixture), "mixture_hash": self.mixture_hash,
                "run_dirs": {str(s): d for s, d in sorted(self.run_dirs.items())}}

    @classmethod
    def from_json(cls, doc: Field) -> "CandidateRuns":
        return cls(label=doc["label"].text(), mixture={k: v.number() for k, v in doc["mixture"].fields().items()},
                   mixture_hash=doc["mixture_hash"].text(), run_dirs=_by_seed(doc["run_dirs"], Field.text))


@dataclass(frozen=True)
class Confirmation:
    """``confirmation.json``: the candidates, their runs and the decision."""

    target: Target
    split: str
    seeds: tuple[int, ...]
    candidates: tuple[CandidateRuns, ...]
    decision: Decision

    @property
    def chosen(self) -> CandidateRuns:
        return next(c for c in self.candidates if c.label == self.decision.chosen)

    def to_json_obj(self) -> dict:
        return {"format": FORMAT, "target": self.target.to_json(), "split": self.split, "seeds": list(self.seeds),
                "candidates": [c.to_json() for c in self.candidates], "decision": self.decision.to_json()}

    @classmethod
    def from_json_obj(cls, obj: Any, where: str) -> "Confirmation":
        doc = Field(obj, where, fix="run the pipeline's confirm stage again (`regmix-megatron run CONFIG`)")
        doc["format"].choice([FORMAT])
        target = Target.from_field(doc["target"])
        candidates = tuple(CandidateRuns.from_json(c) for c in doc["candidates"].items())
        decision = Decision.from_json(doc["decision"])
        if [c.label for c in candidates] != [o.label for o in decision.outcomes]:
            raise DataError(f"{where}: the candidates and the decision's candidates differ; {doc.fix}")
        return cls(target=target, split=doc["split"].text(), seeds=tuple(s.count() for s in doc["seeds"].items()),
                   candidates=candidates, decision=decision)


def write_confirmation(path: str | os.PathLike, confirmation: Confirmation) -> Path:
    """Write ``confirmation.json`` atomically."""
    return atomic_write_json(path, confirmation.to_json_obj())


def read_confirmation(path: str | os.PathLike) -> Confirmation:
    """``confirmation.json`` (a file, or the folder holding it), typed."""
    path = file_or_in_folder(path, FILE_NAME)
    return Confirmation.from_json_obj(read_json(path), str(path))

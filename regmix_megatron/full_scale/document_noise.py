"""Noise from the evaluation documents: how much a comparison of two mixtures moves with which documents were drawn.

A target's loss is measured on a finite set of evaluation documents. Two mixtures scored on the same documents can
differ because one of them suits those particular documents; another draw of documents from the same domain could
order them differently (the demo's 22-document test split did). The seeds do not see this: every seed is scored on
the same documents.

:func:`document_bootstrap` is the paired bootstrap over documents: each draw resamples every target domain's
documents with replacement (the same documents, with the same multiplicities, for every run of both mixtures),
computes each run's target loss on the resample as the ratio of summed losses to summed tokens (exactly how the
evaluator's mean is made), averages each mixture's runs, and returns the differences ``a - b``. Their sd is the
*document sd* of the difference; the *seed sd* of the same difference comes from the seed-to-seed spread
(:func:`seed_sd_of_difference`), and :func:`combine` puts the two together as independent errors.

:func:`losses_by_source` breaks a run's target-domain loss down by the source each document came from
(``domains.json`` records every document's source: :meth:`regmix_megatron.data.manifest.Domain.document_sources`).

Pure core: numpy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

from ..errors import DataError
from ..regression.target import KIND_AVERAGE, Target
from ..runs.document_losses import DocumentLosses

#: Bootstrap draws of a verdict: the sd's own relative error is about 1 / sqrt(2 * draws), 1.6% at 2000.
DEFAULT_NUM_DRAWS = 2000
#: Which part of the combined sd dominates: the larger one, unless they are within this factor of each other.
BALANCED_RATIO = 1.5

#: One mixture's runs (one per seed): per run, per domain, its per-document losses on the compared split.
Runs = Sequence[Mapping[str, DocumentLosses]]


def _target_domains(target: Target, runs: Runs) -> list[str]:
    if target.kind == KIND_AVERAGE:
        names = sorted(set.intersection(*(set(r) for r in runs)))
        if not names:
            raise DataError("document bootstrap: the runs share no domain with per-document losses")
        return names
    missing = sorted({d for r in runs for d in target.needs if d not in r})
    if missing:
        raise DataError(f"document bootstrap: no per-document losses for target domain(s) {missing} in some run "
                        "(the run must be evaluated by this version: document_losses.json)")
    return list(target.needs)


def _num_documents(domain: str, runs: Runs) -> int:
    sizes = {len(r[domain].loss_sum) for r in runs}
    if len(sizes) != 1:
        raise DataError(f"document bootstrap: the runs scored different documents of {domain!r} ({sorted(sizes)} "
                        "documents): compare runs evaluated on the same split with the same number of tokens")
    return sizes.pop()


def _resampled(runs: Runs, domain: str, counts: np.ndarray) -> np.ndarray:
    """``[num_runs, num_draws]``: each run's loss on ``domain`` under each draw's document multiplicities."""
    out = np.empty((len(runs), counts.shape[0]))
    for i, run in enumerate(runs):
        doc = run[domain]
        tokens = counts @ doc.num_tokens.astype(np.float64)
        out[i] = (counts @ doc.loss_sum) / np.where(tokens > 0, tokens, np.nan)
    return out


def document_bootstrap(a: Runs, b: Runs, target: Target, *, num_draws: int = DEFAULT_NUM_DRAWS,
                       seed: int = 0) -> np.ndarray:
    """Paired bootstrap draws of ``mean over a's runs of the target - mean over b's runs of the target``.

    Every draw resamples each target domain's documents with replacement, the same draw for all runs of ``a``
    and ``b`` (so the draws measure which documents were drawn, not the seeds). Draws in which a resampled
    domain has no scored token (possible only with very few documents) are dropped."""
    if not a or not b:
        raise DataError("document bootstrap: each mixture needs at least one run")
    if num_draws < 2:
        raise ValueError(f"num_draws={num_draws}: use at least 2")
    runs = [*a, *b]
    rng = np.random.default_rng(seed)
    per_domain: dict[str, np.ndarray] = {}
    for domain in _target_domains(target, runs):
        n = _num_documents(domain, runs)
        counts = rng.multinomial(n, np.full(n, 1.0 / n), size=num_draws).astype(np.float64)
        per_domain[domain] = _resampled(runs, domain, counts)
    values = np.empty((len(runs), num_draws))
    for i in range(len(runs)):
        values[i] = target.values({d: v[i] for d, v in per_domain.items()}, where="document bootstrap")
    diff = values[: len(a)].mean(axis=0) - values[len(a):].mean(axis=0)
    return diff[np.isfinite(diff)]


def seed_sd_of_difference(pooled_sd: float | None, num_a: int, num_b: int) -> float | None:
    """The seed sd of a difference of two means over ``num_a`` and ``num_b`` seeds, from the pooled seed sd of one
    run (``runs.noise.pooled_seed_sd``): ``pooled_sd * sqrt(1/num_a + 1/num_b)``; None when not measured."""
    if pooled_sd is None or not math.isfinite(pooled_sd) or num_a < 1 or num_b < 1:
        return None
    return pooled_sd * math.sqrt(1.0 / num_a + 1.0 / num_b)


@dataclass(frozen=True)
class NoiseOfDifference:
    """The sd of one comparison, by part."""

    seed_sd: float | None
    """From the seed-to-seed spread (:func:`seed_sd_of_difference`)."""
    document_sd: float | None
    """From the paired document bootstrap (:func:`document_bootstrap`)."""

    @property
    def combined_sd(self) -> float | None:
        """Both parts as independent errors; None unless the seed part is measured (without it no win is
        claimed); the document part counts as 0 when it was not measured."""
        if self.seed_sd is None:
            return None
        return math.sqrt(self.seed_sd ** 2 + (self.document_sd or 0.0) ** 2)

    @property
    def dominant(self) -> str:
        """``seeds``, ``documents``, ``balanced`` (within :data:`BALANCED_RATIO`), or ``unmeasured``."""
        if self.seed_sd is None or self.document_sd is None:
            return "unmeasured"
        if self.seed_sd > BALANCED_RATIO * self.document_sd:
            return "seeds"
        if self.document_sd > BALANCED_RATIO * self.seed_sd:
            return "documents"
        return "balanced"

    def to_json(self) -> dict:
        return {"seed_sd": self.seed_sd, "document_sd": self.document_sd, "combined_sd": self.combined_sd,
                "dominant": self.dominant}


def combine(pooled_sd: float | None, num_a: int, num_b: int, draws: np.ndarray | None) -> NoiseOfDifference:
    """The noise of one comparison: the seed part from ``pooled_sd`` and the seed counts, the document part from
    the bootstrap ``draws`` (None: not measured)."""
    document_sd = float(np.std(draws, ddof=1)) if draws is not None and draws.size >= 2 else None
    return NoiseOfDifference(seed_sd_of_difference(pooled_sd, num_a, num_b), document_sd)


def losses_by_source(runs: Sequence[DocumentLosses], sources: Sequence[str]) -> dict[str, float]:
    """Mean over ``runs`` (one mixture's seeds, one domain and split) of each source's loss: the ratio of summed
    losses to summed tokens over the documents of that source. ``sources`` gives every document's source, in
    document order; a source none of whose documents was scored is left out."""
    if not runs:
        raise DataError("losses by source: no run")
    names = np.asarray(list(sources))
    for run in runs:
        if len(run.loss_sum) != len(names):
            raise DataError(f"losses by source: {len(run.loss_sum)} documents scored but {len(names)} document "
                            "sources recorded: the run was evaluated on other data than domains.json describes")
    out: dict[str, float] = {}
    for source in sorted(set(names.tolist())):
        mask = names == source
        tokens = [int(run.num_tokens[mask].sum()) for run in runs]
        if min(tokens) == 0:
            continue
        out[source] = float(np.mean([run.loss_sum[mask].sum() / t for run, t in zip(runs, tokens)]))
    return out

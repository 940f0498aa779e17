"""Search (RegMix step 5), the algorithm: simulate a large pool of candidate mixtures, predict, average the top-k.

The pool is drawn with the sweep's own sampler (:func:`regmix_megatron.mixtures.sampling.iter_candidates`) and the same
token/epoch caps, so a candidate outside the caps is never proposed. It is processed in chunks (memory is
bounded by the chunk size, whatever the pool size) and a running top-k is kept across chunks. The result is
the exactly renormalized mean of the top-k candidates; since the feasible region (simplex intersected with
per-domain bounds) is convex, the mean stays within the caps.

Predictions use the exact fast LightGBM evaluator (:mod:`regmix_megatron.regression.fastpredict`) for LightGBM
models, and the model's own ``predict`` otherwise. :func:`baseline_mixtures` gives the mixtures a result is
compared with (natural = token prior, uniform, target-domain-only, and any mixture files). What a search reads
and writes (priors, ``search.json``, ``top_k.csv``, the Megatron export) is :mod:`regmix_megatron.search.outputs`.

Pure core: numpy (+ numba through the fast predictor); writes no files.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from ..configs import check
from ..errors import DataError, RegmixError
from ..mixtures.mixture import Mixture, normalize_exact
from ..regression.target import Target

logger = logging.getLogger(__name__)

#: Tolerance on cap checks of averaged/renormalized mixtures (exact renormalization moves weights by ~1e-16).
CAP_TOLERANCE = 1e-9


@dataclass
class SearchConfig:
    """How the candidate pool is simulated and reduced."""

    num_candidates: int = 1_000_000
    """Size of the simulated pool (the paper: 1M)."""
    top_k: int = 100
    """The best ``top_k`` predicted candidates are averaged (the paper: 100-128)."""
    chunk_size: int = 100_000
    """Candidates drawn and predicted at once (bounds memory; part of what defines the pool)."""
    seed: int = 0
    """Seed of the candidate pool (the sampler's seed)."""
    maximize: bool = False
    """False: lower predicted target is better (losses); True: higher is better."""

    def __post_init__(self) -> None:
        check(isinstance(self.num_candidates, int) and self.num_candidates >= 1, "search", "num_candidates",
              self.num_candidates, "use a positive integer (the paper simulates 1,000,000)")
        check(isinstance(self.top_k, int) and 1 <= self.top_k <= self.num_candidates, "search", "top_k",
              self.top_k, f"use an integer between 1 and num_candidates={self.num_candidates}")
        check(isinstance(self.chunk_size, int) and self.chunk_size >= 1, "search", "chunk_size", self.chunk_size,
              "use a positive integer (e.g. 100000)")
        check(isinstance(self.seed, int) and self.seed >= 0, "search", "seed", self.seed,
              "use a non-negative integer")


class TopK:
    """Running top-k of (score, row) over a stream of chunks, ties broken by stream position.

    The result depends only on the stream, never on how it is cut into chunks.
    """

    def __init__(self, k: int, num_columns: int, maximize: bool = False) -> None:
        self.k = int(k)
        self.maximize = bool(maximize)
        self.scores = np.empty(0, dtype=np.float64)
        self.positions = np.empty(0, dtype=np.int64)
        self.rows = np.empty((0, num_columns), dtype=np.float64)
        self.num_seen = 0

    def update(self, scores: np.ndarray, rows: np.ndarray) -> None:
        scores = np.asarray(scores, dtype=np.float64)
        if scores.shape[0] != rows.shape[0]:
            raise RegmixError(f"top-k: {scores.shape[0]} scores for {rows.shape[0]} rows")
        if np.any(np.isnan(scores)):
            raise RegmixError("top-k: the model predicted NaN for some candidates")
        positions = np.arange(self.num_seen, self.num_seen + scores.shape[0], dtype=np.int64)
        self.num_seen += scores.shape[0]
        key = -scores if self.maximize else scores
        if scores.shape[0] > self.k:
            # Preselect (cheap), keeping every row tied with the k-th key so ties resolve by position.
            kth = np.partition(key, self.k - 1)[self.k - 1]
            keep = key <= kth
            scores, rows, positions, key = scores[keep], rows[keep], positions[keep], key[keep]
        all_key = np.concatenate((-self.scores if self.maximize else self.scores, key))
        all_pos = np.concatenate((self.positions, positions))
        order = np.lexsort((all_pos, all_key))[: self.k]
        self.scores = np.concatenate((self.scores, scores))[order]
        self.positions = all_pos[order]
        self.rows = np.concatenate((self.rows, rows))[order]


@dataclass
class SearchResult:
    mixture: Mixture
    """The mean of the top-k candidates, renormalized exactly."""
    predicted: float
    """The model's prediction for :attr:`mixture`."""
    top_scores: np.ndarray
    top_rows: np.ndarray
    top_positions: np.ndarray
    num_candidates: int
    lower: np.ndarray
    upper: np.ndarray
    seconds: dict[str, float] = field(default_factory=dict)


def make_predict_fn(regressor: Any, *, fast: bool = True) -> Callable[[np.ndarray], np.ndarray]:
    """A function rows -> predictions; LightGBM models use the exact fast evaluator when ``fast``."""
    if fast and getattr(regressor, "kind", "") == "lightgbm":
        from ..regression.fastpredict import FastPredictor

        return FastPredictor.from_regressor(regressor).predict
    return regressor.predict


def check_within_bounds(rows: np.ndarray, lower: np.ndarray, upper: np.ndarray,
                        tolerance: float = CAP_TOLERANCE) -> np.ndarray:
    """Boolean per row: every weight within [lower - tol, upper + tol]."""
    rows = np.atleast_2d(rows)
    return np.all((rows <= upper + tolerance) & (rows >= lower - tolerance), axis=1)


def run_search(predict: Callable[[np.ndarray], np.ndarray], tokens_per_domain: np.ndarray,
               domains: Sequence[str], sampler_config: Any, config: SearchConfig,
               progress: Callable[[int, int], None] | None = None) -> SearchResult:
    """Simulate ``config.num_candidates`` candidates with the sampler, keep the top-k, average them.

    ``tokens_per_domain`` and ``domains`` are in the model's feature order. ``sampler_config`` is a
    :class:`regmix_megatron.mixtures.sampling.SamplerConfig` (its seed is replaced by ``config.seed``).
    """
    import dataclasses

    from ..mixtures.sampling import domain_caps, iter_candidates

    sampler_config = dataclasses.replace(sampler_config, seed=config.seed)
    tokens = np.asarray(tokens_per_domain)
    lower, upper = domain_caps(tokens, sampler_config, domains=list(domains))
    top = TopK(config.top_k, len(domains), maximize=config.maximize)
    seconds = {"sample": 0.0, "predict": 0.0, "top_k": 0.0}
    t = time.perf_counter()
    for chunk in iter_candidates(tokens, sampler_config, config.num_candidates, config.chunk_size,
                                 domains=list(domains)):
        t1 = time.perf_counter()
        seconds["sample"] += t1 - t
        scores = np.asarray(predict(chunk), dtype=np.float64)
        t2 = time.perf_counter()
        seconds["predict"] += t2 - t1
        top.update(scores, chunk)
        t = time.perf_counter()
        seconds["top_k"] += t - t2
        if progress is not None:
            progress(top.num_seen, config.num_candidates)
    if top.num_seen != config.num_candidates:
        raise RegmixError(f"the sampler produced {top.num_seen} candidates, not {config.num_candidates}")
    inside = check_within_bounds(top.rows, lower, upper)
    if not np.all(inside):  # the sampler's contract; never silently accept a violation
        raise RegmixError(f"{int((~inside).sum())} of the top-{config.top_k} candidates violate the caps: "
                          "sampler bug, please report")
    mean = normalize_exact(top.rows.mean(axis=0))
    mixture = Mixture.from_array(list(domains), mean)
    predicted = float(predict(mixture.as_array(list(domains))[None, :])[0])
    return SearchResult(mixture=mixture, predicted=predicted, top_scores=top.scores, top_rows=top.rows,
                        top_positions=top.positions, num_candidates=top.num_seen, lower=lower, upper=upper,
                        seconds=seconds)


# ---- priors and baselines ----------------------------------------------------------------------------------
def baseline_mixtures(source: Any, target: Target | None = None,
                      extra: Mapping[str, Mixture] | None = None) -> dict[str, Mixture]:
    """``natural`` (token prior), ``uniform``, ``target_only`` (when ``target`` is one training domain's; a
    held-out, evaluation-only target domain has none) and ``extra``.

    ``source`` is a :class:`~regmix_megatron.data.manifest.DomainRegistry` (prior from exact train token counts) or a
    prior :class:`Mixture`.
    """
    if isinstance(source, Mixture):
        prior = source
    else:
        prior = Mixture.from_array(source.names, source.prior("train"))
    domains = list(prior.domains)
    out = {"natural": prior, "uniform": Mixture.from_array(domains, np.ones(len(domains)))}
    target_domain = target.single_domain if target is not None else None
    if target_domain is not None and target_domain in domains:
        out["target_only"] = Mixture.from_array(domains, [1.0 if d == target_domain else 0.0 for d in domains])
    for name, m in (extra or {}).items():
        if name in out:
            raise RegmixError(f"baseline name {name!r} clashes with a built-in baseline; rename the file")
        out[name] = m.restrict(domains) if set(m.domains) <= set(domains) else _refuse_domains(m, domains, name)
    return out


def _refuse_domains(m: Mixture, domains: Sequence[str], name: str) -> Mixture:
    extra = sorted(set(m.domains) - set(domains))
    raise DataError(f"baseline mixture {name!r} has domain(s) {extra} unknown to the model ({list(domains)}); "
                    "use a mixture over the model's domains")

"""Search over schedules (RegMix step 5 for phases): a pool of candidate schedules, predicted, top-k averaged.

The regressor is fitted on schedule features (the phase weights scaled by the fixed phase fractions, names
``p<k>/<domain>``: :func:`regmix_megatron.mixtures.schedule.feature_names`). :func:`run_schedule_search` draws the pool with
:func:`regmix_megatron.mixtures.schedule_sampling.iter_schedule_candidates` (the sweep's caps, an independent stream), keeps
a running top-k (:class:`regmix_megatron.search.candidates.TopK`) and averages it phase by phase; the caps (per phase, and the
joint epoch cap) are linear, so the mean of feasible schedules is feasible. :func:`run_static_search` searches
static mixtures (every phase the same mixture, the sweep's static caps) with the same model: the best static
mixture according to the same proxies. :func:`phase_bounds` gives the per-feature caps for the summary.

Pure core: numpy (+ numba through the fast predictor); writes no files (:mod:`regmix_megatron.search.outputs` does).
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, Callable, Sequence

import numpy as np

from ..errors import RegmixError
from ..mixtures.mixture import Mixture, normalize_exact
from ..mixtures.caps import BOUND_TOLERANCE, domain_caps, joint_upper
from ..mixtures.sampler import SampleStats as ScheduleStats, check_fractions, iter_pool, phase_configs
from ..mixtures.schedule import Schedule, feature_names
from .candidates import TOP_K_AUTO, SearchConfig, SearchResult, TopK, TopKChoice, check_within_bounds, run_search


def phase_bounds(tokens_per_domain: np.ndarray, sampler_config: Any, fractions: Sequence[float],
                 domains: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature ``(lower, upper)``: each phase's caps (its share of the epoch budget) times its fraction."""
    lower, upper = [], []
    for f, c in zip(fractions, phase_configs(sampler_config, fractions, 0)):
        lo, up = domain_caps(tokens_per_domain, c, domains=list(domains))
        lower.append(f * lo)
        upper.append(f * up)
    return np.concatenate(lower), np.concatenate(upper)


def schedule_of_features(fractions: Sequence[float], domains: Sequence[str], row: np.ndarray) -> Schedule:
    """The schedule whose features are ``row`` (each phase's block divided by its fraction, renormalized)."""
    d = len(domains)
    return Schedule.from_phases([(f, Mixture.from_array(list(domains), normalize_exact(row[k * d:(k + 1) * d] / f)))
                                 for k, f in enumerate(fractions)])


def within_joint_caps(schedule: Schedule, tokens_per_domain: np.ndarray, sampler_config: Any) -> bool:
    upper = joint_upper(tokens_per_domain, sampler_config)
    return upper is None or bool(np.all(schedule.overall().as_array() <= upper + BOUND_TOLERANCE))


def run_schedule_search(predict: Callable[[np.ndarray], np.ndarray], tokens_per_domain: np.ndarray,
                        domains: Sequence[str], sampler_config: Any, fractions: Sequence[float],
                        config: SearchConfig, progress: Callable[[int, int], None] | None = None
                        ) -> tuple[SearchResult, Schedule, ScheduleStats]:
    """Simulate ``config.num_candidates`` schedules, keep the top-k, average them phase by phase.

    Returns ``(result, schedule, stats)``: ``result`` is a :class:`~regmix_megatron.search.candidates.SearchResult` over the
    features (its ``mixture`` is the winning schedule's features as a mixture over the feature names, which sum to
    1; bounds per feature), ``schedule`` the winning schedule, ``stats`` how the pool was drawn. ``predict`` takes
    feature rows.
    """
    fractions = check_fractions(fractions)
    if config.auto_top_k:
        raise RegmixError(f"top_k {TOP_K_AUTO!r} is for mixture searches; a schedule search averages a fixed number "
                          "(give top_k a number, e.g. 100)")
    sampler_config = dataclasses.replace(sampler_config, seed=config.seed)
    names = feature_names(domains, len(fractions))
    lower, upper = phase_bounds(tokens_per_domain, sampler_config, fractions, domains)
    top = TopK(config.top_k, len(names), maximize=config.maximize)
    seconds = {"sample": 0.0, "predict": 0.0, "top_k": 0.0}
    stats = ScheduleStats()
    t = time.perf_counter()
    for chunk in iter_pool(tokens_per_domain, sampler_config, config.num_candidates, config.chunk_size,
                           fractions=fractions, domains=domains, stats=stats):
        t1 = time.perf_counter()
        scores = np.asarray(predict(chunk), dtype=np.float64)
        t2 = time.perf_counter()
        top.update(scores, chunk)
        t3 = time.perf_counter()
        seconds["sample"] += t1 - t
        seconds["predict"] += t2 - t1
        seconds["top_k"] += t3 - t2
        t = t3
        if progress is not None:
            progress(top.num_seen, config.num_candidates)
    if top.num_seen != config.num_candidates:
        raise RegmixError(f"the schedule sampler produced {top.num_seen} candidates, not {config.num_candidates}")
    if not np.all(check_within_bounds(top.rows, lower, upper)):  # the sampler's contract
        raise RegmixError("top-k candidate schedules violate the per-phase caps: sampler bug, please report")
    schedule = schedule_of_features(fractions, domains, top.rows.mean(axis=0))
    if not within_joint_caps(schedule, tokens_per_domain, sampler_config):
        raise RegmixError("the averaged schedule breaks a joint epoch cap: sampler bug, please report")
    features = schedule.features(domains)
    predicted = float(predict(features[None, :])[0])
    result = SearchResult(mixture=Mixture.from_array(names, features), predicted=predicted, top_scores=top.scores,
                          top_rows=top.rows, top_positions=top.positions, num_candidates=top.num_seen, lower=lower,
                          upper=upper, seconds=seconds,
                          top_k=TopKChoice(int(config.top_k), "fixed", "given (search.top_k / --top-k)"))
    return result, schedule, stats


def static_predictor(predict: Callable[[np.ndarray], np.ndarray], fractions: Sequence[float]
                     ) -> Callable[[np.ndarray], np.ndarray]:
    """A predictor of static mixtures (rows over the domains) from a schedule model: every phase the same."""
    f = np.asarray(fractions, dtype=np.float64)

    def predict_static(rows: np.ndarray) -> np.ndarray:
        rows = np.atleast_2d(rows)
        return predict(np.concatenate([fk * rows for fk in f], axis=1))

    return predict_static


def run_static_search(predict: Callable[[np.ndarray], np.ndarray], tokens_per_domain: np.ndarray,
                      domains: Sequence[str], sampler_config: Any, fractions: Sequence[float], config: SearchConfig,
                      progress: Callable[[int, int], None] | None = None) -> SearchResult:
    """The best static mixture under a schedule model: :func:`regmix_megatron.search.candidates.run_search` over the sweep's
    static pool (static caps), each candidate used in every phase."""
    return run_search(static_predictor(predict, check_fractions(fractions)), tokens_per_domain, domains,
                      sampler_config, config, progress=progress)


__all__ = ["phase_bounds", "schedule_of_features", "within_joint_caps", "run_schedule_search", "static_predictor",
           "run_static_search"]

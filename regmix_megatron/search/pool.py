"""Search (RegMix step 5), the algorithm: simulate a large pool of candidates, predict, average the top-k.

One search for mixtures and schedules: the candidates are schedules of fixed phase ``fractions`` as their features
(each phase's weights scaled by its fraction: :meth:`~regmix_megatron.mixtures.schedule.Schedule.features`); a
static mixture is the one-phase schedule, whose features are its weights. The pool is drawn with the sweep's own
sampler (:func:`regmix_megatron.mixtures.sampler.iter_pool`: the same caps, on a stream independent of the
sweep's), so a candidate outside the caps is never proposed. It is processed in chunks (memory is bounded by the
chunk size, whatever the pool size) and a running top-k is kept across chunks (:mod:`.top_k`). The result is the
mean of the top-k, phase by phase and exactly renormalized; the caps (per phase, and the epoch cap over all
phases) are linear, so the mean of feasible candidates is feasible.

:func:`search_model` searches for a fitted regressor: the best schedule over the phases and, when there are
several, the best static mixture under the same model (the one-phase search of the predictor that uses a mixture
in every phase: :func:`static_predictor`); for one phase both are the same result.

Predictions use the exact fast LightGBM evaluator (:mod:`regmix_megatron.regression.fastpredict`) for LightGBM
models (and an ensemble's LightGBM members), and the model's own ``predict`` otherwise. ``top_k: auto``
(:func:`regmix_megatron.search.top_k.choose_top_k`) needs a regressor that gives an uncertainty, and is for
mixtures only.

What a search reads and writes (priors, ``search.json``, ``top_k.csv``) is :mod:`regmix_megatron.search.outputs`.

Pure core: numpy (+ numba through the fast predictor); writes no files.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Sequence, Union

import numpy as np

from ..configs import check
from ..errors import RegmixError
from ..mixtures.caps import feature_bounds, within_joint_caps
from ..mixtures.mixture import Mixture, normalize_exact
from ..mixtures.sampler import ONE_PHASE, SampleStats, check_fractions, iter_pool
from ..mixtures.schedule import Schedule, feature_names
from .top_k import TOP_K_AUTO, TopK, TopKChoice, choose_top_k

if TYPE_CHECKING:
    from ..regression.models import Prediction

#: Tolerance on cap checks of averaged/renormalized mixtures (exact renormalization moves weights by ~1e-16).
CAP_TOLERANCE = 1e-9


@dataclass
class SearchConfig:
    """How the candidate pool is simulated and reduced."""

    num_candidates: int = 1_000_000
    """Size of the simulated pool (the paper: 1M)."""
    top_k: Union[int, str] = 100
    """The best ``top_k`` predicted candidates are averaged (the paper: 100-128), or ``auto``: k chosen among
    :data:`~regmix_megatron.search.top_k.TOP_K_GRID` by the model's uncertainty
    (:func:`~regmix_megatron.search.top_k.choose_top_k`; needs a regressor that gives one)."""
    chunk_size: int = 100_000
    """Candidates drawn and predicted at once (bounds memory; part of what defines the pool)."""
    seed: int = 0
    """Seed of the candidate pool (the sampler's seed)."""
    maximize: bool = False
    """False: lower predicted target is better (losses); True: higher is better."""

    def __post_init__(self) -> None:
        check(isinstance(self.num_candidates, int) and self.num_candidates >= 1, "search", "num_candidates",
              self.num_candidates, "use a positive integer (the paper simulates 1,000,000)")
        check(self.top_k == TOP_K_AUTO or (isinstance(self.top_k, int) and not isinstance(self.top_k, bool)
                                           and 1 <= self.top_k <= self.num_candidates), "search", "top_k",
              self.top_k, f"use an integer between 1 and num_candidates={self.num_candidates}, or {TOP_K_AUTO!r}")
        check(isinstance(self.chunk_size, int) and self.chunk_size >= 1, "search", "chunk_size", self.chunk_size,
              "use a positive integer (e.g. 100000)")
        check(isinstance(self.seed, int) and self.seed >= 0, "search", "seed", self.seed,
              "use a non-negative integer")

    @property
    def auto_top_k(self) -> bool:
        return self.top_k == TOP_K_AUTO

    def top_k_grid(self) -> tuple[int, ...]:
        """The k tried: the fixed one, or those of :data:`~regmix_megatron.search.top_k.TOP_K_GRID` up to the pool
        size."""
        from .top_k import TOP_K_GRID

        if not self.auto_top_k:
            return (int(self.top_k),)
        return tuple(k for k in TOP_K_GRID if k <= self.num_candidates)


@dataclass
class SearchResult:
    """What one search over a pool found."""

    schedule: Schedule
    """The mean of the top-k candidates, phase by phase, renormalized exactly (one phase: the mixture)."""
    mixture: Mixture
    """The result as a mixture over the feature names (one phase: the domains, and the mixture itself)."""
    predicted: float
    """The model's prediction for :attr:`schedule`."""
    top_scores: np.ndarray
    top_rows: np.ndarray
    top_positions: np.ndarray
    num_candidates: int
    lower: np.ndarray
    upper: np.ndarray
    """Per-feature bounds the candidates keep."""
    seconds: dict[str, float] = field(default_factory=dict)
    top_k: TopKChoice | None = None
    """How many candidates were averaged (``top_rows`` holds exactly those) and why."""
    stats: SampleStats = field(default_factory=SampleStats)
    """How the pool was drawn."""


@dataclass
class SearchOutcome:
    """A search for a fitted model: the best schedule over the phases, and the best static mixture under the same
    model (for one phase, the same result)."""

    best: SearchResult
    static: SearchResult
    domains: tuple[str, ...]

    @property
    def schedule(self) -> Schedule:
        return self.best.schedule

    @property
    def fractions(self) -> tuple[float, ...]:
        return self.best.schedule.fractions

    @property
    def feature_names(self) -> list[str]:
        return feature_names(self.domains, len(self.fractions))

    @property
    def static_mixture(self) -> Mixture:
        return self.static.schedule.mixtures[0]


def make_predict_fn(regressor: Any, *, fast: bool = True) -> Callable[[np.ndarray], np.ndarray]:
    """A function rows -> predictions; LightGBM models use the exact fast evaluator when ``fast``."""
    kind = getattr(regressor, "kind", "")
    if fast and kind == "lightgbm":
        from ..regression.fastpredict import FastPredictor

        return FastPredictor.from_regressor(regressor).predict
    if kind == "ensemble":  # its members' predictions, each as fast as it can be, combined as the ensemble does
        parts = {k: make_predict_fn(m, fast=fast) for k, m in regressor.members.items()}
        combination = regressor.combination
        return lambda rows: combination.combine({k: f(rows) for k, f in parts.items()})
    return regressor.predict


def static_predictor(predict: Callable[[np.ndarray], np.ndarray], fractions: Sequence[float]
                     ) -> Callable[[np.ndarray], np.ndarray]:
    """A predictor of static mixtures (rows over the domains) from a schedule model: every phase the same."""
    f = np.asarray(fractions, dtype=np.float64)

    def predict_static(rows: np.ndarray) -> np.ndarray:
        rows = np.atleast_2d(rows)
        return predict(np.concatenate([fk * rows for fk in f], axis=1))

    return predict_static


def check_within_bounds(rows: np.ndarray, lower: np.ndarray, upper: np.ndarray,
                        tolerance: float = CAP_TOLERANCE) -> np.ndarray:
    """Boolean per row: every weight within [lower - tol, upper + tol]."""
    rows = np.atleast_2d(rows)
    return np.all((rows <= upper + tolerance) & (rows >= lower - tolerance), axis=1)


def schedule_of_features(fractions: Sequence[float], domains: Sequence[str], row: np.ndarray) -> Schedule:
    """The schedule whose features are ``row`` (each phase's block divided by its fraction, renormalized)."""
    d = len(domains)
    return Schedule.from_phases([(f, Mixture.from_array(list(domains), normalize_exact(row[k * d:(k + 1) * d] / f)))
                                 for k, f in enumerate(fractions)])


def run_search(predict: Callable[[np.ndarray], np.ndarray], tokens_per_domain: np.ndarray,
               domains: Sequence[str], sampler_config: Any, config: SearchConfig,
               progress: Callable[[int, int], None] | None = None,
               estimate: Callable[[np.ndarray], "Prediction"] | None = None, *,
               fractions: Sequence[float] = ONE_PHASE) -> SearchResult:
    """Simulate ``config.num_candidates`` candidates with the sampler, keep the top-k, average them.

    ``predict`` takes feature rows (one phase: mixture rows over ``domains``); ``tokens_per_domain`` and
    ``domains`` are in the model's order. ``sampler_config`` is a
    :class:`~regmix_megatron.mixtures.sampler_config.SamplerConfig` (its seed is replaced by ``config.seed``).
    ``estimate`` (rows -> predictions with their sd, e.g. ``regressor.predict_with_sd``) is needed by
    ``top_k: auto``.
    """
    fractions = check_fractions(fractions)
    if config.auto_top_k and estimate is None:
        raise RegmixError(f"top_k {TOP_K_AUTO!r} needs predictions with an uncertainty: no estimator given")
    if config.auto_top_k and len(fractions) > 1:
        raise RegmixError(f"top_k {TOP_K_AUTO!r} is for mixture searches; a schedule search averages a fixed number "
                          "(give top_k a number, e.g. 100)")
    sampler_config = dataclasses.replace(sampler_config, seed=config.seed)
    lower, upper = feature_bounds(tokens_per_domain, sampler_config, fractions, domains)
    top = TopK(max(config.top_k_grid()), len(lower), maximize=config.maximize)
    stats = SampleStats()
    seconds = _fill(top, predict, iter_pool(np.asarray(tokens_per_domain), sampler_config, config.num_candidates,
                                            config.chunk_size, fractions=fractions, domains=list(domains),
                                            stats=stats), config.num_candidates, progress)
    if top.num_seen != config.num_candidates:
        raise RegmixError(f"the sampler produced {top.num_seen} candidates, not {config.num_candidates}")
    inside = check_within_bounds(top.rows, lower, upper)
    if not np.all(inside):  # the sampler's contract; never silently accept a violation
        raise RegmixError(f"{int((~inside).sum())} of the top-{top.rows.shape[0]} candidates violate the caps: "
                          "sampler bug, please report")
    if config.auto_top_k:
        t = time.perf_counter()
        choice = choose_top_k(top.rows, estimate, config.top_k_grid(), maximize=config.maximize)
        seconds["choose_k"] = time.perf_counter() - t
    else:
        choice = TopKChoice(int(config.top_k), "fixed", "given (search.top_k / --top-k)")
    k = choice.k
    schedule = schedule_of_features(fractions, domains, top.rows[:k].mean(axis=0))
    if len(fractions) > 1 and not within_joint_caps(schedule, tokens_per_domain, sampler_config):
        raise RegmixError("the averaged schedule breaks a joint epoch cap: sampler bug, please report")
    features = schedule.features(domains)
    predicted = float(predict(features[None, :])[0])
    return SearchResult(schedule=schedule, mixture=Mixture.from_array(feature_names(domains, len(fractions)), features),
                        predicted=predicted, top_scores=top.scores[:k], top_rows=top.rows[:k],
                        top_positions=top.positions[:k], num_candidates=top.num_seen, lower=lower, upper=upper,
                        seconds=seconds, top_k=choice, stats=stats)


def _fill(top: TopK, predict: Callable[[np.ndarray], np.ndarray], chunks, total: int,
          progress: Callable[[int, int], None] | None) -> dict[str, float]:
    """Predict every chunk of the pool into the running ``top``; the seconds spent sampling, predicting, keeping."""
    seconds = {"sample": 0.0, "predict": 0.0, "top_k": 0.0}
    t = time.perf_counter()
    for chunk in chunks:
        t1 = time.perf_counter()
        seconds["sample"] += t1 - t
        scores = np.asarray(predict(chunk), dtype=np.float64)
        t2 = time.perf_counter()
        seconds["predict"] += t2 - t1
        top.update(scores, chunk)
        t = time.perf_counter()
        seconds["top_k"] += t - t2
        if progress is not None:
            progress(top.num_seen, total)
    return seconds


def search_model(regressor: Any, tokens_per_domain: np.ndarray, sampler_config: Any, config: SearchConfig, *,
                 domains: Sequence[str] | None = None, fractions: Sequence[float] = ONE_PHASE, fast: bool = True,
                 progress: Callable[[int, int], None] | None = None) -> SearchOutcome:
    """The search for a fitted ``regressor`` over schedules of ``fractions`` (one phase: mixtures), and for several
    phases the best static mixture under the same model. ``domains`` (default: the regressor's, a mixture model)
    name the entries of ``tokens_per_domain``; the regressor's features must be their schedule features."""
    fractions = check_fractions(fractions)
    domains = tuple(regressor.domains if domains is None else domains)
    regressor.check_domains(feature_names(domains, len(fractions)),
                            f"the search's features of {len(fractions)} phase(s) over {list(domains)}")
    if config.auto_top_k and not regressor.gives_uncertainty:
        raise RegmixError(f"top_k auto chooses k by the model's uncertainty, and the {regressor.kind} model gives "
                          "none: use the ensemble (search.regressor: ensemble, or fit --regressors ...,ensemble and "
                          "search --regressor ensemble) or a fixed top_k such as 100")
    predict = make_predict_fn(regressor, fast=fast)
    best = run_search(predict, tokens_per_domain, domains, sampler_config, config, progress=progress,
                      estimate=regressor.predict_with_sd, fractions=fractions)
    if len(fractions) == 1:
        return SearchOutcome(best=best, static=best, domains=domains)
    static = run_search(static_predictor(predict, best.schedule.fractions), tokens_per_domain, domains, sampler_config,
                        config)
    return SearchOutcome(best=best, static=static, domains=domains)


__all__ = ["SearchConfig", "SearchResult", "SearchOutcome", "make_predict_fn", "static_predictor",
           "check_within_bounds", "schedule_of_features", "run_search", "search_model", "CAP_TOLERANCE"]

"""Search (RegMix step 5), the algorithm: simulate a large pool of candidate mixtures, predict, average the top-k.

The pool is drawn with the sweep's own sampler (:func:`regmix_megatron.mixtures.sampling.iter_candidates`) and the same
token/epoch caps, so a candidate outside the caps is never proposed. It is processed in chunks (memory is
bounded by the chunk size, whatever the pool size) and a running top-k is kept across chunks. The result is
the exactly renormalized mean of the top-k candidates; since the feasible region (simplex intersected with
per-domain bounds) is convex, the mean stays within the caps.

Predictions use the exact fast LightGBM evaluator (:mod:`regmix_megatron.regression.fastpredict`) for LightGBM
models (and an ensemble's LightGBM members), and the model's own ``predict`` otherwise.

``top_k`` is a number, or ``auto`` (:func:`choose_top_k`): the running top keeps the best
``max(TOP_K_GRID)`` candidates; the average of the best k is predicted, with its sd, for every k of
:data:`TOP_K_GRID`, and the result is the largest k whose average is predicted within 1 sd of the best-predicted
average (the one-standard-error rule of model selection: the most averaged choice the model cannot tell from the
best). Why: the very best candidates of a large pool are where the model's errors are most likely to be low by
chance (the minimum of many noisy predictions is biased low), so among choices the model cannot separate, the
average of more candidates is the robust one (what the paper's fixed 100 does by hand); a model that is sure of
its best keeps k small. It needs a regressor that gives an uncertainty (the ensemble). A first rule, the k
minimizing predicted + 1 sd, was dropped: on the published 1M data the sd hardly moved with k (0.010-0.019, at
the noise of 10 refits), so it reduced to "the lowest prediction" (k=5), trusting exactly that bias.

:func:`baseline_mixtures` gives the mixtures a result is compared with (natural = token prior, uniform,
target-domain-only, and any mixture files). What a search reads and writes (priors, ``search.json``,
``top_k.csv``, the Megatron export) is :mod:`regmix_megatron.search.outputs`.

Pure core: numpy (+ numba through the fast predictor); writes no files.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence, Union

import numpy as np

from ..configs import check
from ..errors import DataError, RegmixError
from ..mixtures.mixture import Mixture, normalize_exact
from ..regression.target import Target

if TYPE_CHECKING:
    from ..regression.models import Prediction

logger = logging.getLogger(__name__)

#: Tolerance on cap checks of averaged/renormalized mixtures (exact renormalization moves weights by ~1e-16).
CAP_TOLERANCE = 1e-9
#: ``top_k`` value: choose k by the model's uncertainty (:func:`choose_top_k`).
TOP_K_AUTO = "auto"
#: The k that ``top_k: auto`` tries (those up to the pool size).
TOP_K_GRID = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000)
#: ``top_k: auto`` keeps the largest k whose average is predicted within this many sd of the best average.
TOP_K_NUM_SD = 1.0


@dataclass
class SearchConfig:
    """How the candidate pool is simulated and reduced."""

    num_candidates: int = 1_000_000
    """Size of the simulated pool (the paper: 1M)."""
    top_k: Union[int, str] = 100
    """The best ``top_k`` predicted candidates are averaged (the paper: 100-128), or ``auto``: k chosen among
    :data:`TOP_K_GRID` by the model's uncertainty (:func:`choose_top_k`; needs a regressor that gives one)."""
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
        """The k tried: the fixed one, or those of :data:`TOP_K_GRID` up to the pool size."""
        if not self.auto_top_k:
            return (int(self.top_k),)
        return tuple(k for k in TOP_K_GRID if k <= self.num_candidates)


@dataclass(frozen=True)
class TopKChoice:
    """How many of the best candidates were averaged, and why."""

    k: int
    rule: str
    """``fixed`` (a number was given) or ``auto`` (:func:`choose_top_k`)."""
    reason: str
    tried: tuple[dict, ...] = ()
    """``auto``: per k tried, the average's ``predicted_loss``, ``predicted_sd`` and whether it is ``within`` 1 sd
    of the best average's prediction."""

    def to_json(self) -> dict:
        return {"k": self.k, "rule": self.rule, "reason": self.reason, "tried": [dict(t) for t in self.tried]}


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
    top_k: TopKChoice | None = None
    """How many candidates were averaged (``top_rows`` holds exactly those) and why."""


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


def check_within_bounds(rows: np.ndarray, lower: np.ndarray, upper: np.ndarray,
                        tolerance: float = CAP_TOLERANCE) -> np.ndarray:
    """Boolean per row: every weight within [lower - tol, upper + tol]."""
    rows = np.atleast_2d(rows)
    return np.all((rows <= upper + tolerance) & (rows >= lower - tolerance), axis=1)


def run_search(predict: Callable[[np.ndarray], np.ndarray], tokens_per_domain: np.ndarray,
               domains: Sequence[str], sampler_config: Any, config: SearchConfig,
               progress: Callable[[int, int], None] | None = None,
               estimate: Callable[[np.ndarray], "Prediction"] | None = None) -> SearchResult:
    """Simulate ``config.num_candidates`` candidates with the sampler, keep the top-k, average them.

    ``tokens_per_domain`` and ``domains`` are in the model's feature order. ``sampler_config`` is a
    :class:`regmix_megatron.mixtures.sampling.SamplerConfig` (its seed is replaced by ``config.seed``). ``estimate``
    (rows -> predictions with their sd, e.g. ``regressor.predict_with_sd``) is needed by ``top_k: auto``.
    """
    import dataclasses

    from ..mixtures.caps import domain_caps
    from ..mixtures.sampler import iter_pool

    if config.auto_top_k and estimate is None:
        raise RegmixError(f"top_k {TOP_K_AUTO!r} needs predictions with an uncertainty: no estimator given")
    sampler_config = dataclasses.replace(sampler_config, seed=config.seed)
    tokens = np.asarray(tokens_per_domain)
    lower, upper = domain_caps(tokens, sampler_config, domains=list(domains))
    top = TopK(max(config.top_k_grid()), len(domains), maximize=config.maximize)
    seconds = {"sample": 0.0, "predict": 0.0, "top_k": 0.0}
    t = time.perf_counter()
    for chunk in iter_pool(tokens, sampler_config, config.num_candidates, config.chunk_size, domains=list(domains)):
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
        raise RegmixError(f"{int((~inside).sum())} of the top-{top.rows.shape[0]} candidates violate the caps: "
                          "sampler bug, please report")
    if config.auto_top_k:
        t = time.perf_counter()
        choice = choose_top_k(top.rows, estimate, config.top_k_grid(), maximize=config.maximize)
        seconds["choose_k"] = time.perf_counter() - t
    else:
        choice = TopKChoice(int(config.top_k), "fixed", "given (search.top_k / --top-k)")
    k = choice.k
    mixture = Mixture.from_array(list(domains), normalize_exact(top.rows[:k].mean(axis=0)))
    predicted = float(predict(mixture.as_array(list(domains))[None, :])[0])
    return SearchResult(mixture=mixture, predicted=predicted, top_scores=top.scores[:k], top_rows=top.rows[:k],
                        top_positions=top.positions[:k], num_candidates=top.num_seen, lower=lower, upper=upper,
                        seconds=seconds, top_k=choice)


def choose_top_k(top_rows: np.ndarray, estimate: Callable[[np.ndarray], "Prediction"], grid: Sequence[int],
                 maximize: bool = False, num_sd: float = TOP_K_NUM_SD) -> TopKChoice:
    """The one-standard-error rule over k: of the averages of the best k rows (``top_rows`` sorted best first) for
    each k of ``grid``, find the best predicted one; the result is the largest k whose average's prediction is
    within ``num_sd`` of that one's sd of it. Refuses predictions without an uncertainty."""
    grid = [int(k) for k in grid if k <= top_rows.shape[0]]
    if not grid:
        raise RegmixError(f"top_k {TOP_K_AUTO!r}: no k to try among {list(TOP_K_GRID)} with "
                          f"{top_rows.shape[0]} candidates")
    averages = np.stack([normalize_exact(top_rows[:k].mean(axis=0)) for k in grid])
    pred = estimate(averages)
    if pred.sd is None:
        raise RegmixError(f"top_k {TOP_K_AUTO!r} chooses k by the model's uncertainty, and this regressor gives "
                          "none: use the ensemble (search.regressor: ensemble, --regressor ensemble) or a fixed "
                          "top_k such as 100")
    sign = -1.0 if maximize else 1.0
    best = int(np.argmin(sign * pred.mean))
    limit = pred.mean[best] + sign * num_sd * pred.sd[best]
    within = sign * pred.mean <= sign * limit
    chosen = max(i for i in range(len(grid)) if within[i])
    tried = tuple({"k": k, "predicted_loss": float(m), "predicted_sd": float(sd), "within": bool(w)}
                  for k, m, sd, w in zip(grid, pred.mean, pred.sd, within))
    side = "+" if sign > 0 else "-"
    reason = (f"the largest k whose average's prediction is within {num_sd:g} sd of the best average's "
              f"(k={grid[best]}: {pred.mean[best]:.4f} {side} {num_sd:g} x {pred.sd[best]:.4f} = {limit:.4f}); "
              f"k={grid[chosen]} predicts {pred.mean[chosen]:.4f}, among k in {grid}")
    return TopKChoice(grid[chosen], TOP_K_AUTO, reason, tried)


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

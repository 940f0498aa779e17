"""Search (RegMix step 5): simulate a large pool of candidate mixtures, predict, average the top-k.

The pool is drawn with the sweep's own sampler (:func:`regmix_megatron.sampling.iter_candidates`) and the same
token/epoch caps, so a candidate outside the caps is never proposed. It is processed in chunks (memory is
bounded by the chunk size, whatever the pool size) and a running top-k is kept across chunks. The result is
the exactly renormalized mean of the top-k candidates; since the feasible region (simplex intersected with
per-domain bounds) is convex, the mean stays within the caps.

Predictions use the exact fast LightGBM evaluator (:mod:`regmix_megatron.regression.fastpredict`) for LightGBM
models, and the model's own ``predict`` otherwise. Baselines (natural = token prior, uniform,
target-domain-only, and any mixture files) are predicted with the same model for comparison.

Pure core: numpy (+ numba through the fast predictor).
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from .configs import check
from .errors import DataError, RegmixError
from .mixture import Mixture, normalize_exact

logger = logging.getLogger(__name__)

FORMAT = "regmix-megatron/search/v1"
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
        from .regression.fastpredict import FastPredictor

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
    :class:`regmix_megatron.sampling.SamplerConfig` (its seed is replaced by ``config.seed``).
    """
    import dataclasses

    from .sampling import domain_caps, iter_candidates

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
def baseline_mixtures(source: Any, target_domain: str | None = None,
                      extra: Mapping[str, Mixture] | None = None) -> dict[str, Mixture]:
    """``natural`` (token prior), ``uniform``, ``target_only`` (when ``target_domain`` is given) and ``extra``.

    ``source`` is a :class:`~regmix_megatron.manifest.DomainRegistry` (prior from exact train token counts) or a
    prior :class:`Mixture`.
    """
    if isinstance(source, Mixture):
        prior = source
    else:
        prior = Mixture.from_array(source.names, source.prior("train"))
    domains = list(prior.domains)
    out = {"natural": prior, "uniform": Mixture.from_array(domains, np.ones(len(domains)))}
    if target_domain is not None:
        if target_domain not in domains:
            raise DataError(f"target domain {target_domain!r} is not among the domains {domains}")
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


def target_domain_of(target: str, domains: Sequence[str]) -> str | None:
    """The domain a target metric measures (``val_loss/x``, ``metric/the_pile_x_val_loss``), or None."""
    from .regression.data import LOSS_PREFIX, REGMIX_LOSS_PATTERN

    if target.startswith(LOSS_PREFIX) and target[len(LOSS_PREFIX):] in domains:
        return target[len(LOSS_PREFIX):]
    m = REGMIX_LOSS_PATTERN.match(target)
    if m and m.group("domain") in domains:
        return m.group("domain")
    return target if target in domains else None


def load_weights_file(path: str | Path, what: str = "prior") -> dict[str, float]:
    """A mapping domain -> number from JSON/YAML: a mixture file (``{"weights": {...}}`` or a plain mapping), a
    RegMix config (``{"train": {"train_the_pile_x": w}}``), or token counts. RegMix ``train_the_pile_`` /
    ``train_`` prefixes are stripped. No normalization here."""
    from .fileio import read_json, read_yaml
    from .regression.data import regmix_domain

    path = Path(path)
    obj = read_yaml(path) if path.suffix in (".yaml", ".yml") else read_json(path)
    if isinstance(obj, Mapping):
        for key in ("weights", "train", "tokens_per_domain"):
            if key in obj and isinstance(obj[key], Mapping):
                obj = obj[key]
                break
    if not isinstance(obj, Mapping) or not obj:
        raise DataError(f"{what} {path}: expected a mapping domain -> number (or {{'weights': {{...}}}})")
    out: dict[str, float] = {}
    for key, value in obj.items():
        name = regmix_domain(str(key)) or str(key)
        try:
            x = float(value)
        except (TypeError, ValueError):
            raise DataError(f"{what} {path}: value of {key!r} is {value!r}, not a number") from None
        if not math.isfinite(x) or x < 0:
            raise DataError(f"{what} {path}: value of {key!r} is {value!r}: use a finite number >= 0")
        if name in out:
            raise DataError(f"{what} {path}: domain {name!r} listed twice")
        out[name] = x
    return out


def tokens_from_mapping(values: Mapping[str, float], domains: Sequence[str], source: str,
                        scale: float = 1.0) -> np.ndarray:
    """Token counts (float64) over ``domains`` from a mapping; names must match exactly."""
    missing = sorted(set(domains) - set(values))
    unknown = sorted(set(values) - set(domains))
    if missing or unknown:
        raise DataError(f"{source}: domains do not match the model's: missing {missing}, unknown {unknown}; "
                        f"give a value for each of {list(domains)}")
    t = np.array([values[d] for d in domains], dtype=np.float64) * scale
    if t.sum() <= 0:
        raise DataError(f"{source}: all values are zero")
    return t


def summarize(result: SearchResult, domains: Sequence[str], baselines: Mapping[str, Mixture],
              predict: Callable[[np.ndarray], np.ndarray], config: SearchConfig, *, target: str,
              extra: Mapping[str, Any] | None = None) -> dict:
    """The JSON document written as ``search.json``."""
    domains = list(domains)
    base = {}
    for name, m in baselines.items():
        w = m.as_array(domains)
        base[name] = {"predicted": float(predict(w[None, :])[0]), "weights": m.as_dict(),
                      "within_caps": bool(check_within_bounds(w, result.lower, result.upper)[0])}
    better = [n for n, b in base.items()
              if (result.predicted > b["predicted"] if config.maximize else result.predicted < b["predicted"])]
    doc = {
        "format": FORMAT,
        "target": target,
        "objective": "maximize" if config.maximize else "minimize",
        "config": {"num_candidates": config.num_candidates, "top_k": config.top_k,
                   "chunk_size": config.chunk_size, "seed": config.seed},
        "result": {"predicted": result.predicted, "weights": result.mixture.as_dict(),
                   "hash": result.mixture.hash,
                   "within_caps": bool(check_within_bounds(result.mixture.as_array(domains), result.lower,
                                                           result.upper)[0])},
        "top_k": {"best": float(result.top_scores[0]), "worst": float(result.top_scores[-1]),
                  "mean": float(result.top_scores.mean())},
        "baselines": base,
        "result_beats": sorted(better),
        "domains": domains,
        "bounds": {"lower": dict(zip(domains, map(float, result.lower))),
                   "upper": dict(zip(domains, map(float, result.upper)))},
        "seconds": {k: round(v, 3) for k, v in result.seconds.items()},
    }
    if extra:
        doc.update(extra)
    return doc


def write_top_k(result: SearchResult, domains: Sequence[str], path: str | Path) -> Path:
    """The top-k candidates (rank, pool position, predicted, weights) as CSV, atomically."""
    import pandas as pd

    from .fileio import atomic_path

    frame = pd.DataFrame(result.top_rows, columns=list(domains))
    frame.insert(0, "predicted", result.top_scores)
    frame.insert(0, "pool_position", result.top_positions)
    frame.insert(0, "rank", np.arange(1, len(frame) + 1))
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False, float_format="%.17g")
    return Path(path)


def search_and_write(regressor: Any, tokens_per_domain: np.ndarray, sampler_config: Any, config: SearchConfig,
                     output_dir: str | Path, *, registry: Any = None, prior: Mixture | None = None,
                     extra_baselines: Mapping[str, Mixture] | None = None, fast: bool = True,
                     progress: Callable[[int, int], None] | None = None,
                     extra: Mapping[str, Any] | None = None, export_dir: str = "megatron") -> dict:
    """Run the search for a fitted ``regressor`` and write ``mixture.json``, ``search.json``, ``top_k.csv`` and,
    with a ``registry`` (:class:`~regmix_megatron.manifest.DomainRegistry`), the Megatron files under
    ``export_dir/``. ``tokens_per_domain`` is in the regressor's domain order; ``prior`` defaults to the token
    shares. Returns the ``search.json`` document."""
    from .fileio import atomic_write_json

    domains = list(regressor.domains)
    if registry is not None:
        regressor.check_domains(registry.names, f"domains manifest {registry.path or ''}".strip())
    if prior is None:
        prior = Mixture.from_array(domains, tokens_per_domain)
    baselines = baseline_mixtures(prior, target_domain_of(regressor.target, domains), extra_baselines)
    predict = make_predict_fn(regressor, fast=fast)
    result = run_search(predict, tokens_per_domain, domains, sampler_config, config, progress=progress)
    out = Path(output_dir)
    files: dict[str, Any] = {"top_k": str(write_top_k(result, domains, out / "top_k.csv"))}
    doc_extra: dict[str, Any] = {"regressor": regressor.kind, "model": getattr(regressor, "path", "") or None,
                                 "files": files}
    if registry is not None:
        from .export import export_mixture

        exported = export_mixture(registry, result.mixture.restrict(registry.names), out / export_dir)
        files["megatron"] = {k: str(v) for k, v in exported.items()}
    else:
        doc_extra["export_skipped"] = "no domains manifest given (no Megatron prefixes to write)"
    doc_extra.update(extra or {})
    doc = summarize(result, domains, baselines, predict, config, target=regressor.target, extra=doc_extra)
    files["mixture"] = str(result.mixture.save(out / "mixture.json"))
    atomic_write_json(out / "search.json", doc)  # last: its presence means the search finished
    return doc

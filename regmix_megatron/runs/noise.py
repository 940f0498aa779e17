"""Seed noise of runs and how much it limits what a fit or a ranking can show (pure core: the standard library and
numpy).

- :func:`seed_stats`, :func:`pooled_seed_sd`: one mixture's losses over seeds, and the seed sd pooled over the
  mixtures trained with two or more seeds (the noise unit of every verdict, ``full_scale/verdict.py``).

- :func:`spearman_ceiling`: the best Spearman correlation a perfect model can reach against noisy measurements.
  The sweep's target losses ``y`` (one seed each) spread with variance ``var(y)``; a mixture's loss moves with
  the seed alone by ``sd_noise`` (measured on sweep mixtures trained with several seeds). A model that knew
  every mixture's noise-free loss would correlate with the measured losses by Pearson ``r = sqrt(1 -
  sd_noise^2 / var(y))``; for jointly normal values Spearman's rho is ``(6 / pi) * asin(r / 2)``. The fit's CV
  Spearman is shown against this ceiling.
- :func:`spearman_critical_value`: the rank correlation that chance alone reaches with probability ``alpha``
  for ``n`` mixtures (exact up to 8, a seeded permutation estimate above), shown next to the rank-invariance
  threshold.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np


@dataclass(frozen=True)
class SeedStats:
    """One mixture's target losses over seeds."""

    mean: float
    sd: float | None
    """Sample sd (ddof 1); None with one seed."""
    num_seeds: int


def seed_stats(losses: Mapping[int, float] | Sequence[float]) -> SeedStats:
    values = [float(x) for x in (losses.values() if isinstance(losses, Mapping) else losses)]
    if not values:
        raise ValueError("no losses: a compared mixture needs at least one finished run")
    mean = math.fsum(values) / len(values)
    sd = math.sqrt(math.fsum((x - mean) ** 2 for x in values) / (len(values) - 1)) if len(values) >= 2 else None
    return SeedStats(mean, sd, len(values))


def pooled_seed_sd(groups: Sequence[Sequence[float]]) -> tuple[float | None, int]:
    """``(pooled sd, degrees of freedom)`` over the groups with two or more values; ``(None, 0)`` if none."""
    dof = 0
    total = []
    for values in groups:
        values = [float(x) for x in values]
        if len(values) < 2:
            continue
        mean = math.fsum(values) / len(values)
        total.append(math.fsum((x - mean) ** 2 for x in values))
        dof += len(values) - 1
    if dof == 0:
        return None, 0
    return math.sqrt(math.fsum(total) / dof), dof


def spearman_ceiling(spread_sd: float, noise_sd: float) -> float | None:
    """Expected best Spearman between noise-free and measured losses (see the module docstring); None when
    the spread is not measured (``spread_sd`` <= 0)."""
    if not (math.isfinite(spread_sd) and spread_sd > 0 and math.isfinite(noise_sd) and noise_sd >= 0):
        return None
    r = math.sqrt(max(0.0, 1.0 - (noise_sd / spread_sd) ** 2))
    return (6.0 / math.pi) * math.asin(r / 2.0)


def spearman_critical_value(n: int, alpha: float = 0.05, num_draws: int = 20000, seed: int = 0) -> float | None:
    """The smallest rho that chance reaches with probability at most ``alpha``: Spearman's rho between ``n``
    values and a random permutation of them is >= it in at most ``alpha`` of the permutations (None for n < 3, or
    when even rho = 1 is more likely than ``alpha``, as for n = 3 at the default 0.05).
    Exact (every permutation) up to n = 8, a seeded sample of ``num_draws`` permutations above."""
    if n < 3:
        return None
    ranks = np.arange(n, dtype=np.float64)
    if n <= 8:
        from itertools import permutations

        perms = np.array(list(permutations(range(n))), dtype=np.float64)
    else:
        rng = np.random.default_rng(seed)
        perms = np.argsort(rng.random((num_draws, n)), axis=1).astype(np.float64)
    centred = ranks - ranks.mean()
    rho = np.sort(np.round((perms - perms.mean(axis=1, keepdims=True)) @ centred / float(centred @ centred), 12))
    values = np.unique(rho)
    tail = 1.0 - np.searchsorted(rho, values, side="left") / rho.size  # P(rho >= value)
    reachable = values[tail <= alpha]
    return float(reachable.min()) if reachable.size else None  # too few mixtures: no rank is that unlikely


def proxy_noise(repeats: Mapping[str, Sequence[float]], spread: Sequence[float]) -> dict:
    """The proxy seed noise and what it allows: ``repeats`` maps a mixture to its target values over seeds,
    ``spread`` holds the sweep's target values (one seed each). Returns ``sd`` (pooled seed sd, see
    :func:`pooled_seed_sd`) with its ``dof``, ``spread_sd`` (sample sd of ``spread``), their ratio and the
    ``ceiling`` (:func:`spearman_ceiling`); values that cannot be measured are None."""
    sd, dof = pooled_seed_sd([list(v) for v in repeats.values()])
    values = np.asarray([x for x in spread if math.isfinite(x)], dtype=np.float64)
    spread_sd = float(values.std(ddof=1)) if values.size >= 2 else None
    ceiling = spearman_ceiling(spread_sd, sd) if (sd is not None and spread_sd is not None) else None
    return {"sd": sd, "dof": dof, "num_mixtures": sum(1 for v in repeats.values() if len(v) >= 2),
            "spread_sd": spread_sd, "noise_to_spread": (sd / spread_sd) if sd is not None and spread_sd else None,
            "ceiling": ceiling}

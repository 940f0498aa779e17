"""Sampler speed: ours (vectorized, log-space Dirichlet, pairwise dedup) vs a per-sample loop baseline.

The baseline is the straightforward form of the method (as the reference implementation does it): one
``Generator.dirichlet`` call per mixture with a strength picked per sample, reject if any weight exceeds its
cap, zero weights below min_weight, renormalize. Both use the method's defaults on 17 Pile-like domains.
Prints throughputs and ends with ``ratio: <ours/baseline>`` (candidates per second, higher is better).
Timings are wall-clock on a shared machine: noisy.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from regmix_megatron.mixtures.caps import domain_caps  # noqa: E402
from regmix_megatron.mixtures.sampler import iter_pool, sample_rows  # noqa: E402
from regmix_megatron.mixtures.sampler_config import SamplerConfig  # noqa: E402

PILE_GB = [56.2, 7.8, 0.9, 4.6, 51.2, 95.2, 10.9, 3.9, 2.0, 2.4, 227.1, 19.3, 90.3, 32.2, 5.5, 22.9, 6.4]
TOKENS = (np.array(PILE_GB) * 0.25e9).astype(np.int64)


def baseline(tokens: np.ndarray, config: SamplerConfig, num: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    p = tokens / tokens.sum()
    q = p**config.temperature
    q /= q.sum()
    strengths = config.strengths()
    cap = np.minimum(config.cap_multiplier * p, 1.0)
    out = []
    while len(out) < num:
        s = strengths[rng.integers(len(strengths))]
        w = rng.dirichlet(q * s)
        if not np.all(np.isfinite(w)) or np.any(w > cap):
            continue
        w[w < config.min_weight] = 0.0
        w /= w.sum()
        out.append(w)
    return np.array(out)


def timed(fn, repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def main() -> None:
    config = SamplerConfig(seed=0)
    print(f"domains: {len(TOKENS)} (Pile-like prior), caps: {np.round(domain_caps(TOKENS, config)[1], 3).tolist()}")
    t512 = timed(lambda: sample_rows(TOKENS, config))
    print(f"ours: 512 deduplicated mixtures in {t512 * 1e3:.1f} ms")
    t1m = timed(lambda: sum(len(c) for c in iter_pool(TOKENS, config, 1_000_000)), repeat=1)
    print(f"ours: 1,000,000 candidates in {t1m:.2f} s ({1e6 / t1m:,.0f}/s)")
    tight = SamplerConfig(seed=0, max_epochs=1.0, target_tokens=int(TOKENS.sum() * 0.9), cap_multiplier=None)
    t_tight = timed(lambda: sample_rows(TOKENS, tight), repeat=1)
    print(f"ours: 512 mixtures with tight caps (budget = 90% of all tokens at 1 epoch; projection) in "
          f"{t_tight * 1e3:.1f} ms")
    num_base = 50_000
    t_base = timed(lambda: baseline(TOKENS, config, num_base, 0), repeat=1)
    t_ours = timed(lambda: sum(len(c) for c in iter_pool(TOKENS, config, num_base)), repeat=3)
    print(f"baseline (per-sample loop): {num_base:,} candidates in {t_base:.2f} s ({num_base / t_base:,.0f}/s)")
    print(f"ours: {num_base:,} candidates in {t_ours:.3f} s ({num_base / t_ours:,.0f}/s)")
    print(f"ratio: {t_base / t_ours:.1f}")


if __name__ == "__main__":
    main()

"""Noise ceilings (regmix_megatron/runs/noise.py): closed forms checked against simulation and limits."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import spearmanr

from regmix_megatron.runs.noise import pooled_seed_sd, seed_stats, spearman_ceiling, spearman_critical_value


def test_ceiling_limits():
    assert spearman_ceiling(0.2, 0.0) == pytest.approx(1.0)
    assert spearman_ceiling(0.2, 0.2) == pytest.approx(0.0)
    assert spearman_ceiling(0.2, 0.3) == pytest.approx(0.0)  # noise above the spread: nothing to rank
    assert spearman_ceiling(0.0, 0.1) is None
    assert spearman_ceiling(0.2, 0.05) > spearman_ceiling(0.2, 0.1) > spearman_ceiling(0.2, 0.15)


def test_ceiling_matches_a_simulated_perfect_model():
    rng = np.random.default_rng(0)
    spread_sd, noise_sd, n = 0.20, 0.08, 400
    true_sd = np.sqrt(spread_sd ** 2 - noise_sd ** 2)  # the measured spread includes the noise
    rhos = []
    for _ in range(200):
        truth = rng.normal(0, true_sd, n)
        measured = truth + rng.normal(0, noise_sd, n)
        rhos.append(spearmanr(truth, measured)[0])
    assert spearman_ceiling(spread_sd, noise_sd) == pytest.approx(np.mean(rhos), abs=0.01)


def test_critical_value_by_exact_enumeration():
    from itertools import permutations

    n = 6
    ranks = np.arange(n)
    rhos = np.round([spearmanr(ranks, p)[0] for p in permutations(ranks)], 12)
    exact = min(v for v in set(rhos) if np.mean(rhos >= v) <= 0.05)
    assert spearman_critical_value(n) == pytest.approx(exact, abs=1e-9)  # 0.829 (tables: 0.829 at n = 6)
    assert spearman_critical_value(8) == spearman_critical_value(8)  # seeded
    assert spearman_critical_value(8) == pytest.approx(0.643, abs=1e-3)  # tables: 0.643 at n = 8, one-sided 5%
    assert 0.5 < spearman_critical_value(10) < 0.6  # tables: 0.564 (sampled permutations above n = 8)
    assert spearman_critical_value(2) is None


def test_seed_stats_and_pooled_sd_by_hand():
    s = seed_stats({1: 5.0, 2: 5.2, 3: 5.4})
    assert s.mean == pytest.approx(5.2) and s.sd == pytest.approx(0.2) and s.num_seeds == 3
    assert seed_stats([4.0]).sd is None
    # variances 0.04 (2 dof) and 0.01 (1 dof): pooled sqrt((2 * 0.04 + 1 * 0.01) / 3) = sqrt(0.03)
    sd, dof = pooled_seed_sd([[5.0, 5.2, 5.4], [6.0, 6.1 + 0.0414213562373095], [7.0]])
    second_var = (0.1414213562373095 ** 2) / 2  # two values 0.1414 apart: variance d^2 / 2
    assert dof == 3
    assert sd == pytest.approx(math.sqrt((2 * 0.04 + second_var) / 3), rel=1e-12)
    assert pooled_seed_sd([[1.0], [2.0]]) == (None, 0)
    with pytest.raises(ValueError, match="no losses"):
        seed_stats({})

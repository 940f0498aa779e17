"""Regression metrics (regmix_megatron/regression/metrics.py), checked against scipy (a test-only dependency)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.stats

from regmix_megatron.regression.metrics import evaluate, mse, pearson, rank_average, spearman


def test_metrics_match_scipy():
    rng = np.random.default_rng(0)
    a = rng.standard_normal(200)
    b = a + rng.standard_normal(200)
    b[:20] = b[20]  # ties
    assert spearman(a, b) == pytest.approx(scipy.stats.spearmanr(a, b)[0], abs=1e-12)
    assert pearson(a, b) == pytest.approx(scipy.stats.pearsonr(a, b)[0], abs=1e-12)
    assert mse(a, b) == pytest.approx(np.mean((a - b) ** 2))
    np.testing.assert_array_equal(rank_average(b), scipy.stats.rankdata(b))
    assert np.isnan(spearman(a, np.ones(200)))
    assert evaluate(a, b)["num_runs"] == 200

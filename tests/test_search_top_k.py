"""How many candidates a search averages (regmix_megatron/search/top_k.py): the running top-k (chunking-invariant, ties
by position) and ``top_k: auto`` (the one-standard-error rule)."""

from __future__ import annotations

import numpy as np
import pytest

from regmix_megatron.errors import RegmixError
from regmix_megatron.search.top_k import TopK, choose_top_k


def test_top_k_is_chunking_invariant():
    rng = np.random.default_rng(1)
    scores = np.round(rng.random(10_000), 2)  # many ties
    rows = rng.random((10_000, 3))
    results = []
    for cuts in ([10_000], [1, 999, 5000, 4000], [333] * 30 + [10]):
        top = TopK(25, 3)
        start = 0
        for c in cuts:
            top.update(scores[start:start + c], rows[start:start + c])
            start += c
        results.append((top.positions.copy(), top.rows.copy()))
    for pos, r in results[1:]:
        np.testing.assert_array_equal(pos, results[0][0])
        np.testing.assert_array_equal(r, results[0][1])
    top = TopK(5, 3, maximize=True)
    top.update(scores, rows)
    assert np.all(top.scores == np.sort(scores)[::-1][:5])


def _fixed_estimate(mean, sd):
    """An estimator that answers the averages of the grid, in order, with these predictions."""
    from regmix_megatron.regression.models import Prediction

    def estimate(rows):
        assert rows.shape[0] == len(mean) and np.allclose(rows.sum(axis=1), 1.0)
        return Prediction(np.asarray(mean, float), None if sd is None else np.asarray(sd, float))

    return estimate


def test_choose_top_k_keeps_the_largest_k_within_one_sd_of_the_best():
    rows = np.random.default_rng(0).dirichlet(np.ones(5), size=60)
    grid = [1, 2, 5, 10, 20, 50, 100]  # 100 > 60 rows: not tried
    mean = [5.00, 4.99, 5.00, 5.005, 5.02, 5.05]
    choice = choose_top_k(rows, _fixed_estimate(mean, [0.02] * 6), grid)
    assert choice.k == 10 and choice.rule == "auto" and "k=2" in choice.reason  # 5.005 <= 4.99 + 0.02 < 5.02
    assert [t["k"] for t in choice.tried] == [1, 2, 5, 10, 20, 50]
    assert [t["within"] for t in choice.tried] == [True, True, True, True, False, False]
    assert choose_top_k(rows, _fixed_estimate(mean, [0.001] * 6), grid).k == 2  # a sure model keeps its best
    higher = choose_top_k(rows, _fixed_estimate([-m for m in mean], [0.02] * 6), grid, maximize=True)
    assert higher.k == 10
    with pytest.raises(RegmixError, match="gives none: use the ensemble"):
        choose_top_k(rows, _fixed_estimate(mean, None), grid)

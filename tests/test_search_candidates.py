"""The search algorithm (regmix_megatron/search/candidates.py): caps respected, top-k averaging, determinism, chunking
invariance, baselines."""

from __future__ import annotations

import numpy as np
import pytest

from helpers.search import DOMAINS, TOKENS, fitted_model
from regmix_megatron.errors import DataError, RegmixError
from regmix_megatron.mixtures.mixture import Mixture
from regmix_megatron.mixtures.caps import domain_caps
from regmix_megatron.mixtures.sampler_config import SamplerConfig
from regmix_megatron.search.candidates import (
    SearchConfig,
    TopK,
    baseline_mixtures,
    check_within_bounds,
    make_predict_fn,
    run_search,
)
from regmix_megatron.regression.target import Target


@pytest.fixture(scope="module")
def model():
    return fitted_model()


def _tight_sampler(**kw):
    # Epoch caps bind (code 2e6 tokens, 1.2 epochs, 10M target tokens -> cap 0.24; news -> 0.12).
    return SamplerConfig(max_epochs=1.2, target_tokens=10_000_000, cap_multiplier=None, **kw)


def test_search_never_violates_caps(model):
    sampler = _tight_sampler()
    lower, upper = domain_caps(TOKENS, sampler, domains=DOMAINS)
    assert upper[1] == pytest.approx(0.24) and upper[2] == pytest.approx(0.12)
    predict = make_predict_fn(model)
    result = run_search(predict, TOKENS, DOMAINS, sampler, SearchConfig(num_candidates=20_000, top_k=50,
                                                                        chunk_size=7_000))
    assert check_within_bounds(result.top_rows, lower, upper).all()
    w = result.mixture.as_array(DOMAINS)
    assert np.all(w <= upper + 1e-12) and abs(w.sum() - 1) < 1e-15
    # The model wants as much code and news as possible: the caps bind, yet are respected.
    assert w[1] > 0.15 and w[2] > 0.05


def test_top_k_average_and_prediction(model):
    predict = make_predict_fn(model)
    config = SearchConfig(num_candidates=5_000, top_k=10, chunk_size=2_000, seed=3)
    result = run_search(predict, TOKENS, DOMAINS, SamplerConfig(), config)
    assert result.top_scores.shape == (10,) and np.all(np.diff(result.top_scores) >= 0)
    np.testing.assert_allclose(result.mixture.as_array(DOMAINS), result.top_rows.mean(axis=0), atol=1e-15)
    np.testing.assert_array_equal(predict(result.top_rows), result.top_scores)
    assert result.predicted == predict(result.mixture.as_array(DOMAINS)[None])[0]
    # brute force over the same pool: the same 10 best
    from regmix_megatron.mixtures.sampler import iter_pool

    import dataclasses

    pool = np.concatenate(list(iter_pool(TOKENS, dataclasses.replace(SamplerConfig(), seed=3), 5_000,
                                               2_000, domains=DOMAINS)))
    scores = predict(pool)
    best = np.lexsort((np.arange(len(scores)), scores))[:10]
    np.testing.assert_array_equal(result.top_positions, best)


def test_deterministic_with_seed(model):
    predict = make_predict_fn(model)
    runs = [run_search(predict, TOKENS, DOMAINS, SamplerConfig(), SearchConfig(num_candidates=3_000, top_k=20,
                                                                               chunk_size=1_000, seed=s))
            for s in (7, 7, 8)]
    assert runs[0].mixture == runs[1].mixture and runs[0].predicted == runs[1].predicted
    assert runs[0].mixture != runs[2].mixture


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


def test_fast_and_plain_predictions_give_the_same_search(model):
    config = SearchConfig(num_candidates=4_000, top_k=10, chunk_size=1_500)
    fast = run_search(make_predict_fn(model), TOKENS, DOMAINS, SamplerConfig(), config)
    plain = run_search(make_predict_fn(model, fast=False), TOKENS, DOMAINS, SamplerConfig(), config)
    assert fast.mixture == plain.mixture


def test_baselines():
    prior = Mixture.from_array(DOMAINS, TOKENS)
    base = baseline_mixtures(prior, Target.domain("code"), {"hand": Mixture.from_dict({"web": 0.5, "code": 0.5})})
    assert base["natural"] == prior and base["uniform"].as_array(DOMAINS).tolist() == [0.2] * 5
    assert base["target_only"].as_dict()["code"] == 1.0 and base["hand"].as_dict()["books"] == 0.0
    # target_only needs one target domain
    assert set(baseline_mixtures(prior, Target.average())) == {"natural", "uniform"}
    assert set(baseline_mixtures(prior, Target.weighted({"code": 1, "web": 1}))) == {"natural", "uniform"}
    # a target domain outside the mixture's domains (a held-out, evaluation-only one) has no target_only
    assert set(baseline_mixtures(prior, Target.domain("qa"))) == {"natural", "uniform"}
    with pytest.raises(DataError, match="unknown to the model"):
        baseline_mixtures(prior, None, {"x": Mixture.from_dict({"math": 1.0})})
    with pytest.raises(RegmixError, match="top_k"):
        SearchConfig(num_candidates=10, top_k=11)


# ---- top_k: auto -----------------------------------------------------------------------------------------------
def _fixed_estimate(mean, sd):
    """An estimator that answers the averages of the grid, in order, with these predictions."""
    from regmix_megatron.regression.models import Prediction

    def estimate(rows):
        assert rows.shape[0] == len(mean) and np.allclose(rows.sum(axis=1), 1.0)
        return Prediction(np.asarray(mean, float), None if sd is None else np.asarray(sd, float))

    return estimate


def test_choose_top_k_keeps_the_largest_k_within_one_sd_of_the_best():
    from regmix_megatron.search.candidates import choose_top_k

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


def test_top_k_config_accepts_a_number_or_auto():
    from regmix_megatron.errors import ConfigError

    assert SearchConfig(num_candidates=5000, top_k="auto").top_k_grid() == (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000)
    assert SearchConfig(num_candidates=30, top_k="auto").top_k_grid() == (1, 2, 5, 10, 20)
    assert SearchConfig(top_k=64).top_k_grid() == (64,)
    for bad in ("best", True, 0, "100"):
        with pytest.raises(ConfigError, match=r"search\.top_k=.* use an integer between 1 and num_candidates"):
            SearchConfig(top_k=bad)


def test_auto_top_k_search_with_the_ensemble():
    from helpers.search import fitted_ensemble

    ensemble = fitted_ensemble()
    predict = make_predict_fn(ensemble)
    rows = np.random.default_rng(1).dirichlet(np.ones(5), size=3000)
    np.testing.assert_array_equal(predict(rows), ensemble.predict(rows))  # fast members, same numbers
    config = SearchConfig(num_candidates=4_000, top_k="auto", chunk_size=1_500, seed=2)
    result = run_search(predict, TOKENS, DOMAINS, SamplerConfig(), config, estimate=ensemble.predict_with_sd)
    k = result.top_k.k
    assert result.top_k.rule == "auto" and k in config.top_k_grid() and result.top_rows.shape == (k, 5)
    np.testing.assert_allclose(result.mixture.as_array(DOMAINS), result.top_rows.mean(axis=0), atol=1e-15)
    tried = {t["k"]: t for t in result.top_k.tried}
    best = min(tried.values(), key=lambda t: t["predicted_loss"])
    assert tried[k]["predicted_loss"] <= best["predicted_loss"] + best["predicted_sd"]
    assert all(not t["within"] for kk, t in tried.items() if kk > k)
    assert result.predicted == pytest.approx(tried[k]["predicted_loss"], abs=1e-12)
    with pytest.raises(RegmixError, match="needs predictions with an uncertainty"):
        run_search(predict, TOKENS, DOMAINS, SamplerConfig(), config)

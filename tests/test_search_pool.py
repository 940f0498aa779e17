"""The search algorithm (regmix_megatron/search/pool.py): caps respected, top-k averaging, determinism, chunking
invariance of the pool, the search over schedules (a known optimum found phase by phase, the best static mixture
under the same model), and a mixture as the one-phase search."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from helpers.search import DOMAINS, TOKENS, fitted_model
from regmix_megatron.errors import DataError, RegmixError
from regmix_megatron.mixtures.caps import domain_caps, joint_upper
from regmix_megatron.mixtures.mixture import Mixture
from regmix_megatron.mixtures.sampler_config import SamplerConfig
from regmix_megatron.mixtures.schedule import Schedule, feature_names
from regmix_megatron.regression.models import LinearRegressor
from regmix_megatron.search.pool import (
    SearchConfig,
    check_within_bounds,
    make_predict_fn,
    run_search,
    search_model,
    static_predictor,
)


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




def test_fast_and_plain_predictions_give_the_same_search(model):
    config = SearchConfig(num_candidates=4_000, top_k=10, chunk_size=1_500)
    fast = run_search(make_predict_fn(model), TOKENS, DOMAINS, SamplerConfig(), config)
    plain = run_search(make_predict_fn(model, fast=False), TOKENS, DOMAINS, SamplerConfig(), config)
    assert fast.mixture == plain.mixture




# ---- top_k: auto -----------------------------------------------------------------------------------------------




def test_top_k_config_accepts_a_number_or_auto():
    from regmix_megatron.errors import ConfigError

    assert SearchConfig(num_candidates=5000, top_k="auto").top_k_grid() == (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000)
    assert SearchConfig(num_candidates=30, top_k="auto").top_k_grid() == (1, 2, 5, 10, 20)
    assert SearchConfig(top_k=64).top_k_grid() == (64,)
    for bad in ("best", True, 0, "100"):
        with pytest.raises(ConfigError, match=r"search\.top_k=.* use an integer between 1 and num_candidates"):
            SearchConfig(top_k=bad)
    with pytest.raises(RegmixError, match="top_k"):
        SearchConfig(num_candidates=10, top_k=11)


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


# ---- schedules: the same search over phases ---------------------------------------------------------------
FRACTIONS = (0.8, 0.2)
NAMES = feature_names(DOMAINS, 2)


def loss(x: np.ndarray) -> np.ndarray:
    """Lower with news early and code late; web hurts in both phases."""
    x = np.atleast_2d(x)
    col = {n: i for i, n in enumerate(NAMES)}
    return 4 - 1.0 * x[:, col["p1/news"]] - 2.0 * x[:, col["p2/code"]] + 0.5 * (x[:, col["p1/web"]] + x[:, col["p2/web"]])


SCHEDULE_SAMPLER = SamplerConfig(seed=5, cap_multiplier=None, max_epochs=1.0, target_tokens=6_000_000)


def test_a_schedule_search_finds_the_known_optimum_phase_by_phase():
    result = run_search(loss, TOKENS, DOMAINS, SCHEDULE_SAMPLER, SearchConfig(num_candidates=20_000, top_k=50, chunk_size=4096,
                                                                     seed=1), fractions=FRACTIONS)
    schedule = result.schedule
    first, second = (m.as_dict() for m in schedule.mixtures)
    assert first["news"] > second["news"] and second["code"] > first["code"]
    assert np.all(schedule.overall().as_array() <= joint_upper(TOKENS, SCHEDULE_SAMPLER) + 1e-12)
    assert result.predicted == pytest.approx(float(loss(schedule.features())[0]))
    assert result.predicted <= np.median(result.top_scores) + 0.05
    static = run_search(static_predictor(loss, FRACTIONS), TOKENS, DOMAINS, SCHEDULE_SAMPLER,
                        SearchConfig(num_candidates=20_000, top_k=50, chunk_size=4096, seed=1))
    assert static.predicted == pytest.approx(float(static_predictor(loss, FRACTIONS)(static.mixture.as_array())[0]))
    assert result.predicted < static.predicted  # a schedule can do what no single mixture can here
    again = run_search(loss, TOKENS, DOMAINS, SCHEDULE_SAMPLER, SearchConfig(num_candidates=20_000, top_k=50, chunk_size=4096,
                                                                    seed=1), fractions=FRACTIONS)
    assert again.schedule.hash == schedule.hash  # deterministic (seed and chunk size define the pool, as for mixtures)


def test_a_schedule_search_refuses_auto_top_k_and_search_model_adds_the_best_static_mixture():
    from helpers.search import fitted_ensemble

    with pytest.raises(RegmixError, match="top_k 'auto' is for mixture searches"):
        run_search(loss, TOKENS, DOMAINS, SCHEDULE_SAMPLER, SearchConfig(num_candidates=100, top_k="auto"),
                   estimate=fitted_ensemble().predict_with_sd, fractions=FRACTIONS)
    rng = np.random.default_rng(3)
    x = np.stack([Schedule.from_phases([(f, Mixture.from_array(DOMAINS, rng.dirichlet(np.ones(5)))) for f in FRACTIONS])
                  .features(DOMAINS) for _ in range(60)])
    model = LinearRegressor(NAMES, "val_loss/code").fit(x, loss(x))
    config = SearchConfig(num_candidates=5000, top_k=20, chunk_size=2000, seed=1)
    outcome = search_model(model, TOKENS, SCHEDULE_SAMPLER, config, domains=DOMAINS, fractions=FRACTIONS)
    assert outcome.fractions == FRACTIONS and outcome.feature_names == NAMES and outcome.static is not outcome.best
    static = run_search(static_predictor(make_predict_fn(model), FRACTIONS), TOKENS, DOMAINS, SCHEDULE_SAMPLER, config)
    assert outcome.static_mixture == static.mixture and outcome.static.predicted == static.predicted
    with pytest.raises(DataError, match=r"features of 3 phase\(s\) over .*extra \[.p3/books"):
        search_model(model, TOKENS, SCHEDULE_SAMPLER, config, domains=DOMAINS, fractions=(0.5, 0.3, 0.2))


def test_a_mixture_is_the_one_phase_search(model):
    """One phase: the schedule is the mixture (same hash), the features are the weights, the bounds are the domain
    caps, and search_model's best static mixture is the result itself."""
    sampler = _tight_sampler()
    config = SearchConfig(num_candidates=6_000, top_k=30, chunk_size=2_500, seed=4)
    result = run_search(make_predict_fn(model), TOKENS, DOMAINS, sampler, config)
    assert result.schedule.is_static and result.schedule.hash == result.mixture.hash
    assert result.schedule.mixtures[0] == result.mixture and result.mixture.domains == tuple(sorted(DOMAINS))
    lower, upper = domain_caps(TOKENS, dataclasses.replace(sampler, seed=4), domains=DOMAINS)
    assert np.array_equal(result.lower, lower) and np.array_equal(result.upper, upper)
    outcome = search_model(model, TOKENS, sampler, config)
    assert outcome.static is outcome.best and outcome.static_mixture == result.mixture
    assert outcome.best.predicted == result.predicted and outcome.feature_names == DOMAINS
    assert np.array_equal(outcome.best.top_positions, result.top_positions)

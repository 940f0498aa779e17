"""The compiled LightGBM evaluator predicts exactly what Booster.predict predicts."""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pytest

from regmix_megatron.errors import RegmixError
from regmix_megatron.regression.fastpredict import FastPredictor, compile_booster


def _train(x, y, rounds=60, **params):
    base = {"objective": "regression", "learning_rate": 0.1, "verbose": -1, "num_threads": 1,
            "min_data_in_leaf": 5, "deterministic": True, "seed": 0}
    base.update(params)
    return lgb.train(base, lgb.Dataset(x, y), num_boost_round=rounds)


def _same(booster, x):
    expected = booster.predict(x, num_threads=1)
    fp = FastPredictor(booster)
    got = fp.predict(x)
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(fp.predict_traversal(x), expected)
    return fp


@pytest.fixture(scope="module")
def mixture_model():
    rng = np.random.default_rng(0)
    x = rng.dirichlet(np.full(6, 0.4), size=400)
    x[rng.random(x.shape) < 0.2] = 0.0
    x = x / np.maximum(x.sum(1, keepdims=True), 1e-12)
    y = 3 - 2 * x[:, 0] + np.sin(5 * x[:, 1]) + x[:, 2] * x[:, 3] + 0.01 * rng.standard_normal(400)
    return x, _train(x, y, rounds=150, num_leaves=31)


def test_random_candidates_identical(mixture_model):
    x, booster = mixture_model
    rng = np.random.default_rng(1)
    cand = rng.dirichlet(np.full(6, 0.3), size=3001)  # not a multiple of the chunk size
    fp = _same(booster, cand)
    assert fp.forest.num_trees == 150


def test_training_rows_and_exact_thresholds(mixture_model):
    x, booster = mixture_model
    forest = compile_booster(booster)
    # Every threshold itself, and its neighbouring doubles, for every feature: the `<=` edge.
    rows = []
    for f, th in zip(forest.split_feature, forest.threshold):
        for v in (th, np.nextafter(th, -np.inf), np.nextafter(th, np.inf)):
            r = x[len(rows) % len(x)].copy()
            r[f] = v
            rows.append(r)
    _same(booster, np.vstack([x, np.array(rows)]))


def test_edge_values_zero_tiny_negative_nan_inf(mixture_model):
    _, booster = mixture_model
    specials = np.array([0.0, -0.0, 1e-36, -1e-36, 1e-35, 5e-324, -1.0, 2.0, np.nan, np.inf, -np.inf, 1e300])
    rng = np.random.default_rng(2)
    rows = rng.dirichlet(np.ones(6), size=len(specials) * 6)
    for i, v in enumerate(np.repeat(specials, 6)):
        rows[i, i % 6] = v
    _same(booster, rows)


@pytest.mark.parametrize("missing", ["nan", "zero"])
def test_missing_value_directions(missing):
    rng = np.random.default_rng(3)
    x = rng.random((500, 4))
    if missing == "nan":
        x[rng.random(x.shape) < 0.15] = np.nan
        params = {}
    else:
        x[rng.random(x.shape) < 0.25] = 0.0
        params = {"zero_as_missing": True}
    y = np.nan_to_num(x[:, 0], nan=0.7) * 3 + np.nan_to_num(x[:, 1], nan=-1.0) + rng.standard_normal(500) * 0.01
    booster = _train(x, y, rounds=80, **params)
    kinds = {n.get("missing_type") for t in booster.dump_model()["tree_info"] for n in _nodes(t["tree_structure"])}
    assert ("NaN" if missing == "nan" else "Zero") in kinds
    test = rng.random((2000, 4))
    test[rng.random(test.shape) < 0.2] = np.nan
    test[rng.random(test.shape) < 0.2] = 0.0
    test[rng.random(test.shape) < 0.05] = 1e-36
    _same(booster, test)


def _nodes(node):
    if "split_feature" in node:
        yield node
        yield from _nodes(node["left_child"])
        yield from _nodes(node["right_child"])


def test_single_leaf_trees_and_constant_target():
    x = np.random.default_rng(4).random((50, 3))
    booster = _train(x, np.full(50, 2.5), rounds=5)
    fp = _same(booster, np.random.default_rng(5).random((17, 3)))
    assert fp.forest.num_nodes == 0


def test_wide_trees_use_64_bit_masks_and_traversal_fallback():
    rng = np.random.default_rng(6)
    x = rng.random((3000, 3))
    y = np.sin(20 * x[:, 0]) + np.cos(17 * x[:, 1]) + x[:, 2]
    wide = _train(x, y, rounds=3, num_leaves=60, min_data_in_leaf=2)
    fp = _same(wide, rng.random((999, 3)))
    assert fp.forest.node_mask.dtype == np.uint64 and 32 < fp.forest.max_leaves <= 64
    wider = _train(x, y, rounds=2, num_leaves=100, min_data_in_leaf=2)
    fp = _same(wider, rng.random((500, 3)))
    assert not fp.use_bitvectors


def test_refuses_categorical_and_wrong_width(mixture_model):
    _, booster = mixture_model
    with pytest.raises(RegmixError, match="expected rows of 6 features"):
        FastPredictor(booster).predict(np.ones((3, 5)))
    rng = np.random.default_rng(7)
    x = np.column_stack([rng.integers(0, 5, 300), rng.random(300)])
    y = x[:, 0] * 2 + x[:, 1]
    cat = lgb.train({"objective": "regression", "verbose": -1, "min_data_in_leaf": 5, "num_threads": 1},
                    lgb.Dataset(x, y, categorical_feature=[0]), num_boost_round=5)
    with pytest.raises(RegmixError, match="numerical splits only"):
        FastPredictor(cat)

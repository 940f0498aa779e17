"""Regressors (regmix_megatron/regression/models.py): save/load round trips, the target they name, refusals."""

from __future__ import annotations

import json

import numpy as np
import pytest

from helpers.regression import DOMAINS, FAST, runs
from regmix_megatron.errors import DataError
from regmix_megatron.regression.models import (
    REGRESSORS,
    LightGBMRegressor,
    LinearRegressor,
    load_regressor,
    make_regressor,
    sidecar_path,
)
from regmix_megatron.regression.target import Target


@pytest.mark.parametrize("kind", ["lightgbm", "linear", "quadratic"])
def test_save_load_round_trip_identical_predictions(tmp_path, kind):
    w, losses = runs(120)
    x = w / w.sum(1, keepdims=True)
    reg = (LightGBMRegressor(DOMAINS, "val_loss/web", **FAST) if kind == "lightgbm"
           else REGRESSORS[kind](DOMAINS, "val_loss/web")).fit(x, losses["web"])
    path = tmp_path / ("m.txt" if kind == "lightgbm" else "m.json")
    reg.save(path)
    back = load_regressor(path, DOMAINS)
    assert back.kind == kind and back.target == "val_loss/web" and back.domains == tuple(DOMAINS)
    assert back.definition == Target.domain("web")  # our column names its target
    test = np.random.default_rng(9).dirichlet(np.ones(4), size=500)
    np.testing.assert_array_equal(back.predict(test), reg.predict(test))
    meta = json.loads((sidecar_path(path) if kind == "lightgbm" else path).read_text())
    assert meta["definition"] == "web"
    if kind == "lightgbm":
        assert sidecar_path(path).exists() and path.read_text().startswith("tree")
        assert meta["domains"] == DOMAINS
    assert not list(tmp_path.glob(".tmp-*"))


def test_model_files_name_the_target_by_its_json_form(tmp_path):
    w, losses = runs(40)
    x = w / w.sum(1, keepdims=True)
    weighted = Target.weighted({"web": 0.7, "code": 0.3})
    for target, name in ((weighted, "combined_val_loss"), (None, "train_loss"), (Target.average(), "average_val_loss")):
        path = make_regressor("linear", DOMAINS, name, target).fit(x, losses["web"]).save(tmp_path / f"{name}.json")
        back = load_regressor(path)
        assert back.definition == target and back.target == name
    assert json.loads((tmp_path / "combined_val_loss.json").read_text())["definition"] == {"code": 0.3, "web": 0.7}
    assert json.loads((tmp_path / "train_loss.json").read_text())["definition"] == {"column": "train_loss"}
    # a file written before the definition was stored: derived from our column name
    obj = json.loads((tmp_path / "average_val_loss.json").read_text())
    del obj["definition"]
    (tmp_path / "old.json").write_text(json.dumps(obj))
    assert load_regressor(tmp_path / "old.json").definition == Target.average()


def test_early_stopping_uses_only_training_rows():
    w, losses = runs(200)
    x = w / w.sum(1, keepdims=True)
    reg = LightGBMRegressor(DOMAINS, "t", num_rounds=2000, learning_rate=0.3, early_stopping_rounds=10,
                            min_data_in_leaf=5).fit(x, losses["web"])
    assert 0 < reg.booster.num_trees() < 2000
    assert reg.booster.num_trees() == reg.best_iteration


def test_model_from_another_domain_set(tmp_path):
    w, losses = runs(60)
    reg = LinearRegressor(DOMAINS, "web").fit(w / w.sum(1, keepdims=True), losses["web"])
    path = reg.save(tmp_path / "linear.json")
    with pytest.raises(DataError, match=r"linear.json was trained over domains .* but domains.json has domains"):
        load_regressor(path, ["code", "news", "web", "books"], "domains.json")
    lgbm = LightGBMRegressor(DOMAINS, "web", **FAST).fit(w / w.sum(1, keepdims=True), losses["web"])
    mpath = lgbm.save(tmp_path / "lgb.txt")
    sidecar_path(mpath).unlink()
    with pytest.raises(DataError, match="without its sidecar lgb.txt.meta.json"):
        load_regressor(mpath)
    with pytest.raises(DataError, match="expected weights of shape"):
        reg.predict(np.ones((2, 3)))


def test_quadratic_recovers_a_surface_with_an_interior_optimum():
    """Loss convex in the weights with its minimum inside the simplex: the quadratic model recovers it (a linear
    model can only point at a corner)."""
    rng = np.random.default_rng(0)
    x = rng.dirichlet(np.ones(4), size=200)
    best = np.array([0.4, 0.3, 0.2, 0.1])
    y = 5.0 + 3.0 * ((x - best) ** 2).sum(axis=1)
    quad = make_regressor("quadratic", DOMAINS, "val_loss/web").fit(x, y)
    grid = rng.dirichlet(np.ones(4), size=20000)
    pred = quad.predict(grid)
    np.testing.assert_allclose(pred, 5.0 + 3.0 * ((grid - best) ** 2).sum(axis=1), atol=1e-3)
    assert np.abs(grid[np.argmin(pred)] - best).max() < 0.05
    linear = make_regressor("linear", DOMAINS, "val_loss/web").fit(x, y)
    assert (linear.predict(grid).argmin() != pred.argmin()) and (grid[linear.predict(grid).argmin()].max() > 0.6)
    assert quad.alpha in quad.ALPHAS and quad.feature_importance().shape == (4,)

"""Regressors (regmix_megatron/regression/models.py): save/load round trips, the target they name, refusals."""

from __future__ import annotations

import json

import numpy as np
import pytest

from helpers.regression import DOMAINS, FAST, runs
from regmix_megatron.errors import DataError
from regmix_megatron.regression.models import (REGRESSORS, LightGBMRegressor, LinearRegressor, load_regressor,
                                               make_regressor, sidecar_path)
from regmix_megatron.target import Target


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


# ---- the ensemble ---------------------------------------------------------------------------------------------
ENSEMBLE_DOMAINS = ["a", "b", "c", "d", "e"]
ENSEMBLE_LGBM = {"num_rounds": 200, "learning_rate": 0.05}


def smooth(x):
    """A known smooth function of the mixture (near-quadratic, with a gentle curve)."""
    return (3.0 - 0.8 * x[:, 0] + 0.5 * x[:, 1] ** 2 + 0.6 * x[:, 2] * x[:, 3] - 0.3 * x[:, 4]
            + 0.2 * np.sin(3 * x[:, 1]))


def stepped(x):
    """The same with a step in one domain's weight: no single model family fits both parts."""
    return smooth(x) + 0.3 * x[:, 4] + 0.1 * (x[:, 4] > 0.25)


def noisy_runs(f, n: int, seed: int, noise: float = 0.02):
    rng = np.random.default_rng(seed)
    x = rng.dirichlet(np.ones(5), size=n)
    return x, f(x) + noise * rng.standard_normal(n), rng


def test_ensemble_members_and_combination_are_chosen_by_cross_validation():
    from regmix_megatron.regression.models import EnsembleRegressor

    picks = {}
    for name, f, seed in (("smooth", smooth, 1), ("stepped", stepped, 0)):
        x, y, _ = noisy_runs(f, 200, seed)
        model = make_regressor("ensemble", ENSEMBLE_DOMAINS, "t", num_bootstrap=0, **ENSEMBLE_LGBM).fit(x, y)
        assert isinstance(model, EnsembleRegressor)
        sel = model.selection
        assert sel.num_folds == 5 and len(sel.candidates) == 8
        assert model.combination.spearman == max(c.spearman for c in sel.candidates)  # the CV's best
        assert set(model.members) == set(model.combination.weights)
        assert sum(model.combination.weights.values()) == pytest.approx(1.0)
        picks[name] = model.combination.weights
    # a near-quadratic surface: the quadratic model carries it; a step: the trees are needed beside it
    assert picks["smooth"].get("quadratic", 0) > 0.5 and picks["smooth"].get("lightgbm", 0) < 0.5
    assert {"lightgbm", "quadratic"} <= set(picks["stepped"])


def test_the_ensembles_folds_take_whole_mixtures_and_need_two():
    """The ensemble chooses its members by grouped CV (``regression.data.kfold_indices``): its folds are capped at
    the number of distinct mixtures, and one mixture, however often repeated, cannot be cross-validated."""
    x, y, _ = noisy_runs(smooth, 6, 0)
    x, y = np.repeat(x[:3], 4, axis=0), np.repeat(y[:3], 4)  # 3 mixtures, 4 seed repeats each
    model = make_regressor("ensemble", ENSEMBLE_DOMAINS, "t", num_bootstrap=0, **ENSEMBLE_LGBM).fit(x, y)
    assert model.selection.num_folds == 3
    with pytest.raises(DataError, match="at least 2 distinct mixtures"):
        make_regressor("ensemble", ENSEMBLE_DOMAINS, "t", num_bootstrap=0, **ENSEMBLE_LGBM).fit(x[:4], y[:4])


def test_ensemble_intervals_cover_a_known_function():
    """Fit on noisy runs of a known function, predict unseen mixtures: the true function lies within 1.645 sd
    (a 90% interval) of the ensemble's mean for about 90% of them, and within 1 sd for about 68%. A model without
    an uncertainty has no sd to make an interval with (a zero-width one covers nothing)."""
    z, z_boot, rmse, sd = [], [], [], []
    for seed in range(3):
        x, y, rng = noisy_runs(smooth, 150, seed)
        model = make_regressor("ensemble", ENSEMBLE_DOMAINS, "t", num_bootstrap=10, **ENSEMBLE_LGBM).fit(x, y)
        assert model.gives_uncertainty and len(model.bootstrap) == 10
        unseen = rng.dirichlet(np.ones(5), size=400)
        pred = model.predict_with_sd(unseen)
        assert np.array_equal(pred.mean, model.predict(unseen)) and np.all(pred.sd > 0)
        err = np.abs(pred.mean - smooth(unseen))
        z.append(err / pred.sd)
        rmse.append(np.sqrt(np.mean(err ** 2)))
        sd.append(pred.sd.mean())
    z = np.concatenate(z)
    assert 0.80 <= np.mean(z <= 1.645) <= 0.98, np.mean(z <= 1.645)
    assert 0.55 <= np.mean(z <= 1.0) <= 0.90, np.mean(z <= 1.0)
    assert np.mean(sd) < 2 * np.mean(rmse)  # intervals of the error's size, not uselessly wide
    lone = make_regressor("lightgbm", ENSEMBLE_DOMAINS, "t", **ENSEMBLE_LGBM).fit(x, y)
    assert not lone.gives_uncertainty and lone.predict_with_sd(unseen).sd is None


def test_ensemble_round_trip_and_tampered_member(tmp_path):
    x, y, rng = noisy_runs(stepped, 120, 0)
    model = make_regressor("ensemble", ENSEMBLE_DOMAINS, "val_loss/a", Target.domain("a"), num_bootstrap=3,
                           num_rounds=40, learning_rate=0.1).fit(x, y)
    path = model.save(tmp_path / "ensemble.json")
    obj = json.loads(path.read_text())
    assert obj["kind"] == "ensemble" and obj["num_bootstrap"] == 3 and obj["definition"] == "a"
    assert set(obj["files"]["members"]) == set(model.combination.weights)
    assert all((tmp_path / rel).is_file() for rel in obj["sha256"])
    back = load_regressor(path, ENSEMBLE_DOMAINS)
    unseen = rng.dirichlet(np.ones(5), size=300)
    a, b = model.predict_with_sd(unseen), back.predict_with_sd(unseen)
    np.testing.assert_array_equal(a.mean, b.mean)
    np.testing.assert_array_equal(a.sd, b.sd)
    assert back.definition == Target.domain("a") and back.combination == model.combination
    member = tmp_path / obj["files"]["bootstrap"][1][next(iter(model.combination.weights))]
    member.write_text(member.read_text().replace("0", "1", 1))
    with pytest.raises(DataError, match="does not match its SHA-256"):
        load_regressor(path)
    (tmp_path / "ensemble").rename(tmp_path / "moved")
    with pytest.raises(DataError, match="not found"):
        load_regressor(path)

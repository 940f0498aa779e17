"""Regression: loaders, the Regressor interface (save/load), metrics, CV, targets, and every bad input."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import scipy.stats

from regmix_megatron.cli import main
from regmix_megatron.errors import DataError, RegmixError
from regmix_megatron.mixture import normalize_exact
from regmix_megatron.regression.data import load_regmix_csvs, load_results_table, parse_target_weights
from regmix_megatron.regression.fitting import cross_validate, fit_models, kfold_indices, resolve_targets
from regmix_megatron.regression.metrics import evaluate, mse, pearson, rank_average, spearman
from regmix_megatron.regression.models import (LightGBMRegressor, LinearRegressor, load_regressor,
                                               sidecar_path)

DOMAINS = ["code", "news", "web", "wiki"]
FAST = {"num_rounds": 60, "learning_rate": 0.1}


def _runs(n=80, seed=0, rounding=3):
    rng = np.random.default_rng(seed)
    w = rng.dirichlet(np.full(len(DOMAINS), 0.5), size=n).round(rounding)
    w[w.sum(1) == 0, 0] = 1.0
    share = w / w.sum(1, keepdims=True)
    losses = {d: 4.0 - 1.2 * share[:, i] + 0.3 * share[:, (i + 1) % 4] ** 2 + 0.01 * rng.standard_normal(n)
              for i, d in enumerate(DOMAINS)}
    return w, losses


def _results_table(path, n=80, seed=0, suffix=".csv"):
    w, losses = _runs(n, seed)
    frame = pd.DataFrame({"run_id": [f"r{seed}-{i}" for i in range(n)], "mixture_hash": "h", "seed": 0})
    for i, d in enumerate(DOMAINS):
        frame[f"weight/{d}"] = w[:, i]
    for d in DOMAINS:
        frame[f"val_loss/{d}"] = losses[d]
    path = path.with_suffix(suffix)
    frame.to_parquet(path) if suffix == ".parquet" else frame.to_csv(path, index=False)
    return path, frame


def _regmix_csvs(tmp_path, n=80, seed=0, name="train"):
    w, losses = _runs(n, seed)
    idx = np.arange(1, n + 1)
    mix = pd.DataFrame({"index": idx, **{f"train_the_pile_{d}": w[:, i] for i, d in enumerate(DOMAINS)}})
    loss = pd.DataFrame({"index": idx[::-1], **{f"metric/the_pile_{d}_val_loss": losses[d][::-1] for d in DOMAINS}})
    m, l_ = tmp_path / f"{name}_mix.csv", tmp_path / f"{name}_loss.csv"
    mix.to_csv(m, index=False)
    loss.to_csv(l_, index=False)
    return m, l_, mix, loss


# ---- loading ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_results_table_loads_and_normalizes_exactly(tmp_path, suffix):
    path, frame = _results_table(tmp_path / "results", suffix=suffix)
    table = load_results_table(path)
    assert table.domains == tuple(DOMAINS) and table.num_runs == 80
    np.testing.assert_allclose(table.weights.sum(axis=1), 1.0, rtol=0, atol=1e-15)
    raw = frame[[f"weight/{d}" for d in DOMAINS]].to_numpy()
    np.testing.assert_array_equal(table.weights[5], normalize_exact(raw[5]))
    assert set(table.metric_domains.values()) == set(DOMAINS)
    np.testing.assert_allclose(table.target_values("web"), frame["val_loss/web"])
    assert table.resolve_target("val_loss/web") == "val_loss/web"


def test_regmix_csvs_join_on_index_not_row_order(tmp_path):
    m, l_, mix, loss = _regmix_csvs(tmp_path)
    table = load_regmix_csvs(m, l_)
    assert table.domains == tuple(DOMAINS)
    first = loss.set_index("index").loc[mix["index"].iloc[0], "metric/the_pile_web_val_loss"]
    assert table.target_values("metric/the_pile_web_val_loss")[0] == first
    assert table.resolve_target("web") == "metric/the_pile_web_val_loss"


def test_combined_target_is_weighted_sum(tmp_path):
    path, frame = _results_table(tmp_path / "results")
    table = load_results_table(path)
    name, values, coef = table.combined_target({"web": 3, "code": 1})
    np.testing.assert_allclose(values, 0.75 * frame["val_loss/web"] + 0.25 * frame["val_loss/code"])
    assert coef == {"val_loss/web": 0.75, "val_loss/code": 0.25}
    name, values, _ = table.combined_target(None)
    np.testing.assert_allclose(values, frame[[f"val_loss/{d}" for d in DOMAINS]].mean(axis=1))
    assert parse_target_weights("web=0.7, code=0.3") == {"web": 0.7, "code": 0.3}


# ---- metrics ----------------------------------------------------------------------------------------------
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


# ---- models -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["lightgbm", "linear"])
def test_save_load_round_trip_identical_predictions(tmp_path, kind):
    w, losses = _runs(120)
    x = w / w.sum(1, keepdims=True)
    reg = (LightGBMRegressor(DOMAINS, "val_loss/web", **FAST) if kind == "lightgbm"
           else LinearRegressor(DOMAINS, "val_loss/web")).fit(x, losses["web"])
    path = tmp_path / ("m.txt" if kind == "lightgbm" else "m.json")
    reg.save(path)
    back = load_regressor(path, DOMAINS)
    assert back.kind == kind and back.target == "val_loss/web" and back.domains == tuple(DOMAINS)
    test = np.random.default_rng(9).dirichlet(np.ones(4), size=500)
    np.testing.assert_array_equal(back.predict(test), reg.predict(test))
    if kind == "lightgbm":
        assert sidecar_path(path).exists() and path.read_text().startswith("tree")
        assert json.loads(sidecar_path(path).read_text())["domains"] == DOMAINS
    assert not list(tmp_path.glob(".tmp-*"))


def test_early_stopping_uses_only_training_rows():
    w, losses = _runs(200)
    x = w / w.sum(1, keepdims=True)
    reg = LightGBMRegressor(DOMAINS, "t", num_rounds=2000, learning_rate=0.3, early_stopping_rounds=10,
                            min_data_in_leaf=5).fit(x, losses["web"])
    assert 0 < reg.booster.num_trees() < 2000
    assert reg.booster.num_trees() == reg.best_iteration


def test_kfold_and_cross_validate():
    folds = kfold_indices(23, 5, seed=1)
    assert sorted(np.concatenate(folds).tolist()) == list(range(23))
    assert [len(f) for f in folds] == [5, 5, 5, 4, 4]
    w, losses = _runs(100)
    x = w / w.sum(1, keepdims=True)
    cv, oof = cross_validate("linear", x, losses["web"], DOMAINS, "web", 5, seed=0)
    assert cv["pooled"]["spearman"] > 0.9 and oof.shape == (100,)
    # out-of-fold: fold 0's predictions come from a model that never saw fold 0
    held = kfold_indices(100, 5, 0)[0]
    keep = np.setdiff1d(np.arange(100), held)
    ref = LinearRegressor(DOMAINS, "web").fit(x[keep], losses["web"][keep])
    np.testing.assert_allclose(oof[held], ref.predict(x[held]))


def test_fit_models_several_targets_and_combined(tmp_path):
    path, _ = _results_table(tmp_path / "train", n=90, seed=0)
    tpath, _ = _results_table(tmp_path / "test", n=40, seed=1)
    train, test = load_results_table(path), load_results_table(tpath)
    targets = resolve_targets(train, test, ["web", "val_loss/code"], average=True,
                              combination={"web": 0.5, "wiki": 0.5})
    assert [t.name for t in targets] == ["val_loss/web", "val_loss/code", "average_val_loss", "combined_val_loss"]
    out = fit_models(train, targets, ["lightgbm", "linear"], test=test, cv_folds=3, lightgbm_options=FAST)
    regs = out.summary["regressors"]
    assert set(regs["linear"]["targets"]) == {t.name for t in targets}
    for kind in ("lightgbm", "linear"):
        for entry in regs[kind]["targets"].values():
            assert entry["evaluated_on"] == "test" and -1 <= entry["spearman"] <= 1 and "cv" in entry
        assert regs[kind]["targets"]["val_loss/web"]["spearman"] > 0.8
    assert len(out.models) == 8
    assert set(out.predictions["split"]) == {"cv", "test"}


def test_fit_command_json(tmp_path):
    m, l_, _, _ = _regmix_csvs(tmp_path, n=90, seed=0, name="train")
    tm, tl, _, _ = _regmix_csvs(tmp_path, n=40, seed=1, name="test")
    out_json = tmp_path / "fit.json"
    rc = main(["fit", "--mixtures", str(m), "--losses", str(l_), "--test-mixtures", str(tm), "--test-losses",
               str(tl), "--target", "metric/the_pile_web_val_loss", "--num-rounds", "60", "--learning-rate", "0.1",
               "--output-dir", str(tmp_path / "fit"), "--output-json", str(out_json)])
    assert rc == 0
    doc = json.loads(out_json.read_text())
    for kind in ("lightgbm", "linear"):
        assert {"spearman", "pearson", "mse"} <= set(doc["regressors"][kind])
        assert doc["regressors"][kind]["spearman"] > 0.8
    model = tmp_path / "fit" / doc["regressors"]["lightgbm"]["targets"]["metric/the_pile_web_val_loss"].get(
        "model", "models/metric_the_pile_web_val_loss/lightgbm.txt")
    assert model.exists()


# ---- bad input --------------------------------------------------------------------------------------------
def test_mismatched_rows_name_files(tmp_path):
    m, l_, mix, loss = _regmix_csvs(tmp_path)
    loss.iloc[:-3].to_csv(l_, index=False)
    with pytest.raises(DataError, match=r"rows do not match.*only in .*train_mix.csv"):
        load_regmix_csvs(m, l_)


def test_mismatched_columns(tmp_path):
    m, l_, mix, loss = _regmix_csvs(tmp_path)
    mix.assign(extra=1.0).to_csv(m, index=False)
    with pytest.raises(DataError, match=r"column\(s\) \['extra'\] are not mixture weights"):
        load_regmix_csvs(m, l_)
    mix.to_csv(m, index=False)
    with pytest.raises(DataError, match="no 'train_the_pile_<domain>' mixture columns"):
        load_regmix_csvs(l_, m)  # swapped files
    with pytest.raises(DataError, match="no 'weight/<domain>' columns"):
        load_results_table(m)


def test_test_set_with_other_domains(tmp_path):
    path, frame = _results_table(tmp_path / "train")
    train = load_results_table(path)
    frame.drop(columns=["weight/wiki"]).to_csv(tmp_path / "test.csv", index=False)
    test = load_results_table(tmp_path / "test.csv")
    targets = resolve_targets(train, test, ["web"])
    with pytest.raises(DataError, match=r"domains differ from the training data: missing \['wiki'\]"):
        fit_models(train, targets, ["linear"], test=test)


def test_missing_target_lists_available(tmp_path):
    path, _ = _results_table(tmp_path / "results")
    table = load_results_table(path)
    with pytest.raises(DataError, match=r"no target column 'val_loss/books'; available: \['val_loss/code'"):
        table.resolve_target("val_loss/books")
    rc = main(["fit", "--results", str(path), "--target", "nope", "--regressors", "linear"])
    assert rc == 2


def test_nan_losses_excluded_with_count_or_refused(tmp_path, caplog):
    path, frame = _results_table(tmp_path / "results", n=100)
    frame.loc[:4, "val_loss/web"] = np.nan
    frame.to_csv(path, index=False)
    table = load_results_table(path)
    out = fit_models(table, resolve_targets(table, None, ["web"]), ["linear"], cv_folds=0)
    info = out.summary["targets"]["val_loss/web"]
    assert info["num_train_runs"] == 95 and info["num_train_excluded_nan"] == 5
    assert "excluded 5 of 100 runs" in caplog.text
    frame.loc[:29, "val_loss/web"] = np.nan
    frame.to_csv(path, index=False)
    table = load_results_table(path)
    with pytest.raises(DataError, match=r"NaN/inf in 30 of 100 runs .*--max-nan-fraction"):
        fit_models(table, resolve_targets(table, None, ["web"]), ["linear"])
    out = fit_models(table, resolve_targets(table, None, ["web"]), ["linear"], max_nan_fraction=0.5)
    assert out.summary["targets"]["val_loss/web"]["num_train_runs"] == 70


def test_too_few_runs(tmp_path):
    path, _ = _results_table(tmp_path / "results", n=4)
    table = load_results_table(path)
    with pytest.raises(DataError, match=r"4 usable runs for 4 domains; .* at least 5 runs"):
        fit_models(table, resolve_targets(table, None, ["web"]), ["linear"])


def test_model_from_another_domain_set(tmp_path):
    w, losses = _runs(60)
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


def test_bad_weights_and_flags(tmp_path):
    path, frame = _results_table(tmp_path / "results")
    frame.loc[3, "weight/web"] = -0.1
    frame.to_csv(path, index=False)
    with pytest.raises(DataError, match=r"negative weight .* of domain 'web' in run 'r0-3'"):
        load_results_table(path)
    with pytest.raises(RegmixError, match="unknown regressor 'xgb'"):
        fit_models(load_results_table(_results_table(tmp_path / "ok")[0]), [], ["xgb"])
    with pytest.raises(DataError, match="not NAME=WEIGHT"):
        parse_target_weights("web")

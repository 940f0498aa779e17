"""Fitting (regmix_megatron/regression/fitting.py): targets, CV, test evaluation, output files, the fit CLI."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from helpers.regression import DOMAINS, FAST, regmix_csvs, results_table, runs
from regmix_megatron.cli import main
from regmix_megatron.errors import DataError, RegmixError
from regmix_megatron.regression.data import kfold_indices, load_regmix_csvs, load_results_table
from regmix_megatron.regression.fitting import (
    cross_validate,
    find_model,
    fit_models,
    fit_target,
    refit_sd,
    resolve_targets,
    write_outputs,
)
from regmix_megatron.regression.models import LinearRegressor, load_regressor
from regmix_megatron.regression.target import Target


def test_kfold_and_cross_validate():
    folds = kfold_indices(23, 5, seed=1)
    assert sorted(np.concatenate(folds).tolist()) == list(range(23))
    assert [len(f) for f in folds] == [5, 5, 5, 4, 4]
    w, losses = runs(100)
    x = w / w.sum(1, keepdims=True)
    cv, oof = cross_validate("linear", x, losses["web"], DOMAINS, "web", 5, seed=0)
    assert cv["pooled"]["spearman"] > 0.9 and oof.shape == (100,)
    # out-of-fold: fold 0's predictions come from a model that never saw fold 0
    held = kfold_indices(100, 5, 0)[0]
    keep = np.setdiff1d(np.arange(100), held)
    ref = LinearRegressor(DOMAINS, "web").fit(x[keep], losses["web"][keep])
    np.testing.assert_allclose(oof[held], ref.predict(x[held]))


def test_targets_are_named_by_column_and_defined_by_their_json_form(tmp_path):
    table = load_results_table(results_table(tmp_path / "results")[0])
    regmix = load_regmix_csvs(*regmix_csvs(tmp_path)[:2])
    targets = resolve_targets(table, None, ["web", "val_loss/code"], average=True,
                              combination={"web": 0.5, "val_loss/wiki": 0.5})
    assert [t.name for t in targets] == ["val_loss/web", "val_loss/code", "average_val_loss", "combined_val_loss"]
    assert [t.definition() for t in targets] == ["web", "code", "average", {"web": 0.5, "wiki": 0.5}]
    assert fit_target(regmix, None, Target.domain("web")).name == "metric/the_pile_web_val_loss"
    np.testing.assert_array_equal(targets[2].train, table.values_of(Target.average()))
    with pytest.raises(RegmixError, match="target listed twice"):
        resolve_targets(table, None, ["web", "val_loss/web"])
    with pytest.raises(DataError, match="--target-weights: 'books' is not a per-domain loss column"):
        resolve_targets(table, None, combination={"books": 1.0, "web": 1.0})
    with pytest.raises(RegmixError, match=r"--target-weights\.web=0 is invalid: give a positive number"):
        resolve_targets(table, None, combination={"web": 0, "code": 1.0})


def test_fit_models_several_targets_and_combined(tmp_path):
    path, _ = results_table(tmp_path / "train", n=90, seed=0)
    tpath, _ = results_table(tmp_path / "test", n=40, seed=1)
    train, test = load_results_table(path), load_results_table(tpath)
    targets = resolve_targets(train, test, ["web", "val_loss/code"], average=True,
                              combination={"web": 0.5, "wiki": 0.5})
    out = fit_models(train, targets, ["lightgbm", "linear"], test=test, cv_folds=3, lightgbm_options=FAST)
    regs = out.summary["regressors"]
    assert set(regs["linear"]["targets"]) == {t.name for t in targets}
    for kind in ("lightgbm", "linear"):
        for entry in regs[kind]["targets"].values():
            assert entry["evaluated_on"] == "test" and -1 <= entry["spearman"] <= 1 and "cv" in entry
        assert regs[kind]["targets"]["val_loss/web"]["spearman"] > 0.8
        assert regs[kind]["aggregate"] == "mean over 4 targets"
    assert out.summary["targets"]["combined_val_loss"]["definition"] == {"web": 0.5, "wiki": 0.5}
    assert len(out.models) == 8
    assert set(out.predictions["split"]) == {"cv", "test"}


def test_outputs_and_the_one_way_to_find_a_model(tmp_path):
    table = load_results_table(results_table(tmp_path / "results", n=60)[0])
    targets = resolve_targets(table, None, ["web"], average=True)
    out = fit_models(table, targets, ["lightgbm", "linear"], cv_folds=3, lightgbm_options=FAST)
    saved = write_outputs(out, tmp_path / "fit")
    assert {(m.name, m.regressor) for m in saved} == {(t.name, k) for t in targets for k in ("lightgbm", "linear")}
    assert {json.dumps(m.target) for m in saved} == {'"web"', '"average"'}
    metrics = json.loads((tmp_path / "fit" / "metrics.json").read_text())
    for m in saved:
        path = find_model(tmp_path / "fit", m.regressor, m.name)
        assert path == tmp_path / "fit" / m.path and path.exists()
        assert metrics["regressors"][m.regressor]["targets"][m.name]["model"] == m.path
        assert load_regressor(path).definition == Target.from_json(m.target)
    predictions = pd.read_csv(tmp_path / "fit" / "predictions.csv")
    assert set(predictions["target"]) == {"val_loss/web", "average_val_loss"}
    with pytest.raises(RegmixError, match=r"holds models for targets \['average_val_loss', 'val_loss/web'\]"):
        find_model(tmp_path / "fit", "linear")
    with pytest.raises(RegmixError, match=r"no 'xgb' models; fitted: \['lightgbm', 'linear'\]"):
        find_model(tmp_path / "fit", "xgb", "val_loss/web")
    with pytest.raises(RegmixError, match="target 'val_loss/code': not fitted"):
        find_model(tmp_path / "fit", "linear", "val_loss/code")


def test_fit_metrics_are_read_typed_and_checked_field_by_field(tmp_path):
    from regmix_megatron.regression.fitting import FitMetrics, read_fit_metrics

    table = load_results_table(results_table(tmp_path / "results", n=40)[0])
    out = fit_models(table, resolve_targets(table, None, ["web"]), ["linear"], cv_folds=4)
    write_outputs(out, tmp_path / "fit")
    written = json.loads((tmp_path / "fit" / "metrics.json").read_text())
    metrics = read_fit_metrics(tmp_path / "fit")
    fit = metrics.fit("linear")
    entry = written["regressors"]["linear"]["targets"]["val_loss/web"]
    assert (fit.spearman, fit.evaluated_on, fit.model) == (entry["spearman"], "cv", entry["model"])
    assert fit.cv.num_folds == 4 and list(fit.cv.spearman_folds) == entry["cv"]["spearman_folds"]
    assert fit.cv.pooled["spearman"] == entry["cv"]["pooled"]["spearman"] == fit.spearman
    assert metrics.targets["val_loss/web"].definition == "web" and metrics.test is None
    assert metrics.train["num_runs"] == 40 and metrics.repeats["mode"] == "average" and metrics.inputs == {}
    assert metrics.fit("lightgbm") is None
    entry["cv"]["num_folds"] = "4"  # a damaged copy (the folder's own file is checked against its sha256 first)
    with pytest.raises(DataError, match=r"m\.json: field 'regressors\.linear\.targets\.val_loss/web\.cv\.num_folds' "
                                        r"must be an integer >= 0, not str '4'; run `fit` again"):
        FitMetrics.from_json_obj(written, "m.json")


def test_fit_command_json(tmp_path):
    m, l_, _, _ = regmix_csvs(tmp_path, n=90, seed=0, name="train")
    tm, tl, _, _ = regmix_csvs(tmp_path, n=40, seed=1, name="test")
    out_json = tmp_path / "fit.json"
    rc = main(["fit", "--mixtures", str(m), "--losses", str(l_), "--test-mixtures", str(tm), "--test-losses",
               str(tl), "--target", "metric/the_pile_web_val_loss", "--num-rounds", "60", "--learning-rate", "0.1",
               "--output-dir", str(tmp_path / "fit"), "--output-json", str(out_json)])
    assert rc == 0
    doc = json.loads(out_json.read_text())
    for kind in ("lightgbm", "linear"):
        assert {"spearman", "pearson", "mse"} <= set(doc["regressors"][kind])
        assert doc["regressors"][kind]["spearman"] > 0.8
    assert doc["targets"]["metric/the_pile_web_val_loss"]["definition"] == "web"
    assert find_model(tmp_path / "fit", "lightgbm").exists()


def test_test_set_with_other_domains(tmp_path):
    path, frame = results_table(tmp_path / "train")
    train = load_results_table(path)
    frame.drop(columns=["weight/wiki"]).to_csv(tmp_path / "test.csv", index=False)
    with pytest.raises(DataError, match=r"\['wiki'\] have a 'val_loss/<domain>' column but no 'weight/<domain>'"):
        load_results_table(tmp_path / "test.csv")  # a missing mixture column is an error, not a zero weight
    frame.drop(columns=["weight/wiki", "val_loss/wiki"]).to_csv(tmp_path / "test.csv", index=False)
    with pytest.raises(DataError, match=r"do not sum to 1 within 0.001 .*pass --renormalize"):
        load_results_table(tmp_path / "test.csv")
    test = load_results_table(tmp_path / "test.csv", renormalize=True)  # runs over other domains, on purpose
    targets = resolve_targets(train, test, ["web"])
    with pytest.raises(DataError, match=r"domains differ from the training data: missing \['wiki'\]"):
        fit_models(train, targets, ["linear"], test=test)


def test_unknown_target_on_the_command_line(tmp_path):
    path, _ = results_table(tmp_path / "results")
    assert main(["fit", "--results", str(path), "--target", "nope", "--regressors", "linear"]) == 2


def test_nan_losses_excluded_with_count_or_refused(tmp_path, caplog):
    path, frame = results_table(tmp_path / "results", n=100)
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


def test_too_few_runs_and_unknown_regressor(tmp_path):
    path, _ = results_table(tmp_path / "results", n=4)
    table = load_results_table(path)
    with pytest.raises(DataError, match=r"4 usable runs for 4 domains; .* at least 5 runs"):
        fit_models(table, resolve_targets(table, None, ["web"]), ["linear"])
    with pytest.raises(RegmixError, match="unknown regressor 'xgb'"):
        fit_models(load_results_table(results_table(tmp_path / "ok")[0]), [], ["xgb"])


def test_the_regressor_is_chosen_by_cross_validated_spearman():
    from regmix_megatron.regression.fitting import choose_regressor

    kind, reason = choose_regressor({"lightgbm": 0.55, "linear": 0.31, "quadratic": 0.72})
    assert kind == "quadratic" and reason == ("highest cross-validated Spearman (quadratic 0.720, lightgbm 0.550, "
                                              "linear 0.310)")
    assert choose_regressor({"lightgbm": 0.6, "quadratic": 0.6, "linear": 0.6})[0] == "lightgbm"  # tie: preference
    assert choose_regressor({"lightgbm": None, "linear": 0.1})[0] == "linear"  # a constant prediction has no rho
    kind, reason = choose_regressor({"lightgbm": None, "linear": float("nan")})
    assert kind == "lightgbm" and "no cross-validated Spearman" in reason


def test_cross_validation_records_every_fold():
    from regmix_megatron.regression.fitting import cross_validate

    rng = np.random.default_rng(1)
    x = rng.dirichlet(np.ones(3), size=30)
    y = x @ np.array([1.0, 2.0, 3.0]) + rng.normal(0, 0.01, 30)
    cv, oof = cross_validate("quadratic", x, y, ("a", "b", "c"), "t", num_folds=5, seed=0)
    assert len(cv["spearman_folds"]) == 5
    assert cv["spearman_mean"] == pytest.approx(np.mean(cv["spearman_folds"]))
    assert cv["spearman_std"] == pytest.approx(np.std(cv["spearman_folds"]))
    assert cv["pooled"]["spearman"] > 0.9 and oof.shape == (30,)


# ---- repeated mixtures: grouped cross-validation (issue 23) ----------------------------------------------------
def _with_repeats(tmp_path, frame: pd.DataFrame, copies: int, noise_sd: float = 0.0, seed: int = 0):
    """``frame``'s runs plus ``copies - 1`` more runs of each mixture (new run ids; the seed noise ``noise_sd`` on
    every loss, 0: retrained to the same losses), as a results table file."""
    rng = np.random.default_rng(seed)
    parts = [frame]
    for k in range(1, copies):
        extra = frame.assign(run_id=frame["run_id"] + f"-repeat{k}", seed=k)
        for column in [c for c in frame.columns if c.startswith("val_loss/")]:
            extra[column] = extra[column] + noise_sd * rng.standard_normal(len(extra))
        parts.append(extra)
    path = tmp_path / f"repeats{copies}.csv"
    pd.concat(parts, ignore_index=True).to_csv(path, index=False, float_format="%.17g")
    return load_results_table(path)


def test_the_runs_of_one_mixture_never_straddle_a_fold():
    from regmix_megatron.regression.data import mixture_groups

    rng = np.random.default_rng(3)
    mixtures = rng.dirichlet(np.ones(4), size=17)
    rows = mixtures[rng.integers(0, 17, size=60)]  # 60 runs of 17 mixtures, in shuffled order
    groups = mixture_groups(rows)
    assert groups.max() + 1 == len(np.unique(rows, axis=0))
    folds = kfold_indices(60, 5, seed=2, groups=groups)
    assert sorted(np.concatenate(folds).tolist()) == list(range(60))
    fold_of = {int(g): {i for i, f in enumerate(folds) if np.isin(np.flatnonzero(groups == g), f).any()}
               for g in np.unique(groups)}
    assert all(len(f) == 1 for f in fold_of.values())  # every mixture held out in exactly one fold
    # without repeats the grouped split is the plain one, fold for fold (tables without repeats keep their numbers)
    assert all(np.array_equal(a, b) for a, b in zip(kfold_indices(23, 5, 1, groups=np.arange(23)),
                                                     kfold_indices(23, 5, 1)))
    with pytest.raises(RegmixError, match="exceeds the 17 distinct mixtures"):
        kfold_indices(60, 18, seed=0, groups=groups)


def test_runs_retrained_under_new_ids_do_not_inflate_the_cv(tmp_path):
    """A table whose every run was retrained under a new id (same mixture, same losses): row-wise folds would score
    each model on mixtures it was fitted on. Averaged, the fit and its CV are those of the table without the
    copies."""
    path, frame = results_table(tmp_path / "base", n=30, seed=4)
    base = load_results_table(path)
    doubled = _with_repeats(tmp_path, frame, copies=3)
    target = [fit_target(base, None, Target.domain("web"))]

    def cv(table, repeats, kinds=("lightgbm", "linear", "quadratic")):
        out = fit_models(table, [fit_target(table, None, Target.domain("web"))], kinds, cv_folds=5,
                         lightgbm_options=FAST, repeats=repeats)
        return out, {k: b["spearman"] for k, b in out.summary["regressors"].items()}

    reference = fit_models(base, target, ["lightgbm", "linear", "quadratic"], cv_folds=5, lightgbm_options=FAST)
    averaged, rho = cv(doubled, "average")
    assert rho == {k: b["spearman"] for k, b in reference.summary["regressors"].items()}
    assert averaged.summary["data"]["repeats"] == {
        "mode": "average", "num_runs": 90, "num_mixtures": 30, "num_repeated_mixtures": 30,
        "num_runs_of_repeated_mixtures": 90, "note": "each mixture's runs averaged into one row"}
    np.testing.assert_allclose(averaged.models[("val_loss/web", "linear")].coef,  # the final fit too: one row a
                               reference.models[("val_loss/web", "linear")].coef, rtol=1e-12)  # mixture (mean of 3)


def test_seed_repeats_give_the_noise_ceiling_and_the_fit_says_what_it_did(tmp_path, capsys):
    path, frame = results_table(tmp_path / "base", n=30, seed=5)
    repeats = _with_repeats(tmp_path, frame, copies=4, noise_sd=0.02, seed=1)
    table_path = tmp_path / "repeats4.csv"
    assert main(["fit", "--results", str(table_path), "--target", "web", "--regressors", "linear",
                 "--num-folds", "5", "--output-dir", str(tmp_path / "fit")]) == 0
    printed = capsys.readouterr().out
    assert ("runs: 120 of 30 distinct mixtures; 30 mixtures have several runs (120 runs): each mixture's runs "
            "averaged into one row; cross-validation never puts a mixture on both sides of a fold") in printed
    metrics = json.loads((tmp_path / "fit" / "metrics.json").read_text())
    noise = metrics["targets"]["val_loss/web"]["noise"]
    assert noise["num_mixtures"] == 30 and noise["dof"] == 90 and 0.015 < noise["sd"] < 0.025
    assert (f"val_loss/web: seed noise sd {noise['sd']:.4g} from the repeats, CV Spearman ceiling "
            f"{noise['ceiling']:.3f} for one run per mixture, {noise['ceiling_of_averages']:.3f} for the averaged rows "
            "the CV scores") in printed
    assert noise["ceiling"] < noise["ceiling_of_averages"] < 1  # a mean of 4 runs is less noisy than one run
    assert metrics["data"]["repeats"]["mode"] == "average" and repeats.num_runs == 120
    assert main(["fit", "--results", str(table_path), "--target", "web", "--regressors", "linear", "--repeats",
                 "group", "--output-dir", str(tmp_path / "fit2")]) == 0
    metrics = json.loads((tmp_path / "fit2" / "metrics.json").read_text())
    assert metrics["data"]["repeats"]["mode"] == "group"
    cv_rows = pd.read_csv(tmp_path / "fit2" / "predictions.csv")
    assert len(cv_rows) == 120  # kept: one held-out prediction per run

def test_fit_command_with_the_ensemble(tmp_path):
    """``--regressors ...,ensemble``: its model file beside the others (found by find_model), its CV nested (it
    chooses its members again in every fold), its choice in metrics.json, an sd for every test prediction."""
    m, l_, _, _ = regmix_csvs(tmp_path, n=90, seed=0, name="train")
    tm, tl, _, _ = regmix_csvs(tmp_path, n=40, seed=1, name="test")
    rc = main(["fit", "--mixtures", str(m), "--losses", str(l_), "--test-mixtures", str(tm), "--test-losses",
               str(tl), "--target", "web", "--regressors", "lightgbm,quadratic,ensemble", "--num-folds", "3",
               "--num-bootstrap", "4", "--num-rounds", "60", "--learning-rate", "0.1",
               "--output-dir", str(tmp_path / "fit")])
    assert rc == 0
    metrics = json.loads((tmp_path / "fit" / "metrics.json").read_text())
    entry = metrics["regressors"]["ensemble"]["targets"]["metric/the_pile_web_val_loss"]
    assert entry["cv"]["nested"] is True and entry["test"]["spearman"] > 0.8
    chosen = entry["ensemble"]["combination"]
    assert entry["ensemble"]["num_bootstrap"] == 4 and sum(chosen["weights"].values()) == pytest.approx(1.0)
    assert chosen["cv_spearman"] == max(c["cv_spearman"] for c in entry["ensemble"]["selection"]["candidates"])
    path = find_model(tmp_path / "fit", "ensemble")
    assert path.name == "ensemble.json" and (path.parent / "ensemble").is_dir()
    model = load_regressor(path)
    assert model.kind == "ensemble" and len(model.bootstrap) == 4
    predictions = pd.read_csv(tmp_path / "fit" / "predictions.csv")
    ens = predictions[predictions["regressor"] == "ensemble"]
    test = ens[ens["split"] == "test"]
    assert len(test) == 40 and np.all(test["predicted_sd"] > 0)
    assert predictions[predictions["regressor"] == "lightgbm"]["predicted_sd"].isna().all()
    # the test predictions are the saved model's
    tm_frame = pd.read_csv(tm)
    x = tm_frame[[f"train_the_pile_{d}" for d in sorted(DOMAINS)]].to_numpy(float)
    x = x / x.sum(1, keepdims=True)
    got = model.predict_with_sd(x)
    by_id = test.set_index(test["run_id"].astype(str))
    ids = tm_frame["index"].astype(str)
    np.testing.assert_allclose(got.mean, by_id.loc[ids, "predicted"].to_numpy(), rtol=0, atol=1e-12)
    np.testing.assert_allclose(got.sd, by_id.loc[ids, "predicted_sd"].to_numpy(), rtol=0, atol=1e-12)


def test_choose_regressor_prefers_the_ensemble_only_on_a_tie():
    from regmix_megatron.regression.fitting import choose_regressor

    assert choose_regressor({"lightgbm": 0.9, "quadratic": 0.8, "ensemble": 0.9})[0] == "ensemble"
    kind, reason = choose_regressor({"lightgbm": 0.91, "linear": 0.5, "ensemble": 0.9})
    assert kind == "lightgbm" and "ensemble 0.900" in reason


def _linear_table(tmp_path, n: int, noise_sd: float, seed: int):
    """``n`` runs of a loss linear in the weights (``web``'s), with noise ``noise_sd``, as a results table file."""
    rng = np.random.default_rng(seed)
    w = rng.dirichlet(np.ones(len(DOMAINS)), size=n)
    coef = np.array([0.9, 0.4, 1.3, 0.2])
    frame = pd.DataFrame({"run_id": [f"r{i}" for i in range(n)], "mixture_hash": "h", "seed": 0})
    for i, d in enumerate(DOMAINS):
        frame[f"weight/{d}"] = w[:, i]
    for d in DOMAINS:
        frame[f"val_loss/{d}"] = 4.0 - w @ coef + noise_sd * rng.standard_normal(n)
    path = tmp_path / f"linear-{n}-{seed}.csv"
    frame.to_csv(path, index=False, float_format="%.17g")
    return load_results_table(path), frame, (lambda x: 4.0 - x @ coef)


def test_a_model_without_an_uncertainty_gets_the_spread_of_its_bootstrap_refits(tmp_path):
    """refit_sd: a single model's estimation variance, from its refits on group-bootstrap resamples of its runs."""
    web = Target.domain("web")
    unseen = np.random.default_rng(9).dirichlet(np.ones(len(DOMAINS)), size=300)
    # noise-free runs of a linear function: every refit is the function itself, so the spread is nil
    exact, _, truth = _linear_table(tmp_path, 40, 0.0, seed=1)
    assert refit_sd("linear", exact, fit_target(exact, None, web), unseen, num_bootstrap=8).max() < 1e-9
    # noisy runs: about 90% of the unseen mixtures' true values lie within 1.645 sd of the model fit on all runs
    # (a 90% interval), about 68% within 1 sd
    z = []
    for seed in range(10):
        table, _, truth = _linear_table(tmp_path, 60, 0.05, seed=seed)
        target = fit_target(table, None, web)
        sd = refit_sd("linear", table, target, unseen, num_bootstrap=40, seed=seed)
        fitted = fit_models(table, [target], ["linear"]).models[(target.name, "linear")]
        assert np.all(sd > 0)
        z.append(np.abs(fitted.predict(unseen) - truth(unseen)) / sd)
    z = np.concatenate(z)
    assert 0.80 <= np.mean(z <= 1.645) <= 0.97, np.mean(z <= 1.645)  # measured: 0.89
    assert 0.55 <= np.mean(z <= 1.0) <= 0.85, np.mean(z <= 1.0)  # measured: 0.70
    # 4x the runs: about half the spread
    small, big = (_linear_table(tmp_path, n, 0.05, seed=7)[0] for n in (40, 160))
    ratio = (refit_sd("quadratic", big, fit_target(big, None, web), unseen, num_bootstrap=20).mean()
             / refit_sd("quadratic", small, fit_target(small, None, web), unseen, num_bootstrap=20).mean())
    assert 0.3 < ratio < 0.75, ratio
    # a mixture's repeats are drawn together: retrained copies (same losses) change nothing once averaged
    table, frame, _ = _linear_table(tmp_path, 40, 0.05, seed=2)
    copies = _with_repeats(tmp_path, frame, copies=3)
    args = dict(num_bootstrap=10, seed=5, lightgbm_options=FAST)
    np.testing.assert_allclose(refit_sd("lightgbm", copies, fit_target(copies, None, web), unseen, **args),
                               refit_sd("lightgbm", table, fit_target(table, None, web), unseen, **args), rtol=1e-9)
    # seeded; fewer than 2 refits give no sd; the ensemble has its own
    target = fit_target(table, None, web)
    np.testing.assert_array_equal(refit_sd("linear", table, target, unseen, seed=3),
                                  refit_sd("linear", table, target, unseen, seed=3))
    assert not np.array_equal(refit_sd("linear", table, target, unseen, seed=3),
                              refit_sd("linear", table, target, unseen, seed=4))
    assert refit_sd("linear", table, target, unseen, num_bootstrap=1) is None
    with pytest.raises(RegmixError, match="the ensemble gives its own uncertainty"):
        refit_sd("ensemble", table, target, unseen)

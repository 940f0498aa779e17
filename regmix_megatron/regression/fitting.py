"""Fit several regressors on several targets, cross-validate on the training runs, evaluate on test runs.

:func:`fit_models` is what ``regmix-megatron fit`` runs; it returns a :class:`FitOutcome` holding the fitted
models, a JSON-able summary and a table of held-out predictions (used by the report).

**Repeated mixtures.** Runs of one mixture (the noise-seed repeats of a sweep, or a run retrained under a new id:
:func:`~regmix_megatron.regression.data.mixture_groups`) are never on both sides of a cross-validation fold:
otherwise a model is scored on mixtures it was fitted on, and CV (which picks the regressor and states the fit's
quality) is inflated. By default (``repeats="average"``) each mixture's runs are averaged into one row, for the CV
and the final fit alike; ``repeats="group"`` keeps every run and assigns each mixture's runs to one fold. The
choice and the counts are recorded in ``metrics.json`` (``data.repeats``) with, when there are repeats, the seed
noise they measure and the Spearman ceiling it allows (``targets.<name>.noise``: :func:`regmix_megatron.runs.noise.proxy_noise`
of the repeats against one run per mixture; averaged, also ``ceiling_of_averages``, the ceiling of the mean rows the
CV then scores, whose noise is the seed sd over the square root of their runs).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Mapping, Sequence

import numpy as np
import pandas as pd

from ..configs import Field
from ..errors import DataError, RegmixError
from ..fileio import atomic_path, atomic_write_json
from .target import Target
from .data import (
    DEFAULT_MAX_NAN_FRACTION,
    RunTable,
    align_domains,
    check_enough_runs,
    clean_target,
    kfold_indices,
    mixture_groups,
)
from .ensemble import DEFAULT_NUM_BOOTSTRAP, group_bootstrap
from .metrics import evaluate
from .models import REGRESSORS, EnsembleRegressor, Regressor, make_regressor

logger = logging.getLogger(__name__)

FORMAT = "regmix-megatron/fit/v1"


@dataclass
class FitTarget:
    """One regression target: its values on the training (and test) runs and what it is."""

    name: str
    """The fit's name for it: the table's column for a domain or metric column, ``average_val_loss`` or
    ``combined_val_loss`` for derived targets. Keys ``metrics.json``, ``predictions.csv`` and the model folder."""
    train: np.ndarray
    test: np.ndarray | None = None
    target: Target | None = None
    """The optimization target; None for a metric column that is not a per-domain validation loss."""

    def definition(self) -> str | dict:
        """Its JSON form: :meth:`Target.to_json`, or ``{"column": name}`` for a plain metric column."""
        return self.target.to_json() if self.target is not None else {"column": self.name}


def fit_target(train: RunTable, test: RunTable | None, target: Target) -> FitTarget:
    """An optimization target's values on the training (and test) runs, named after the training table's column
    for a one-domain target (e.g. ``val_loss/x`` or ``metric/the_pile_x_val_loss``)."""
    name = train.loss_column(target.single_domain) if target.single_domain is not None else target.column
    y_test = test.values_of(target) if test is not None else None
    return FitTarget(name, train.values_of(target), y_test, target)


def resolve_targets(train: RunTable, test: RunTable | None, names: Sequence[str] = (), *,
                    average: bool = False, combination: Mapping[str, float] | None = None) -> list[FitTarget]:
    """Targets from column names (a per-domain loss column becomes that domain's target), plus the average
    and/or a weighted combination of per-domain losses (keys: domain or loss column names)."""
    targets: list[FitTarget] = []
    for name in names:
        column = train.resolve_target(name)
        domain = train.metric_domains.get(column)
        if domain is not None:
            targets.append(fit_target(train, test, Target.domain(domain)))
            continue
        y_test = None
        if test is not None:
            if column not in test.metrics.columns:
                raise DataError(f"test data {test.source}: no target column {column!r}; available: "
                                f"{list(test.metrics.columns)}")
            y_test = test.target_values(column)
        targets.append(FitTarget(column, train.target_values(column), y_test))
    if average:
        targets.append(fit_target(train, test, Target.average()))
    if combination:
        targets.append(fit_target(train, test, _weighted_target(train, combination)))
    if not targets:
        raise RegmixError("no target: give --target COLUMN (repeatable), --target-average or --target-weights")
    names_seen = [t.name for t in targets]
    if len(set(names_seen)) != len(names_seen):
        raise RegmixError(f"target listed twice: {names_seen}")
    return targets


def _weighted_target(train: RunTable, combination: Mapping[str, float]) -> Target:
    weights: dict[str, float] = {}
    for key, value in combination.items():
        domain = train.domain_of(key)
        if domain is None:
            raise DataError(f"--target-weights: {key!r} is not a per-domain loss column or domain of "
                            f"{train.source}; domains: {sorted(set(train.metric_domains.values()))}")
        if domain in weights:
            raise DataError(f"--target-weights: domain {domain!r} is named twice")
        weights[domain] = value
    return Target.weighted(weights, where="--target-weights")


def slug(name: str) -> str:
    """A file-name-safe form of a target name (``metric/the_pile_pile_cc_val_loss`` -> ``metric_the_pile_...``)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") or "target"


#: How the runs of a mixture trained more than once enter the fit: averaged into one row, or kept as a group.
REPEAT_MODES = ("average", "group")


def cross_validate(kind: str, weights: np.ndarray, y: np.ndarray, domains: Sequence[str], target: str,
                   num_folds: int, seed: int = 0, options: Mapping[str, Any] | None = None,
                   groups: np.ndarray | None = None) -> tuple[dict, np.ndarray]:
    """K-fold CV on the training runs, whole ``groups`` per fold (:func:`kfold_indices`). Returns (metrics,
    out-of-fold predictions).

    Metrics: per-fold ``spearman``/``pearson``/``mse`` (mean and std over folds), the per-fold Spearman values
    (``spearman_folds``) and ``pooled`` metrics of all out-of-fold predictions together. CV scores predictions
    only, so an ensemble is fit in each fold without its bootstrap refits (it still chooses its members there:
    nested CV).
    """
    folds = kfold_indices(len(y), num_folds, seed, groups)
    oof = np.empty(len(y), dtype=np.float64)
    per_fold = []
    for held in folds:
        keep = np.setdiff1d(np.arange(len(y)), held)
        model = make_regressor(kind, domains, target, num_bootstrap=0, **(options or {})).fit(weights[keep], y[keep])
        oof[held] = model.predict(weights[held])
        if held.size >= 2:
            per_fold.append(evaluate(y[held], oof[held]))
    out: dict[str, Any] = {"num_folds": num_folds, "seed": seed}
    for key in ("spearman", "pearson", "mse"):
        vals = np.array([m[key] for m in per_fold], dtype=np.float64)
        out[f"{key}_mean"] = float(np.nanmean(vals)) if vals.size else float("nan")
        out[f"{key}_std"] = float(np.nanstd(vals)) if vals.size else float("nan")
    out["spearman_folds"] = [float(m["spearman"]) for m in per_fold]
    out["pooled"] = evaluate(y, oof)
    return out, oof


def choose_regressor(cv_spearman: Mapping[str, float | None],
                     preference: Sequence[str] = ("ensemble", "lightgbm", "quadratic", "linear")
                     ) -> tuple[str, str]:
    """The regressor with the highest cross-validated Spearman (ties and missing values resolved by
    ``preference`` order: on a tie the ensemble, which gives an uncertainty, then the paper's LightGBM); returns
    ``(kind, reason)``, the reason naming every candidate's value."""
    scored = {k: v for k, v in cv_spearman.items() if v is not None and np.isfinite(v)}
    if not scored:
        kind = next((k for k in preference if k in cv_spearman), next(iter(cv_spearman)))
        return kind, f"no cross-validated Spearman to compare: {kind} by default"
    rank = {k: i for i, k in enumerate(preference)}
    kind = max(scored, key=lambda k: (round(scored[k], 12), -rank.get(k, len(rank))))
    others = ", ".join(f"{k} {v:.3f}" for k, v in sorted(scored.items(), key=lambda kv: -kv[1]))
    return kind, f"highest cross-validated Spearman ({others})"


@dataclass
class FitOutcome:
    summary: dict
    models: dict[tuple[str, str], Regressor] = field(default_factory=dict)
    """(target name, regressor kind) -> fitted model (on all usable training runs)."""
    predictions: pd.DataFrame = field(default_factory=pd.DataFrame)
    """Held-out predictions: target, regressor, split (test/cv), run_id, true, predicted."""


def _num_or_none(x: float) -> float | None:
    return None if x is None or not np.isfinite(x) else float(x)


def _clean_json(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _clean_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean_json(v) for v in obj]
    if isinstance(obj, (float, np.floating)):
        return _num_or_none(float(obj))
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


def fit_models(train: RunTable, targets: Sequence[FitTarget], kinds: Sequence[str] = ("lightgbm", "linear"), *,
               test: RunTable | None = None, cv_folds: int = 0, seed: int = 0,
               max_nan_fraction: float = DEFAULT_MAX_NAN_FRACTION,
               lightgbm_options: Mapping[str, Any] | None = None, repeats: str = "average",
               num_bootstrap: int = DEFAULT_NUM_BOOTSTRAP) -> FitOutcome:
    """Fit one model per (target, regressor) on all usable training runs; CV and test evaluation as asked.
    ``repeats``: what the runs of one mixture become, one averaged row or one group (see the module
    docstring). ``lightgbm_options`` also shape an ensemble's LightGBM members; ``num_bootstrap`` is its number of
    refits."""
    for kind in kinds:
        if kind not in REGRESSORS:
            raise RegmixError(f"--regressors: unknown regressor {kind!r}; choose from {sorted(REGRESSORS)}")
    if repeats not in REPEAT_MODES:
        raise RegmixError(f"--repeats {repeats!r}: use one of {list(REPEAT_MODES)}")
    if test is not None:
        test = align_domains(test, train.domains, "test data")
    options = dict(lightgbm_options or {})
    options.setdefault("seed", seed)
    rows: list[pd.DataFrame] = []
    models: dict[tuple[str, str], Regressor] = {}
    per_regressor: dict[str, dict] = {k: {"targets": {}} for k in kinds}
    data_info: dict[str, Any] = {"train": {"source": train.source, "num_runs": train.num_runs,
                                           "domains": list(train.domains)}}
    if test is not None:
        data_info["test"] = {"source": test.source, "num_runs": test.num_runs}
    target_info = {}
    data_info["repeats"] = repeats_info(train, repeats)
    for target in targets:
        runs = _usable_runs(train, test, target, max_nan_fraction, repeats)
        target_info[target.name] = runs.info
        for kind in kinds:
            model, entry, held_out = _fit_one(kind, train, runs, target, cv_folds, seed, options, num_bootstrap)
            models[(target.name, kind)] = model
            per_regressor[kind]["targets"][target.name] = entry
            rows += held_out
            logger.info("%-8s %-40s spearman=%s pearson=%s mse=%s (%s)", kind, target.name,
                        _fmt(entry.get("spearman")), _fmt(entry.get("pearson")), _fmt(entry.get("mse")),
                        entry["evaluated_on"])
    for block in per_regressor.values():
        _aggregate(block)
    summary = {
        "format": FORMAT,
        "data": data_info,
        "targets": target_info,
        "cv_folds": cv_folds,
        "seed": seed,
        "regressors": per_regressor,
    }
    predictions = pd.concat(rows, ignore_index=True) if rows else pd.DataFrame(
        columns=["target", "regressor", "split", "run_id", "true", "predicted", "predicted_sd"])
    return FitOutcome(summary=_clean_json(summary), models=models, predictions=predictions)


def refit_sd(kind: str, train: RunTable, target: FitTarget, at: np.ndarray, *, seed: int = 0,
             num_bootstrap: int = DEFAULT_NUM_BOOTSTRAP, lightgbm_options: Mapping[str, Any] | None = None,
             max_nan_fraction: float = DEFAULT_MAX_NAN_FRACTION, repeats: str = "average") -> np.ndarray | None:
    """The uncertainty of a ``kind`` model that gives none itself: the sd, at the mixtures ``at``, of its predictions
    over ``num_bootstrap`` refits on group-bootstrap resamples of the runs it was fit on (the same runs, options and
    seed as :func:`fit_models`; a mixture's repeats are drawn together). It is the estimation variance only (an
    ensemble's ``sd_bootstrap``): a model's bias does not show. None with fewer than 2 refits."""
    if kind == EnsembleRegressor.kind:
        raise RegmixError("refit_sd: the ensemble gives its own uncertainty (predict_with_sd)")
    if num_bootstrap < 2:
        return None
    runs = _usable_runs(train, None, target, max_nan_fraction, repeats)
    options = dict(lightgbm_options or {})
    options.setdefault("seed", seed)
    rng = np.random.default_rng(seed)
    preds = []
    for _ in range(num_bootstrap):
        rows = group_bootstrap(runs.groups, rng)
        model = make_regressor(kind, train.domains, target.name, target.target, **options)
        preds.append(model.fit(runs.x[rows], runs.y[rows]).predict(at))
    return np.std(np.stack(preds), axis=0, ddof=1)


@dataclass
class _Runs:
    """The usable runs of one target: training rows (and test rows) whose target value is finite; with repeats
    averaged, one training row per mixture."""

    x: np.ndarray
    y: np.ndarray
    run_ids: np.ndarray
    groups: np.ndarray
    """The mixture of each training row (:func:`~regmix_megatron.regression.data.mixture_groups`)."""
    x_test: np.ndarray | None
    y_test: np.ndarray | None
    test_ids: np.ndarray | None
    info: dict


def repeats_info(table: RunTable, mode: str) -> dict:
    """How the table's repeated mixtures enter the fit (``metrics.json``: ``data.repeats``)."""
    groups = mixture_groups(table.weights)
    sizes = np.bincount(groups) if groups.size else np.zeros(0, dtype=np.int64)
    repeated = sizes[sizes > 1]
    how = {"average": "each mixture's runs averaged into one row", "group": "each mixture's runs kept, in one CV "
           "fold together"}[mode]
    return {"mode": mode, "num_runs": int(groups.size), "num_mixtures": int(sizes.size),
            "num_repeated_mixtures": int(repeated.size), "num_runs_of_repeated_mixtures": int(repeated.sum()),
            "note": how if repeated.size else "no mixture has more than one run"}


def _usable_runs(train: RunTable, test: RunTable | None, target: FitTarget, max_nan_fraction: float,
                 repeats: str = "average") -> _Runs:
    ok = clean_target(target.train, target.name, f"training data {train.source}", max_nan_fraction)
    x, y, ids = train.weights[ok], target.train[ok], np.asarray(train.run_ids, dtype=object)[ok]
    groups = mixture_groups(x)
    num_mixtures = int(groups.max()) + 1 if groups.size else 0
    check_enough_runs(num_mixtures, train.num_domains, f"training data {train.source} (target {target.name}; "
                      f"{num_mixtures} distinct mixtures)")
    info = {"definition": target.definition(), "num_train_runs": int(ok.sum()),
            "num_train_excluded_nan": int((~ok).sum()), "num_train_mixtures": num_mixtures}
    noise = _repeat_noise(y, groups)
    if repeats == "average" and num_mixtures < len(y):
        sizes = np.bincount(groups)
        x, y, ids, groups = _average_repeats(x, y, ids, groups)
        if noise is not None and noise["sd"] is not None and len(y) >= 2:
            # the CV scores means of k runs: their noise is sd / sqrt(k), so their ceiling is higher
            from ..runs.noise import spearman_ceiling

            noise["ceiling_of_averages"] = spearman_ceiling(float(np.std(y, ddof=1)),
                                                            noise["sd"] * float(np.sqrt(np.mean(1.0 / sizes))))
    if noise is not None:
        info["noise"] = noise
    x_test = y_test = test_ids = None
    if test is not None and target.test is not None:
        ok_test = clean_target(target.test, target.name, f"test data {test.source}", max_nan_fraction)
        info.update(num_test_runs=int(ok_test.sum()), num_test_excluded_nan=int((~ok_test).sum()))
        x_test, y_test = test.weights[ok_test], target.test[ok_test]
        test_ids = np.asarray(test.run_ids, dtype=object)[ok_test]
    return _Runs(x, y, ids, groups, x_test, y_test, test_ids, info)


def _average_repeats(x: np.ndarray, y: np.ndarray, ids: np.ndarray, groups: np.ndarray):
    """One row per mixture: its weights, the mean of its runs' targets, its run ids joined by ``+``."""
    num = int(groups.max()) + 1
    first = np.array([np.flatnonzero(groups == g)[0] for g in range(num)])
    mean = np.bincount(groups, weights=y, minlength=num) / np.bincount(groups, minlength=num)
    joined = np.array(["+".join(str(i) for i in ids[groups == g]) for g in range(num)], dtype=object)
    return x[first], mean, joined, np.arange(num)


def _repeat_noise(y: np.ndarray, groups: np.ndarray) -> dict | None:
    """The seed noise the repeated mixtures measure, and the CV Spearman ceiling it allows against one run per
    mixture (:func:`regmix_megatron.runs.noise.proxy_noise`); None without repeats."""
    from ..runs.noise import proxy_noise

    values: dict[int, list[float]] = {}
    for g, v in zip(groups.tolist(), y.tolist()):
        values.setdefault(g, []).append(float(v))
    if all(len(v) < 2 for v in values.values()):
        return None
    return proxy_noise({str(g): v for g, v in values.items() if len(v) > 1}, [v[0] for v in values.values()])


def _fit_one(kind: str, train: RunTable, runs: _Runs, target: FitTarget, cv_folds: int, seed: int,
             options: Mapping[str, Any], num_bootstrap: int = DEFAULT_NUM_BOOTSTRAP
             ) -> tuple[Regressor, dict, list[pd.DataFrame]]:
    """One regressor on one target: CV (when asked), the model on every usable run, test metrics (when there
    is a test set). Returns the model, its ``metrics.json`` entry and its held-out prediction rows (with
    ``predicted_sd`` on test rows for a regressor that gives one, else empty)."""
    entry: dict[str, Any] = {}
    rows: list[pd.DataFrame] = []
    if cv_folds:
        cv, oof = cross_validate(kind, runs.x, runs.y, train.domains, target.name, cv_folds, seed, options,
                                 groups=runs.groups)
        entry["cv"] = cv
        rows.append(pd.DataFrame({"target": target.name, "regressor": kind, "split": "cv",
                                  "run_id": runs.run_ids, "true": runs.y, "predicted": oof, "predicted_sd": np.nan}))
    model = make_regressor(kind, train.domains, target.name, target.target, num_bootstrap=num_bootstrap,
                           **options).fit(runs.x, runs.y)
    if runs.x_test is not None:
        pred = model.predict_with_sd(runs.x_test)
        entry["test"] = evaluate(runs.y_test, pred.mean)
        rows.append(pd.DataFrame({"target": target.name, "regressor": kind, "split": "test",
                                  "run_id": runs.test_ids, "true": runs.y_test, "predicted": pred.mean,
                                  "predicted_sd": np.nan if pred.sd is None else pred.sd}))
    # Headline: test metrics when there is a test set, else pooled out-of-fold CV metrics.
    if "test" in entry:
        headline, where = entry["test"], "test"
    elif "cv" in entry:
        headline, where = entry["cv"]["pooled"], "cv"
    else:
        headline, where = {}, "none"
    entry.update({k: headline.get(k) for k in ("spearman", "pearson", "mse")})
    entry["spearman_x100"] = None if entry["spearman"] is None else 100.0 * entry["spearman"]
    entry["evaluated_on"] = where
    if kind == "lightgbm":
        entry["num_trees"] = int(model.booster.num_trees())
    if isinstance(model, EnsembleRegressor):  # its members, how they combine, the CV that chose them
        entry["ensemble"] = model.describe()
        if "cv" in entry:
            entry["cv"]["nested"] = True
    return model, entry, rows


def _aggregate(block: dict) -> None:
    """A regressor's headline metrics: its one target's, or the mean over its targets."""
    entries = list(block["targets"].values())
    if len(entries) == 1:
        block.update({k: entries[0].get(k) for k in ("spearman", "spearman_x100", "pearson", "mse",
                                                     "evaluated_on")})
        block["target"] = next(iter(block["targets"]))
    else:
        for key in ("spearman", "pearson", "mse"):
            vals = [e[key] for e in entries if e.get(key) is not None]
            block[key] = float(np.mean(vals)) if vals else None
        block["spearman_x100"] = None if block["spearman"] is None else 100.0 * block["spearman"]
        block["aggregate"] = f"mean over {len(entries)} targets"


def _fmt(x: Any) -> str:
    return "n/a" if x is None else f"{x:.4f}"


@dataclass(frozen=True)
class SavedModel:
    """A model file written by :func:`write_outputs`."""

    target: str | dict
    """The target's JSON form (:meth:`FitTarget.definition`)."""
    name: str
    """The fit's name for the target (the key in ``metrics.json``)."""
    regressor: str
    path: str
    """Relative to the fit's output directory."""


#: What a fit output folder holds (written whole and in place: :mod:`regmix_megatron.output_folder`, with its
#: ``outputs.json`` last).
#: The fit's metrics (:class:`FitMetrics`) in a fit folder.
METRICS_FILE = "metrics.json"
FIT_FILES = ("models/**", METRICS_FILE, "predictions.csv")


def write_outputs(outcome: FitOutcome, output_dir: str | Path, what: str = "fit output directory") -> list[SavedModel]:
    """Models under ``models/<target>/<regressor>.{txt,json}``, ``metrics.json``, ``predictions.csv``: the
    folder whole and in place (all of them and ``outputs.json`` last, or after a failed write the previous ones).

    ``metrics.json`` lists each model under ``regressors.<kind>.targets.<name>.model``; the returned records
    name the target by its JSON form."""
    from ..output_folder import output_folder

    saved: list[SavedModel] = []
    with output_folder(output_dir, owned=FIT_FILES, what=what) as tmp:
        for (name, kind), model in outcome.models.items():
            file_name = f"{kind}.txt" if kind == "lightgbm" else f"{kind}.json"
            rel = str(Path("models") / slug(name) / file_name)
            model.save(tmp / rel)
            outcome.summary["regressors"][kind]["targets"][name]["model"] = rel
            saved.append(SavedModel(outcome.summary["targets"][name]["definition"], name, kind, rel))
        with atomic_path(tmp / "predictions.csv") as path:
            outcome.predictions.to_csv(path, index=False)
        atomic_write_json(tmp / METRICS_FILE, outcome.summary)
    return saved


# ---- metrics.json, typed -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class CrossValidation:
    """``cv`` of one fitted model: k-fold CV grouped by mixture (None where a number was not finite)."""

    num_folds: int
    spearman_mean: float | None
    """Mean of the per-fold Spearman."""
    spearman_std: float | None
    """Their standard deviation."""
    spearman_folds: tuple[float | None, ...]
    """The per-fold Spearman."""
    pooled: Mapping[str, float | None]
    """The out-of-fold predictions of every fold together: ``spearman``, ``pearson``, ``mse``, ``num_runs``."""

    @classmethod
    def from_json(cls, doc: Field) -> "CrossValidation":
        return cls(num_folds=doc["num_folds"].count(), spearman_mean=doc["spearman_mean"].maybe(Field.number),
                   spearman_std=doc["spearman_std"].maybe(Field.number),
                   spearman_folds=tuple(f.maybe(Field.number) for f in doc.get("spearman_folds", []).items()),
                   pooled={k: v.maybe(Field.number) for k, v in doc.get("pooled", {}).fields().items()})


@dataclass(frozen=True)
class ModelFit:
    """One regressor on one target (``regressors.<kind>.targets.<name>``)."""

    evaluated_on: Literal["test", "cv", "none"]
    """Where the headline metrics come from: the test runs, else pooled out-of-fold CV."""
    spearman: float | None
    pearson: float | None
    mse: float | None
    cv: CrossValidation | None
    """None without cross-validation."""
    model: str | None
    """The model file, relative to the fit folder (None before the fit was written to one)."""

    @classmethod
    def from_json(cls, doc: Field) -> "ModelFit":
        return cls(evaluated_on=doc["evaluated_on"].choice(("test", "cv", "none")),
                   spearman=doc["spearman"].maybe(Field.number), pearson=doc["pearson"].maybe(Field.number),
                   mse=doc["mse"].maybe(Field.number), cv=doc["cv"].maybe(CrossValidation.from_json),
                   model=doc["model"].maybe(Field.text))


@dataclass(frozen=True)
class TargetFit:
    """What one target was fitted on (``targets.<name>``)."""

    definition: str | dict
    """The target's JSON form (:meth:`FitTarget.definition`)."""
    num_train_runs: int
    """Training rows with a finite target value."""
    noise: Mapping[str, Any] | None
    """The seed noise its repeated mixtures measure (:func:`regmix_megatron.runs.noise.proxy_noise`), or None."""

    @classmethod
    def from_json(cls, doc: Field) -> "TargetFit":
        definition = doc["definition"]
        return cls(definition=definition.value if isinstance(definition.value, str) else definition.mapping(),
                   num_train_runs=doc["num_train_runs"].count(), noise=doc["noise"].maybe(Field.mapping))


@dataclass(frozen=True)
class FitMetrics:
    """``metrics.json`` (``regmix-megatron/fit/v1``) as its readers use it; the file holds more (the ensemble's
    description, test metrics, LightGBM options), kept in :attr:`document`."""

    targets: Mapping[str, TargetFit]
    """The fit's name of each target -> what it was fitted on."""
    regressors: Mapping[str, Mapping[str, ModelFit]]
    """Regressor -> the fit's name of a target -> the model."""
    train: Mapping[str, Any]
    """``data.train``: the training runs' ``source``, ``num_runs`` and ``domains``."""
    test: Mapping[str, Any] | None
    """``data.test``: the test runs' ``source`` and ``num_runs`` (None without a test set)."""
    repeats: Mapping[str, Any]
    """``data.repeats``: how runs of one mixture entered the fit (:func:`repeats_info`)."""
    inputs: Mapping[str, Any]
    """What ``regmix-megatron fit`` read (``results``, ``mixtures``, ``losses``, ``renormalize``, ...); empty
    for the pipeline's fit."""
    document: Mapping[str, Any] = field(repr=False, compare=False, default_factory=dict)
    """The whole file as written."""

    @classmethod
    def from_json_obj(cls, obj: Any, where: str) -> "FitMetrics":
        """Read a parsed ``metrics.json`` (or a fit's summary); a :class:`DataError` names ``where`` and the field
        path."""
        doc = Field(obj, where, fix="run `fit` again")
        doc["format"].choice([FORMAT])
        regressors = {kind: {name: ModelFit.from_json(entry) for name, entry in block["targets"].fields().items()}
                      for kind, block in doc["regressors"].fields().items()}
        return cls(targets={k: TargetFit.from_json(v) for k, v in doc["targets"].fields().items()},
                   regressors=regressors, train=doc["data"]["train"].mapping(),
                   test=doc["data"]["test"].maybe(Field.mapping), repeats=doc["data"].get("repeats", {}).mapping(),
                   inputs=doc.get("inputs", {}).mapping(), document=obj)

    def fit(self, regressor: str, target: str | None = None) -> ModelFit | None:
        """The model of ``regressor`` for ``target`` (default: the only target), or None when it was not fitted."""
        fits = self.regressors.get(regressor) or {}
        if target is None and len(fits) == 1:
            target = next(iter(fits))
        return fits.get(target)


def read_fit_metrics(fit_dir: str | Path) -> FitMetrics:
    """``metrics.json`` of a complete fit folder (refused when incomplete:
    :func:`regmix_megatron.output_folder.read_outputs`), typed and checked field by field."""
    from ..fileio import read_json
    from ..output_folder import read_outputs

    read_outputs(fit_dir, "fit folder")
    path = Path(fit_dir) / METRICS_FILE
    return FitMetrics.from_json_obj(read_json(path), str(path))


def find_model(fit_dir: str | Path, regressor: str = "lightgbm", target: str | None = None) -> Path:
    """The model file of ``regressor`` for ``target`` (the fit's name; default: its only target) in a fit
    output directory, as listed in its ``metrics.json``. The one way to find a model in a fit folder."""
    fit_dir = Path(fit_dir)
    fitted = read_fit_metrics(fit_dir).regressors
    targets = fitted.get(regressor)
    if not targets:
        raise RegmixError(f"{fit_dir}: no {regressor!r} models; fitted: {sorted(fitted)} (pick a regressor "
                          "that was fitted)")
    if target is None:
        if len(targets) != 1:
            raise RegmixError(f"{fit_dir} holds models for targets {sorted(targets)}: pick one")
        target = next(iter(targets))
    if target not in targets:
        raise RegmixError(f"target {target!r}: not fitted in {fit_dir}; fitted: {sorted(targets)}")
    rel = targets[target].model
    if not rel:
        raise RegmixError(f"{fit_dir}: {METRICS_FILE} lists no model file for {target!r}")
    return fit_dir / rel

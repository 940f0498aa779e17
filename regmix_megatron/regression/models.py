"""Regressors from mixture weights to a target metric, behind one small interface.

``fit(weights, y)``, ``predict(weights)``, ``save(path)``, ``load(path)``. Features are the mixture weights in the
regressor's domain order (rows normalized exactly by the loaders). Files, never pickle:

- LightGBM: LightGBM's own text model at ``path`` plus a JSON sidecar ``<path>.meta.json`` (domains, target,
  parameters, SHA-256 of the model text).

Both files name the target twice: ``target`` is the fit's name for it (a results-table column such as
``val_loss/literature``, ``average_val_loss``), ``definition`` its JSON form (:meth:`regmix_megatron.target.Target.
to_json`: ``"literature"``, ``"average"``, ``{"qa": 0.7, ...}``), or ``{"column": NAME}`` for a metric column that
is not a validation loss. Files written before ``definition`` existed get it from the name when it is one of our
columns.
- Linear: one JSON file with the coefficients (``repr`` floats, exact round trip).
- Quadratic: ridge regression on the weights and their pairwise products (a second-order response surface,
  whose optimum can lie inside the simplex, where a linear model's is always a corner); one JSON file with the
  chosen ridge penalty and every coefficient (``repr`` floats).
- Ensemble (:class:`EnsembleRegressor`): ``ensemble.json`` (the combination cross-validation chose, what it
  saw, a SHA-256 per member file) and the members' own files in the folder ``ensemble/`` beside it: the members
  fit on all runs, and ``bootstrap/<b>/`` their refits on group-bootstrap resamples.

:func:`load_regressor` reads any of them, and can refuse a model trained over a different domain set.
:meth:`Regressor.predict_with_sd` gives predictions with their uncertainty (:class:`Prediction`; ``sd`` is None for
a regressor that gives none: all but the ensemble).
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from ..errors import DataError, RegmixError
from ..fileio import atomic_write_json, atomic_write_text, read_json
from ..target import Target
from .data import kfold_indices, mixture_groups
from .ensemble import (DEFAULT_NUM_BOOTSTRAP, DEFAULT_NUM_FOLDS, MEMBER_KINDS, Combination, Selection,
                       candidate_combinations, choose_combination, group_bootstrap, spread)

logger = logging.getLogger(__name__)

FORMAT = "regmix-megatron/regressor/v1"
SIDECAR_SUFFIX = ".meta.json"

#: The paper's LightGBM settings (1000 boosting rounds, learning rate 0.01), made deterministic.
PAPER_LIGHTGBM_PARAMS: dict[str, Any] = {
    "objective": "regression",
    "learning_rate": 0.01,
    "deterministic": True,
    "force_row_wise": True,
    "num_threads": 1,
    "verbose": -1,
}
PAPER_NUM_ROUNDS = 1000


def _as_features(weights: Any, domains: Sequence[str], who: str) -> np.ndarray:
    x = np.asarray(weights, dtype=np.float64)
    if x.ndim == 1:
        x = x[None, :]
    if x.ndim != 2 or x.shape[1] != len(domains):
        raise DataError(f"{who}: expected weights of shape (n, {len(domains)}) over domains {list(domains)}, "
                        f"got shape {x.shape}")
    return x


@dataclass(frozen=True)
class Prediction:
    """Predicted target values and their uncertainty (standard deviations, same shape), from
    :meth:`Regressor.predict_with_sd`."""

    mean: np.ndarray
    sd: np.ndarray | None = None
    """None: the regressor gives no uncertainty."""
    sd_members: np.ndarray | None = None
    """The part of ``sd`` from the members' disagreement (ensembles of 2 or more members)."""
    sd_bootstrap: np.ndarray | None = None
    """The part of ``sd`` from refits on bootstrap resamples of the runs (ensembles with 2 or more refits)."""


class Regressor:
    """Interface. Subclasses set ``kind`` and implement ``_fit``, ``predict``, ``save`` and the loading: one JSON
    object read by :meth:`_from_obj` and their ``_read_coefficients``, or their own (LightGBM)."""

    kind = "base"

    def __init__(self, domains: Sequence[str], target: str = "target") -> None:
        self.domains = tuple(domains)
        self.target = str(target)
        """The fit's name for the target (a column name)."""
        self.definition: Target | None = Target.from_column(self.target)
        """The optimization target the model predicts (by default the one our column ``target`` names); None for
        a metric column that is not a loss target."""
        self.num_train_runs = 0

    # -- the interface --------------------------------------------------------------------------------
    def fit(self, weights: np.ndarray, y: np.ndarray) -> "Regressor":
        x = _as_features(weights, self.domains, f"{self.kind} fit")
        y = np.asarray(y, dtype=np.float64)
        if y.shape != (x.shape[0],):
            raise DataError(f"{self.kind} fit: {x.shape[0]} rows of weights but target of shape {y.shape}")
        if not np.all(np.isfinite(y)):
            raise DataError(f"{self.kind} fit: target {self.target!r} has NaN/inf values: filter them first")
        self._fit(x, y)
        self.num_train_runs = int(x.shape[0])
        return self

    def _fit(self, x: np.ndarray, y: np.ndarray) -> None:
        raise NotImplementedError

    def predict(self, weights: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    @property
    def gives_uncertainty(self) -> bool:
        """Whether :meth:`predict_with_sd` gives an ``sd``."""
        return False

    def predict_with_sd(self, weights: np.ndarray) -> Prediction:
        """Predictions and their uncertainty; ``sd`` is None unless :attr:`gives_uncertainty`."""
        return Prediction(self.predict(weights))

    def save(self, path: str | Path) -> Path:
        raise NotImplementedError

    @classmethod
    def load(cls, path: str | Path) -> "Regressor":
        reg = load_regressor(path)
        if not isinstance(reg, cls):
            raise DataError(f"{path}: holds a {reg.kind} model, not {cls.kind}")
        return reg

    def feature_importance(self) -> np.ndarray:
        """Non-negative importance per domain (same order as :attr:`domains`)."""
        raise NotImplementedError

    def check_domains(self, domains: Sequence[str], source: str) -> None:
        """Refuse to apply this model to data over a different domain set."""
        if tuple(domains) == self.domains:
            return
        missing = sorted(set(self.domains) - set(domains))
        unknown = sorted(set(domains) - set(self.domains))
        where = getattr(self, "path", "") or "the model"
        raise DataError(
            f"{where} was trained over domains {list(self.domains)} but {source} has domains "
            f"{list(domains)} (missing {missing}, extra {unknown}, or a different order); refit the model on "
            "runs over the same domains or use the matching model file"
        )

    def _meta(self) -> dict:
        definition = self.definition.to_json() if self.definition is not None else {"column": self.target}
        return {"format": FORMAT, "kind": self.kind, "target": self.target, "definition": definition,
                "domains": list(self.domains), "num_train_runs": self.num_train_runs}

    @classmethod
    def _from_obj(cls, obj: Mapping, path: str) -> "Regressor":
        """A model saved as one JSON object (``JSON_REGRESSORS``): the common fields here, the coefficients by
        :meth:`_read_coefficients`; a malformed file is named with the fix."""
        try:
            reg = cls(obj["domains"], obj["target"])
            reg._read_coefficients(obj)
            reg.num_train_runs = int(obj.get("num_train_runs", 0))
            reg._read_definition(obj)
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(f"{path}: malformed {cls.kind} model ({type(exc).__name__}: {exc}); refit it") from None
        reg.path = path
        return reg

    def _read_coefficients(self, obj: Mapping) -> None:
        raise NotImplementedError

    def _read_definition(self, meta: Mapping) -> None:
        obj = meta.get("definition")
        if obj is None:  # written before the definition was stored
            self.definition = Target.from_column(self.target)
        elif not (isinstance(obj, Mapping) and set(obj) == {"column"}):
            self.definition = Target.from_json(obj)


class LinearRegressor(Regressor):
    """Ordinary least squares with an intercept (scikit-learn), the paper's linear baseline."""

    kind = "linear"

    def __init__(self, domains: Sequence[str], target: str = "target") -> None:
        super().__init__(domains, target)
        self.coef: np.ndarray | None = None
        self.intercept = 0.0
        self.path = ""

    def _fit(self, x: np.ndarray, y: np.ndarray) -> None:
        from sklearn.linear_model import LinearRegression

        model = LinearRegression().fit(x, y)
        self.coef = np.asarray(model.coef_, dtype=np.float64)
        self.intercept = float(model.intercept_)

    def predict(self, weights: np.ndarray) -> np.ndarray:
        if self.coef is None:
            raise RegmixError("linear regressor is not fitted: call fit() or load()")
        x = _as_features(weights, self.domains, "linear predict")
        return x @ self.coef + self.intercept

    def feature_importance(self) -> np.ndarray:
        if self.coef is None:
            raise RegmixError("linear regressor is not fitted")
        return np.abs(self.coef)

    def save(self, path: str | Path) -> Path:
        if self.coef is None:
            raise RegmixError("linear regressor is not fitted: nothing to save")
        obj = self._meta()
        obj["intercept"] = repr(self.intercept)
        obj["coef"] = {d: repr(float(c)) for d, c in zip(self.domains, self.coef)}
        return atomic_write_json(path, obj)

    def _read_coefficients(self, obj: Mapping) -> None:
        self.coef = np.array([float(obj["coef"][d]) for d in self.domains], dtype=np.float64)
        self.intercept = float(obj["intercept"])


class QuadraticRegressor(Regressor):
    """Ridge regression on ``w_i`` and ``w_i * w_j`` (i <= j): a smooth second-order surface over the simplex.

    The ridge penalty is chosen among ``alphas`` by efficient leave-one-out cross-validation on the training runs
    (scikit-learn's ``RidgeCV``); predictions are computed here from the stored coefficients, so a saved and
    reloaded model predicts bit for bit the same."""

    kind = "quadratic"
    ALPHAS = tuple(float(a) for a in np.logspace(-6, 2, 17))

    def __init__(self, domains: Sequence[str], target: str = "target") -> None:
        super().__init__(domains, target)
        self.coef: np.ndarray | None = None
        """Linear coefficients, one per domain."""
        self.quad: np.ndarray | None = None
        """Upper-triangular (i <= j) coefficients of ``w_i * w_j``."""
        self.intercept = 0.0
        self.alpha = 0.0
        self.path = ""

    def _pairs(self) -> list[tuple[int, int]]:
        n = len(self.domains)
        return [(i, j) for i in range(n) for j in range(i, n)]

    def _features(self, x: np.ndarray) -> np.ndarray:
        return np.hstack([x] + [(x[:, i] * x[:, j])[:, None] for i, j in self._pairs()])

    def _fit(self, x: np.ndarray, y: np.ndarray) -> None:
        from sklearn.linear_model import RidgeCV

        model = RidgeCV(alphas=self.ALPHAS).fit(self._features(x), y)
        n = len(self.domains)
        self.coef = np.asarray(model.coef_[:n], dtype=np.float64)
        self.quad = np.zeros((n, n), dtype=np.float64)
        for (i, j), c in zip(self._pairs(), model.coef_[n:]):
            self.quad[i, j] = float(c)
        self.intercept = float(model.intercept_)
        self.alpha = float(model.alpha_)

    def predict(self, weights: np.ndarray) -> np.ndarray:
        if self.coef is None or self.quad is None:
            raise RegmixError("quadratic regressor is not fitted: call fit() or load()")
        x = _as_features(weights, self.domains, "quadratic predict")
        return x @ self.coef + np.einsum("ni,ij,nj->n", x, self.quad, x) + self.intercept

    def feature_importance(self) -> np.ndarray:
        if self.coef is None or self.quad is None:
            raise RegmixError("quadratic regressor is not fitted")
        q = np.abs(self.quad)
        return np.abs(self.coef) + q.sum(axis=0) + q.sum(axis=1)

    def save(self, path: str | Path) -> Path:
        if self.coef is None or self.quad is None:
            raise RegmixError("quadratic regressor is not fitted: nothing to save")
        obj = self._meta()
        obj["intercept"] = repr(self.intercept)
        obj["alpha"] = repr(self.alpha)
        obj["coef"] = {d: repr(float(c)) for d, c in zip(self.domains, self.coef)}
        obj["quadratic"] = {f"{self.domains[i]}*{self.domains[j]}": repr(float(self.quad[i, j]))
                            for i, j in self._pairs()}
        return atomic_write_json(path, obj)

    def _read_coefficients(self, obj: Mapping) -> None:
        n = len(self.domains)
        self.coef = np.array([float(obj["coef"][d]) for d in self.domains], dtype=np.float64)
        self.quad = np.zeros((n, n), dtype=np.float64)
        for i, j in self._pairs():
            self.quad[i, j] = float(obj["quadratic"][f"{self.domains[i]}*{self.domains[j]}"])
        self.intercept = float(obj["intercept"])
        self.alpha = float(obj["alpha"])


class LightGBMRegressor(Regressor):
    """Gradient-boosted trees with the paper's settings: 1000 rounds, learning rate 0.01.

    Early stopping is off by default. When ``early_stopping_rounds`` is set, a ``validation_fraction`` slice
    of the TRAINING runs (random, seeded) is held out to decide when to stop and the model is trained on the
    rest; test data never enters ``fit``.

    ``min_data_in_leaf``: None keeps LightGBM's default (20) when there are >= 200 runs, and uses
    ``max(2, num_runs // 10)`` below that so small sweeps can still split (documented deviation).
    """

    kind = "lightgbm"

    def __init__(self, domains: Sequence[str], target: str = "target", *, num_rounds: int = PAPER_NUM_ROUNDS,
                 learning_rate: float = 0.01, seed: int = 0, min_data_in_leaf: int | None = None,
                 early_stopping_rounds: int | None = None, validation_fraction: float = 0.1,
                 params: Mapping[str, Any] | None = None) -> None:
        super().__init__(domains, target)
        if num_rounds < 1:
            raise RegmixError(f"num_rounds={num_rounds} must be >= 1")
        if not 0 < learning_rate <= 1:
            raise RegmixError(f"learning_rate={learning_rate} must be in (0, 1]")
        if early_stopping_rounds is not None and not 0 < validation_fraction < 1:
            raise RegmixError(f"validation_fraction={validation_fraction} must be in (0, 1) for early stopping")
        self.num_rounds = int(num_rounds)
        self.learning_rate = float(learning_rate)
        self.seed = int(seed)
        self.min_data_in_leaf = min_data_in_leaf
        self.early_stopping_rounds = early_stopping_rounds
        self.validation_fraction = float(validation_fraction)
        self.extra_params = dict(params or {})
        self.booster = None
        self.best_iteration = 0
        self.path = ""

    def lightgbm_params(self, num_runs: int) -> dict[str, Any]:
        params = dict(PAPER_LIGHTGBM_PARAMS)
        params["learning_rate"] = self.learning_rate
        params["seed"] = self.seed
        mdl = self.min_data_in_leaf
        if mdl is None:
            mdl = 20 if num_runs >= 200 else max(2, num_runs // 10)
        params["min_data_in_leaf"] = int(mdl)
        params.update(self.extra_params)
        return params

    def _fit(self, x: np.ndarray, y: np.ndarray) -> None:
        import lightgbm as lgb

        params = self.lightgbm_params(x.shape[0])
        callbacks = []
        valid_sets = []
        if self.early_stopping_rounds:
            rng = np.random.default_rng(self.seed)
            order = rng.permutation(x.shape[0])
            num_valid = max(1, int(round(self.validation_fraction * x.shape[0])))
            valid_idx, train_idx = np.sort(order[:num_valid]), np.sort(order[num_valid:])
            train_set = lgb.Dataset(x[train_idx], y[train_idx], free_raw_data=False)
            valid_sets = [lgb.Dataset(x[valid_idx], y[valid_idx], reference=train_set)]
            callbacks.append(lgb.early_stopping(int(self.early_stopping_rounds), verbose=False))
            params.setdefault("metric", "l2")
        else:
            train_set = lgb.Dataset(x, y, free_raw_data=False)
        booster = lgb.train(params, train_set, num_boost_round=self.num_rounds, valid_sets=valid_sets or None,
                            callbacks=callbacks)
        if self.early_stopping_rounds and booster.best_iteration:
            # Keep exactly the trees up to the best iteration, so save/load and fast prediction agree.
            booster = lgb.Booster(model_str=booster.model_to_string(num_iteration=booster.best_iteration))
        self.best_iteration = int(booster.current_iteration())
        self.booster = booster

    def predict(self, weights: np.ndarray) -> np.ndarray:
        if self.booster is None:
            raise RegmixError("LightGBM regressor is not fitted: call fit() or load()")
        x = _as_features(weights, self.domains, "lightgbm predict")
        return np.asarray(self.booster.predict(x), dtype=np.float64)

    def feature_importance(self, importance_type: str = "gain") -> np.ndarray:
        if self.booster is None:
            raise RegmixError("LightGBM regressor is not fitted")
        return np.asarray(self.booster.feature_importance(importance_type=importance_type), dtype=np.float64)

    def save(self, path: str | Path) -> Path:
        import hashlib

        if self.booster is None:
            raise RegmixError("LightGBM regressor is not fitted: nothing to save")
        path = Path(path)
        text = self.booster.model_to_string()
        meta = self._meta()
        meta.update({
            "model_file": path.name,
            "model_sha256": hashlib.sha256(text.encode()).hexdigest(),
            "num_rounds": self.num_rounds,
            "num_trees": int(self.booster.num_trees()),
            "learning_rate": self.learning_rate,
            "seed": self.seed,
            "early_stopping_rounds": self.early_stopping_rounds,
            "validation_fraction": self.validation_fraction,
            "params": self.lightgbm_params(self.num_train_runs),
        })
        # Model first, sidecar last: a model without its sidecar is refused on load, never half-trusted.
        atomic_write_text(path, text)
        atomic_write_json(sidecar_path(path), meta)
        return path

    @classmethod
    def _from_files(cls, path: Path, meta: Mapping) -> "LightGBMRegressor":
        import hashlib

        import lightgbm as lgb

        text = path.read_text(encoding="utf-8")
        digest = hashlib.sha256(text.encode()).hexdigest()
        if meta.get("model_sha256") and meta["model_sha256"] != digest:
            raise DataError(f"{path}: model text does not match the checksum in {sidecar_path(path)} "
                            "(edited or from another fit?); refit or restore the pair")
        try:
            reg = cls(meta["domains"], meta["target"], num_rounds=int(meta.get("num_rounds", PAPER_NUM_ROUNDS)),
                      learning_rate=float(meta.get("learning_rate", 0.01)), seed=int(meta.get("seed", 0)))
            reg.num_train_runs = int(meta.get("num_train_runs", 0))
            reg._read_definition(meta)
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(f"{sidecar_path(path)}: malformed sidecar ({type(exc).__name__}: {exc})") from None
        try:
            reg.booster = lgb.Booster(model_str=text)
        except lgb.basic.LightGBMError as exc:
            raise DataError(f"{path}: not a LightGBM text model ({exc})") from None
        if reg.booster.num_feature() != len(reg.domains):
            raise DataError(f"{path}: model has {reg.booster.num_feature()} features but its sidecar lists "
                            f"{len(reg.domains)} domains; the pair is inconsistent, refit")
        reg.best_iteration = int(reg.booster.current_iteration())
        reg.path = str(path)
        return reg


class EnsembleRegressor(Regressor):
    """A weighted mean of regressors of other kinds, chosen by cross-validation, with an uncertainty.

    Fitting (:mod:`regmix_megatron.regression.ensemble` has the statistics): a K-fold cross-validation over
    whole mixture groups (repeats of a mixture stay together) gives every kind of :data:`MEMBER_KINDS` out-of-fold
    predictions; the combination with the best out-of-fold Spearman (an equal mean of a subset of the kinds, or
    their cross-fitted convex stack) is kept; its members are fit on all runs (they give the prediction), then
    refit ``num_bootstrap`` times on group-bootstrap resamples (they give ``sd_bootstrap``). The choice looks at
    the training runs only, so cross-validating the ensemble itself (``fit --num-folds``) is nested CV: each outer
    fold's ensemble chooses again on that fold's training runs, and its held-out Spearman is not optimistic.

    ``member_options`` go to the LightGBM members' constructor (as ``fit``'s LightGBM flags do).
    """

    kind = "ensemble"

    def __init__(self, domains: Sequence[str], target: str = "target", *,
                 num_bootstrap: int = DEFAULT_NUM_BOOTSTRAP, num_folds: int = DEFAULT_NUM_FOLDS, seed: int = 0,
                 member_options: Mapping[str, Any] | None = None) -> None:
        super().__init__(domains, target)
        if not isinstance(num_bootstrap, int) or num_bootstrap < 0:
            raise RegmixError(f"num_bootstrap={num_bootstrap!r}: use an integer >= 0 (2 or more give an sd)")
        if not isinstance(num_folds, int) or num_folds < 2:
            raise RegmixError(f"num_folds={num_folds!r}: the ensemble's members are chosen by CV, use 2 or more")
        self.num_bootstrap = num_bootstrap
        self.num_folds = num_folds
        self.seed = int(seed)
        self.member_options = dict(member_options or {})
        self.combination: Combination | None = None
        self.selection: Selection | None = None
        self.members: dict[str, Regressor] = {}
        """Member kind -> the member fit on all runs."""
        self.bootstrap: list[dict[str, Regressor]] = []
        """One dict per bootstrap refit: member kind -> the member fit on that resample."""
        self.path = ""

    def _member(self, kind: str) -> Regressor:
        return make_regressor(kind, self.domains, self.target, self.definition, **self.member_options)

    def _fit(self, x: np.ndarray, y: np.ndarray) -> None:
        groups = mixture_groups(x)
        num_groups = int(groups.max()) + 1
        if num_groups < 2:
            raise DataError(f"the ensemble's cross-validation needs at least 2 distinct mixtures, got {num_groups}: "
                            "run more proxies")
        folds = kfold_indices(len(groups), min(self.num_folds, num_groups), self.seed, groups)
        oof: dict[str, np.ndarray] = {}
        for kind in MEMBER_KINDS:
            oof[kind] = np.empty_like(y)
            for held in folds:
                keep = np.setdiff1d(np.arange(y.size), held)
                oof[kind][held] = self._member(kind).fit(x[keep], y[keep]).predict(x[held])
        candidates = candidate_combinations(oof, y, folds)
        self.combination = choose_combination(candidates)
        self.selection = Selection(len(folds), self.seed, candidates, self.combination)
        self.members = {k: self._member(k).fit(x, y) for k in self.combination.weights}
        rng = np.random.default_rng(self.seed)
        self.bootstrap = []
        for _ in range(self.num_bootstrap):
            rows = group_bootstrap(groups, rng)
            self.bootstrap.append({k: self._member(k).fit(x[rows], y[rows]) for k in self.combination.weights})

    def _check_fitted(self, what: str) -> Combination:
        if self.combination is None or not self.members:
            raise RegmixError(f"ensemble regressor is not fitted: {what}")
        return self.combination

    def predict(self, weights: np.ndarray) -> np.ndarray:
        combination = self._check_fitted("call fit() or load()")
        x = _as_features(weights, self.domains, "ensemble predict")
        return combination.combine({k: m.predict(x) for k, m in self.members.items()})

    @property
    def gives_uncertainty(self) -> bool:
        return len(self.members) >= 2 or len(self.bootstrap) >= 2

    def predict_with_sd(self, weights: np.ndarray) -> Prediction:
        combination = self._check_fitted("call fit() or load()")
        x = _as_features(weights, self.domains, "ensemble predict")
        members = {k: m.predict(x) for k, m in self.members.items()}
        boot = [{k: m.predict(x) for k, m in refit.items()} for refit in self.bootstrap]
        parts = spread(combination, members, boot)
        return Prediction(combination.combine(members), parts.sd, parts.sd_members, parts.sd_bootstrap)

    def feature_importance(self) -> np.ndarray:
        combination = self._check_fitted("no importances")
        total = np.zeros(len(self.domains))
        for kind, w in combination.weights.items():
            imp = self.members[kind].feature_importance()
            total += w * (imp / imp.sum() if imp.sum() > 0 else imp)
        return total

    def describe(self) -> dict:
        """The combination, the members' files' kinds, the CV that chose it (for ``metrics.json``)."""
        combination = self._check_fitted("nothing to describe")
        return {"combination": combination.to_json(), "num_bootstrap": len(self.bootstrap),
                "selection": self.selection.to_json() if self.selection is not None else None,
                "uncertainty": "sd = sqrt(sd_members^2 + sd_bootstrap^2)"}

    def save(self, path: str | Path) -> Path:
        combination = self._check_fitted("nothing to save")
        path = Path(path)
        folder = path.with_name(path.stem)
        files: dict[str, Any] = {"members": {}, "bootstrap": []}
        digests: dict[str, str] = {}

        def put(model: Regressor, rel: Path) -> str:
            model.save(path.parent / rel)
            digests[str(rel)] = _sha256(path.parent / rel)
            return str(rel)

        for kind, model in self.members.items():
            files["members"][kind] = put(model, folder.relative_to(path.parent) / _file_name(kind))
        for b, refit in enumerate(self.bootstrap):
            sub = folder.relative_to(path.parent) / "bootstrap" / f"{b:03d}"
            files["bootstrap"].append({k: put(m, sub / _file_name(k)) for k, m in refit.items()})
        obj = self._meta()
        obj.update({"combination": combination.to_json(), "num_bootstrap": len(self.bootstrap),
                    "num_folds": self.num_folds, "seed": self.seed,
                    "selection": self.selection.to_json() if self.selection is not None else None,
                    "files": files, "sha256": digests})
        return atomic_write_json(path, obj)  # last: an ensemble file always names complete members

    def _read_coefficients(self, obj: Mapping) -> None:
        self.combination = Combination.from_json(obj["combination"])
        self.num_bootstrap = int(obj["num_bootstrap"])
        self.num_folds = int(obj.get("num_folds", DEFAULT_NUM_FOLDS))
        self.seed = int(obj.get("seed", 0))
        sel = obj.get("selection")
        if sel:
            self.selection = Selection(int(sel["num_folds"]), int(sel["seed"]),
                                       [Combination.from_json(c) for c in sel["candidates"]], self.combination)

    @classmethod
    def _from_obj(cls, obj: Mapping, path: str) -> "EnsembleRegressor":
        reg = super()._from_obj(obj, path)
        try:
            files, digests = obj["files"], obj["sha256"]
            reg.members = {k: reg._load_member(path, files["members"][k], digests) for k in reg.combination.weights}
            reg.bootstrap = [{k: reg._load_member(path, refit[k], digests) for k in reg.combination.weights}
                             for refit in files["bootstrap"]]
        except (KeyError, TypeError) as exc:
            raise DataError(f"{path}: malformed ensemble model ({type(exc).__name__}: {exc}); refit it") from None
        if len(reg.bootstrap) != reg.num_bootstrap:
            raise DataError(f"{path}: lists {len(reg.bootstrap)} bootstrap refits but says {reg.num_bootstrap}; "
                            "refit it")
        return reg

    def _load_member(self, path: str, rel: str, digests: Mapping[str, str]) -> Regressor:
        member_path = Path(path).parent / rel
        if member_path.is_file() and _sha256(member_path) != digests.get(rel):
            raise DataError(f"{path}: member file {member_path} does not match its SHA-256 (edited, or from another "
                            "fit?); refit or restore the fit folder as a whole")
        member = load_regressor(member_path, self.domains, f"ensemble {path}")
        if member.kind == self.kind:
            raise DataError(f"{path}: member {rel} is itself an ensemble; refit it")
        return member


def _file_name(kind: str) -> str:
    """The file a model of ``kind`` is saved as in a fit folder."""
    return f"{kind}.txt" if kind == "lightgbm" else f"{kind}.json"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def sidecar_path(path: str | Path) -> Path:
    path = Path(path)
    return path.with_name(path.name + SIDECAR_SUFFIX)


REGRESSORS = {"lightgbm": LightGBMRegressor, "linear": LinearRegressor, "quadratic": QuadraticRegressor,
              "ensemble": EnsembleRegressor}
#: Regressors saved as one JSON file (their ``kind`` names the class).
JSON_REGRESSORS = {"linear": LinearRegressor, "quadratic": QuadraticRegressor, "ensemble": EnsembleRegressor}


def make_regressor(kind: str, domains: Sequence[str], target: str, definition: Target | None = None, *,
                   num_bootstrap: int = DEFAULT_NUM_BOOTSTRAP, **options: Any) -> Regressor:
    """``kind`` in :data:`REGRESSORS`; ``options`` go to the LightGBM constructor (of a LightGBM model, or of an
    ensemble's LightGBM members, whose seed is also the ensemble's; ignored by the others); ``num_bootstrap`` is an
    ensemble's number of bootstrap refits."""
    if kind not in REGRESSORS:
        raise RegmixError(f"unknown regressor {kind!r}; choose from {sorted(REGRESSORS)}")
    if kind == "lightgbm":
        reg: Regressor = LightGBMRegressor(domains, target, **options)
    elif kind == EnsembleRegressor.kind:
        reg = EnsembleRegressor(domains, target, num_bootstrap=num_bootstrap, seed=int(options.get("seed", 0)),
                                member_options=options)
    else:
        reg = JSON_REGRESSORS[kind](domains, target)
    reg.definition = definition
    return reg


def load_regressor(path: str | Path, domains: Sequence[str] | None = None, source: str = "the data") -> Regressor:
    """Load a saved regressor (linear, quadratic or ensemble JSON, or LightGBM text + sidecar); check ``domains``
    when given."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"model file {path}: not found")
    if path.name.endswith(SIDECAR_SUFFIX):
        path = path.with_name(path.name[: -len(SIDECAR_SUFFIX)])
    side = sidecar_path(path)
    if side.exists():
        meta = read_json(side)
        if not isinstance(meta, dict) or meta.get("format") != FORMAT or meta.get("kind") != "lightgbm":
            raise DataError(f"{side}: not a regmix-megatron LightGBM sidecar (format {FORMAT})")
        reg: Regressor = LightGBMRegressor._from_files(path, meta)
    else:
        head = path.read_text(encoding="utf-8", errors="replace")[:200].lstrip()
        if head.startswith("{"):
            obj = read_json(path)
            if not isinstance(obj, dict) or obj.get("format") != FORMAT:
                raise DataError(f"{path}: not a regmix-megatron model file (expected \"format\": \"{FORMAT}\")")
            if obj.get("kind") not in JSON_REGRESSORS:
                raise DataError(f"{path}: unknown model kind {obj.get('kind')!r}")
            reg = JSON_REGRESSORS[obj["kind"]]._from_obj(obj, str(path))
        elif head.startswith("tree"):
            raise DataError(f"{path}: LightGBM model without its sidecar {side.name} (domain list and target); "
                            "keep the two files together or refit with `regmix-megatron fit`")
        else:
            raise DataError(f"{path}: not a model file written by `regmix-megatron fit`")
    if domains is not None:
        reg.check_domains(domains, source)
    return reg

"""Regression metrics: Spearman rank correlation (the headline), Pearson r, mean squared error.

Judge a regressor by rank correlation on held-out mixtures: search only needs the ranking to be right.
Plain numpy; ties get average ranks (as scipy.stats.spearmanr). A constant input gives NaN correlations.
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import DataError


def _pair(y_true, y_pred) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(y_true, dtype=np.float64).ravel()
    b = np.asarray(y_pred, dtype=np.float64).ravel()
    if a.shape != b.shape:
        raise DataError(f"metrics: {a.size} true values but {b.size} predictions")
    if a.size < 2:
        raise DataError(f"metrics: need at least 2 runs to correlate, got {a.size}")
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        raise DataError("metrics: NaN/inf among the values; filter failed runs first")
    return a, b


def rank_average(x: np.ndarray) -> np.ndarray:
    """Ranks 1..n with ties given their average rank."""
    x = np.asarray(x, dtype=np.float64)
    order = np.argsort(x, kind="mergesort")
    sorted_x = x[order]
    ranks = np.empty(x.size, dtype=np.float64)
    # Boundaries of runs of equal values.
    boundaries = np.flatnonzero(np.diff(sorted_x) != 0) + 1
    starts = np.concatenate(([0], boundaries))
    ends = np.concatenate((boundaries, [x.size]))
    avg = (starts + ends + 1) / 2.0  # average of 1-based ranks start+1..end
    ranks[order] = np.repeat(avg, ends - starts)
    return ranks


def pearson(y_true, y_pred) -> float:
    a, b = _pair(y_true, y_pred)
    a = a - a.mean()
    b = b - b.mean()
    denom = math.sqrt(float(a @ a) * float(b @ b))
    if denom == 0.0:
        return float("nan")
    return float(np.clip((a @ b) / denom, -1.0, 1.0))


def spearman(y_true, y_pred) -> float:
    a, b = _pair(y_true, y_pred)
    return pearson(rank_average(a), rank_average(b))


def mse(y_true, y_pred) -> float:
    a, b = _pair(y_true, y_pred)
    return float(np.mean((a - b) ** 2))


def evaluate(y_true, y_pred) -> dict[str, float]:
    """``{"spearman", "pearson", "mse", "num_runs"}``."""
    a, b = _pair(y_true, y_pred)
    return {"spearman": spearman(a, b), "pearson": pearson(a, b), "mse": mse(a, b), "num_runs": int(a.size)}

"""How many of the best candidates a search averages: a running top-k over a stream of chunks, and ``top_k: auto``.

``top_k`` is a number, or ``auto`` (:func:`choose_top_k`): the running top keeps the best
``max(TOP_K_GRID)`` candidates; the average of the best k is predicted, with its sd, for every k of
:data:`TOP_K_GRID`, and the result is the largest k whose average is predicted within 1 sd of the best-predicted
average (the one-standard-error rule of model selection: the most averaged choice the model cannot tell from the
best). Why: the very best candidates of a large pool are where the model's errors are most likely to be low by
chance (the minimum of many noisy predictions is biased low), so among choices the model cannot separate, the
average of more candidates is the robust one (what the paper's fixed 100 does by hand); a model that is sure of
its best keeps k small. It needs a regressor that gives an uncertainty (the ensemble). A first rule, the k
minimizing predicted + 1 sd, was dropped: on the published 1M data the sd hardly moved with k (0.010-0.019, at
the noise of 10 refits), so it reduced to "the lowest prediction" (k=5), trusting exactly that bias.

Pure core: numpy.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Sequence

import numpy as np

from ..errors import RegmixError
from ..mixtures.mixture import normalize_exact

if TYPE_CHECKING:
    from ..regression.models import Prediction

#: ``top_k`` value: choose k by the model's uncertainty (:func:`choose_top_k`).
TOP_K_AUTO = "auto"
#: The k that ``top_k: auto`` tries (those up to the pool size).
TOP_K_GRID = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000)
#: ``top_k: auto`` keeps the largest k whose average is predicted within this many sd of the best average.
TOP_K_NUM_SD = 1.0


@dataclass(frozen=True)
class TopKChoice:
    """How many of the best candidates were averaged, and why."""

    k: int
    rule: str
    """``fixed`` (a number was given) or ``auto`` (:func:`choose_top_k`)."""
    reason: str
    tried: tuple[dict, ...] = ()
    """``auto``: per k tried, the average's ``predicted_loss``, ``predicted_sd`` and whether it is ``within`` 1 sd
    of the best average's prediction."""

    def to_json(self) -> dict:
        return {"k": self.k, "rule": self.rule, "reason": self.reason, "tried": [dict(t) for t in self.tried]}


class TopK:
    """Running top-k of (score, row) over a stream of chunks, ties broken by stream position.

    The result depends only on the stream, never on how it is cut into chunks.
    """

    def __init__(self, k: int, num_columns: int, maximize: bool = False) -> None:
        self.k = int(k)
        self.maximize = bool(maximize)
        self.scores = np.empty(0, dtype=np.float64)
        self.positions = np.empty(0, dtype=np.int64)
        self.rows = np.empty((0, num_columns), dtype=np.float64)
        self.num_seen = 0

    def update(self, scores: np.ndarray, rows: np.ndarray) -> None:
        scores = np.asarray(scores, dtype=np.float64)
        if scores.shape[0] != rows.shape[0]:
            raise RegmixError(f"top-k: {scores.shape[0]} scores for {rows.shape[0]} rows")
        if np.any(np.isnan(scores)):
            raise RegmixError("top-k: the model predicted NaN for some candidates")
        positions = np.arange(self.num_seen, self.num_seen + scores.shape[0], dtype=np.int64)
        self.num_seen += scores.shape[0]
        key = -scores if self.maximize else scores
        if scores.shape[0] > self.k:
            # Preselect (cheap), keeping every row tied with the k-th key so ties resolve by position.
            kth = np.partition(key, self.k - 1)[self.k - 1]
            keep = key <= kth
            scores, rows, positions, key = scores[keep], rows[keep], positions[keep], key[keep]
        all_key = np.concatenate((-self.scores if self.maximize else self.scores, key))
        all_pos = np.concatenate((self.positions, positions))
        order = np.lexsort((all_pos, all_key))[: self.k]
        self.scores = np.concatenate((self.scores, scores))[order]
        self.positions = all_pos[order]
        self.rows = np.concatenate((self.rows, rows))[order]


def choose_top_k(top_rows: np.ndarray, estimate: Callable[[np.ndarray], "Prediction"], grid: Sequence[int],
                 maximize: bool = False, num_sd: float = TOP_K_NUM_SD) -> TopKChoice:
    """The one-standard-error rule over k: of the averages of the best k rows (``top_rows`` sorted best first) for
    each k of ``grid``, find the best predicted one; the result is the largest k whose average's prediction is
    within ``num_sd`` of that one's sd of it. Refuses predictions without an uncertainty."""
    grid = [int(k) for k in grid if k <= top_rows.shape[0]]
    if not grid:
        raise RegmixError(f"top_k {TOP_K_AUTO!r}: no k to try among {list(TOP_K_GRID)} with "
                          f"{top_rows.shape[0]} candidates")
    averages = np.stack([normalize_exact(top_rows[:k].mean(axis=0)) for k in grid])
    pred = estimate(averages)
    if pred.sd is None:
        raise RegmixError(f"top_k {TOP_K_AUTO!r} chooses k by the model's uncertainty, and this regressor gives "
                          "none: use the ensemble (search.regressor: ensemble, --regressor ensemble) or a fixed "
                          "top_k such as 100")
    sign = -1.0 if maximize else 1.0
    best = int(np.argmin(sign * pred.mean))
    limit = pred.mean[best] + sign * num_sd * pred.sd[best]
    within = sign * pred.mean <= sign * limit
    chosen = max(i for i in range(len(grid)) if within[i])
    tried = tuple({"k": k, "predicted_loss": float(m), "predicted_sd": float(sd), "within": bool(w)}
                  for k, m, sd, w in zip(grid, pred.mean, pred.sd, within))
    side = "+" if sign > 0 else "-"
    reason = (f"the largest k whose average's prediction is within {num_sd:g} sd of the best average's "
              f"(k={grid[best]}: {pred.mean[best]:.4f} {side} {num_sd:g} x {pred.sd[best]:.4f} = {limit:.4f}); "
              f"k={grid[chosen]} predicts {pred.mean[chosen]:.4f}, among k in {grid}")
    return TopKChoice(grid[chosen], TOP_K_AUTO, reason, tried)


__all__ = ["TOP_K_AUTO", "TOP_K_GRID", "TOP_K_NUM_SD", "TopKChoice", "TopK", "choose_top_k"]

"""Evaluation of the pipeline's outcome (pure: numpy + the regression metrics).

1. Target comparison: the validation loss on the chosen target of the target-scale runs, RegMix next to each
   baseline (natural, uniform, target-only; with schedules also ``regmix_static``, the best static mixture under
   the same model), with the regressor's predictions beside them.
2. Rank invariance: mixtures trained at both scales (RegMix, the baselines, and a few sweep mixtures), ranked by
   their proxy-scale and their target-scale target loss; the Spearman correlation of the two rankings.
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence

import numpy as np

from ..errors import DataError
from ..regression.metrics import pearson, spearman
from ..target import Target

FORMAT = "regmix-megatron/evaluation/v1"


def target_loss(result: Mapping, target: Target) -> float:
    """A run's loss on the target, from its ``result.json`` (:meth:`Target.value` of its ``val_loss``)."""
    return target.value(result.get("val_loss") or {}, where=f"run {result.get('run_id')}")


def evaluate(target: Target | str, target_results: Mapping[str, Mapping], proxy_results: Mapping[str, Mapping],
             predicted: Mapping[str, float] | None = None) -> dict:
    """The evaluation document.

    ``target_results``/``proxy_results`` map a mixture label (``regmix``, ``natural``, ..., ``sweep:<run_id>``)
    to a training ``result.json`` at target / proxy scale; ``predicted`` maps labels to the regressor's
    predicted target loss (proxy scale).
    """
    target = Target.parse(target)
    predicted = dict(predicted or {})
    if "regmix" not in target_results:
        raise DataError("evaluation needs the RegMix mixture's target run (label 'regmix')")
    rows = []
    for label, res in target_results.items():
        rows.append({
            "label": label,
            "run_id": res.get("run_id"),
            "target_loss": target_loss(res, target),
            "val_loss": {k: float(v) for k, v in (res.get("val_loss") or {}).items()},
            "proxy_loss": target_loss(proxy_results[label], target) if label in proxy_results else None,
            "predicted_loss": predicted.get(label),
            "mixture": res.get("mixture"),
        })
    rows.sort(key=lambda r: r["target_loss"])
    regmix = next(r for r in rows if r["label"] == "regmix")
    baselines = [r for r in rows if r["label"] != "regmix" and not r["label"].startswith("sweep:")]
    comparison = {
        "regmix_target_loss": regmix["target_loss"],
        "baselines": {r["label"]: {"target_loss": r["target_loss"],
                                   "regmix_minus_baseline": regmix["target_loss"] - r["target_loss"]}
                      for r in baselines},
        "regmix_beats": sorted(r["label"] for r in baselines if regmix["target_loss"] < r["target_loss"]),
        "regmix_rank": 1 + [r["label"] for r in rows].index("regmix"),
        "num_target_runs": len(rows),
    }
    both = [r for r in rows if r["proxy_loss"] is not None]
    rank = {"num_mixtures": len(both), "spearman": None, "pearson": None,
            "mixtures": [{"label": r["label"], "proxy_loss": r["proxy_loss"], "target_loss": r["target_loss"]}
                         for r in both]}
    if len(both) >= 3:
        x = np.array([r["proxy_loss"] for r in both])
        y = np.array([r["target_loss"] for r in both])
        rank["spearman"] = _finite_or_none(spearman(x, y))
        rank["pearson"] = _finite_or_none(pearson(x, y))
    return {
        "format": FORMAT,
        "target": target.to_json(),
        "runs": rows,
        "comparison": comparison,
        "rank_invariance": rank,
    }


def _finite_or_none(x: float) -> float | None:
    return float(x) if x is not None and math.isfinite(x) else None


def spread_indices(values: Sequence[float], num: int) -> list[int]:
    """Indices of ``num`` entries spread evenly over the sorted ``values`` (best, worst and between), so the
    rank-invariance set covers the sweep's loss range. Deterministic; ties broken by index."""
    values = np.asarray(values, dtype=np.float64)
    if num <= 0 or values.size == 0:
        return []
    order = np.argsort(values, kind="stable")
    if num >= values.size:
        return [int(i) for i in order]
    picks = np.unique(np.round(np.linspace(0, values.size - 1, num)).astype(int))
    return [int(order[p]) for p in picks]

"""Evaluation of the pipeline's outcome (pure: numpy, the regression metrics and the verdict logic).

1. Target comparison, on the **test** split: each compared mixture's target loss per seed at target scale
   (RegMix, natural and uniform with every seed, paired: the same seeds for each; the other baselines once),
   its mean and sd (with schedules also ``regmix_static``, the best static mixture under the same model, as
   a baseline), and a verdict per baseline from :mod:`regmix_megatron.verdict` ("better by 0.41 (3.4 sd)",
   "within noise"), the sd being the pooled seed sd of the mixtures trained with several seeds. The mixture was
   chosen on the validation split, so the numbers that judge it were never used to choose it.
2. Rank invariance, on the **validation** split (the split the method ranks mixtures on): mixtures trained at
   both scales, ranked by their proxy-scale and their target-scale target loss (mean over seeds); the Spearman
   correlation, a stated pass/fail threshold, and the level chance reaches for as many mixtures.
3. The fit: which regressor drove the search and why, its cross-validated Spearman with the per-fold spread, next
   to the ceiling the proxy seed noise allows (from the fit stage).
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence

import numpy as np

from ..errors import DataError
from ..noise import spearman_critical_value
from ..regression.metrics import pearson, spearman
from ..target import Target
from ..verdict import DEFAULT_THRESHOLD_SD, aim_met, compare, pooled_seed_sd, seed_stats
from ..verdict import verdict_lines  # noqa: F401 (the stage summary's wording)

FORMAT = "regmix-megatron/evaluation/v2"
#: The split the target-scale comparison is reported on, and the one every choice was made on.
REPORT_SPLIT, SELECTION_SPLIT = "test", "valid"
#: Baselines RegMix must beat beyond noise for the demo's aim (when they were trained).
MUST_BEAT = ("natural", "uniform")
NOISE_UNIT = ("pooled seed sd: sqrt(sum((n_i - 1) s_i^2) / sum(n_i - 1)) over the mixtures trained with two or "
              "more seeds; how far one mixture's test loss moves when only the seed changes (one yardstick for "
              "every baseline, including those trained once)")


def split_losses(result: Mapping, split: str) -> Mapping[str, float]:
    """A run's per-domain losses on ``split``: ``val_loss`` (valid) or ``split_loss[split]``."""
    if split == SELECTION_SPLIT:
        return result.get("val_loss") or {}
    losses = (result.get("split_loss") or {}).get(split)
    if losses is None:
        raise DataError(f"run {result.get('run_id')}: no {split} losses in its result.json (eval.final_splits must "
                        f"include {split!r})")
    return losses


def target_loss(result: Mapping, target: Target, split: str = SELECTION_SPLIT) -> float:
    """A run's loss on the target (:meth:`Target.value` of its per-domain ``split`` losses)."""
    return target.value(split_losses(result, split), where=f"run {result.get('run_id')}")


def mixture_entry(label: str, run: Mapping, target: Target, predicted: Mapping[str, float],
                  predicted_sd: Mapping[str, float | None] | None = None) -> dict:
    """One compared mixture: its weights, per-seed test (``target_losses``) and validation target losses at
    target scale, their mean and sd, its proxy-scale validation target loss and predicted loss with its sd (None
    where the search did not predict it, or its regressor gives no uncertainty)."""
    per_seed = {str(seed): rec["result"] for seed, rec in sorted(run["target"].items(), key=lambda kv: int(kv[0]))}
    test = {seed: target_loss(res, target, REPORT_SPLIT) for seed, res in per_seed.items()}
    valid = {seed: target_loss(res, target, SELECTION_SPLIT) for seed, res in per_seed.items()}
    stats = seed_stats(test)
    first = next(iter(per_seed.values()))
    proxy = (run.get("proxy") or {}).get("result")
    return {"label": label, "mixture": dict(run["mixture"]), "mixture_hash": run.get("mixture_hash"),
            "run_ids": {seed: res.get("run_id") for seed, res in per_seed.items()},
            "target_losses": test, "mean": stats.mean, "sd": stats.sd, "num_seeds": stats.num_seeds,
            "valid_losses": valid, "valid_mean": seed_stats(valid).mean,
            "test_loss_by_domain": {k: float(v) for k, v in split_losses(first, REPORT_SPLIT).items()},
            "proxy_loss": target_loss(proxy, target) if proxy else None,
            "predicted_loss": predicted.get(label), "predicted_sd": (predicted_sd or {}).get(label)}


def evaluate(target: Target | str, runs: Mapping[str, Mapping], *, predicted: Mapping[str, float] | None = None,
             predicted_sd: Mapping[str, float | None] | None = None, fit: Mapping | None = None,
             rank_threshold: float = 0.6,
             threshold_sd: float = DEFAULT_THRESHOLD_SD) -> dict:
    """The evaluation document from the target stage's ``runs.json`` ``runs`` (label -> ``{"mixture", "proxy":
    {"result"}, "target": {seed: {"result"}}}``; labels ``regmix``, baselines, ``sweep:<run id>``)."""
    target = Target.parse(target)
    if "regmix" not in runs:
        raise DataError("evaluation needs the RegMix mixture's target runs (label 'regmix')")
    mixtures = {lab: mixture_entry(lab, run, target, dict(predicted or {}), predicted_sd) for lab, run in runs.items()}
    sd, dof = pooled_seed_sd([list(m["target_losses"].values()) for m in mixtures.values()])
    regmix = mixtures["regmix"]["target_losses"]
    baselines = [lab for lab in mixtures if lab != "regmix" and not lab.startswith("sweep:")]
    comparisons = {b: compare(b, regmix, mixtures[b]["target_losses"], sd, threshold_sd=threshold_sd)
                   for b in baselines}
    must_beat = [b for b in MUST_BEAT if b in comparisons]
    ranked = sorted(mixtures, key=lambda lab: mixtures[lab]["mean"])
    return {
        "format": FORMAT,
        "target": target.to_json(),
        "split": REPORT_SPLIT,
        "selection_split": SELECTION_SPLIT,
        "noise": {"unit": NOISE_UNIT, "sd": sd, "dof": dof, "threshold_sd": threshold_sd},
        "mixtures": mixtures,
        "comparison": {
            "regmix_mean": mixtures["regmix"]["mean"],
            "baselines": {b: c.to_json() for b, c in comparisons.items()},
            "must_beat": must_beat,
            "aim_met": aim_met(comparisons, must_beat) if must_beat else False,
            "regmix_rank": 1 + ranked.index("regmix"),
            "num_mixtures": len(mixtures),
        },
        "rank_invariance": rank_invariance(mixtures, rank_threshold),
        "fit": dict(fit or {}),
    }


def rank_invariance(mixtures: Mapping[str, Mapping], threshold: float) -> dict:
    """Spearman of proxy- vs target-scale validation target losses over the mixtures trained at both scales."""
    both = [m for m in mixtures.values() if m["proxy_loss"] is not None]
    rows = [{"label": m["label"], "proxy_loss": m["proxy_loss"], "target_loss": m["valid_mean"]} for m in both]
    rho = None
    pear = None
    if len(rows) >= 3:
        x = np.array([r["proxy_loss"] for r in rows])
        y = np.array([r["target_loss"] for r in rows])
        rho, pear = _finite_or_none(spearman(x, y)), _finite_or_none(pearson(x, y))
    return {"split": SELECTION_SPLIT, "num_mixtures": len(rows), "spearman": rho, "pearson": pear,
            "threshold": threshold, "passed": rho is not None and rho >= threshold,
            "chance_level": spearman_critical_value(len(rows)), "mixtures": rows}


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

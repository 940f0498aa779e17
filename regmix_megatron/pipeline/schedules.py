"""The pipeline's stages for RegMix over schedules (``schedule: {phases: [...]}`` in the config).

Only the stages whose work differs live here; :mod:`.stages` calls them when the config has phases:

- search: the best schedule and the best static mixture under the same model
  (:func:`regmix_megatron.search.outputs.schedule_search_and_write`).
- targets: the labelled runs are the schedule (``regmix``), the best static mixture (``regmix_static``), the
  baselines and a few sweep schedules, all through the same sweep machinery (:func:`trained_by_label`).

Fit and evaluate are unchanged: the results table's weight columns are the schedule features.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..hashing import content_hash
from .framework import StageContext, StageOutput


def read_trained(path: str | Path) -> list:
    """The sample stage's output: schedules, or mixtures."""
    from ..mixtures.mixture import read_mixtures
    from ..mixtures.schedule import is_schedules_file, read_schedules

    return read_schedules(path) if is_schedules_file(path) else read_mixtures(path)


def run_search_schedules(ctx: StageContext, model: Any, registry: Any, scfg: Any, search_cfg: Any,
                         regressor: str) -> StageOutput:
    from ..mixtures.mixture import Mixture
    from ..search.outputs import schedule_search_and_write

    cfg = ctx.config
    out_dir = ctx.out / "search"
    names = list(registry.names)
    doc = schedule_search_and_write(
        model, registry.tokens_per_domain("train"), names, scfg, cfg.schedule_fractions, search_cfg, out_dir,
        registry=registry, prior=Mixture.from_array(names, registry.prior("train")), export_dir="export",
        target=cfg.parsed_target,
        progress=lambda done, total: ctx.progress.update(done / total, f"{done:,}/{total:,} candidates"))
    predicted = {"regmix": doc["result"]["predicted_loss"],
                 **{k: v["predicted_loss"] for k, v in doc["baselines"].items()}}
    predicted_sd = {"regmix": doc["result"]["predicted_sd"],
                    **{k: v["predicted_sd"] for k, v in doc["baselines"].items()}}
    files = {"search": str(out_dir / "search.json"), "top_k": doc["files"]["top_k"],
             "schedule": doc["files"]["schedule"], "mixture": doc["files"]["mixture"], **doc["files"]["export"]}
    stable = {k: v for k, v in doc.items() if k not in ("seconds", "files", "model")}
    phases = doc["schedule"]["phases"]
    best = [", ".join(f"{d} {w:.2f}" for d, w in sorted(p["weights"].items(), key=lambda kv: -kv[1])[:2])
            for p in phases]
    return StageOutput(files=files, values={"predicted": predicted, "predicted_sd": predicted_sd,
                                            "weights": doc["static"]["weights"],
                                            "schedule": doc["schedule"]["phases"], "regressor": regressor},
                       fingerprint=content_hash(stable, length=None),
                       summary=f"{regressor}: predicted {doc['result']['predicted_loss']:.4f} "
                               f"(static {doc['static']['predicted_loss']:.4f}); "
                               + " | ".join(f"phase {k + 1}: {b}" for k, b in enumerate(best)))


def trained_by_label(ctx: StageContext, baselines: dict, run_ids: list[str]) -> dict:
    """The target stage's labelled runs in schedule mode: ``regmix`` (the schedule), ``regmix_static``, the
    baselines (static mixtures) and the sweep's schedules of ``run_ids`` (``sweep:<run id>``, as planned)."""
    from ..mixtures.mixture import Mixture
    from ..mixtures.schedule import load_schedule
    from ..runs.sweep.plan import Sweep

    labeled: dict[str, Any] = {"regmix": load_schedule(ctx.path("search", "schedule")),
                               "regmix_static": Mixture.load(ctx.path("search", "mixture")), **baselines}
    sweep = Sweep.load(ctx.path("sweep", "sweep_dir"))
    for rid in run_ids:
        labeled[f"sweep:{rid}"] = sweep.get(rid).trained
    return labeled


__all__ = ["read_trained", "run_search_schedules", "trained_by_label"]

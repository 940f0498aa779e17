"""The pipeline's stages for RegMix over schedules (``schedule: {phases: [...]}`` in the config).

Only the stages whose work differs live here; :mod:`.stages` calls them when the config has phases:

- targets: the labelled runs are the schedule (``regmix``), the best static mixture (``regmix_static``), the
  baselines and a few sweep schedules, all through the same sweep machinery (:func:`trained_by_label`).

Fit and evaluate are unchanged: the results table's weight columns are the schedule features.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .framework import StageContext


def read_trained(path: str | Path) -> list:
    """The sample stage's output: schedules, or mixtures."""
    from ..mixtures.mixture import read_mixtures
    from ..mixtures.schedule import is_schedules_file, read_schedules

    return read_schedules(path) if is_schedules_file(path) else read_mixtures(path)


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


__all__ = ["read_trained", "trained_by_label"]

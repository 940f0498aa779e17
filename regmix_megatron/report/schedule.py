"""Report sections of scheduled runs: per-domain validation curves with the phase boundaries marked, and the
requested-vs-realized table of every phase.

Reads run directories (``metrics.jsonl``: the validation losses at each evaluation; ``result.json``: the schedule
and its ``phases`` table, written by the trainer). Pure: matplotlib and pandas through :mod:`.figures`/:mod:`.page`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

from ..runs.run_dir import read_metrics, read_result
from . import figures
from .page import Section, figure_section, table_html


def validation_curve(run_dir: str | Path) -> list[tuple[int, dict]]:
    """``[(step, {domain: loss})]`` of a run's evaluations (``metrics.jsonl``)."""
    return [(int(r["step"]), dict(r["val_loss"])) for r in read_metrics(run_dir) if r.get("val_loss")]


def phase_boundaries(phases: Sequence[Mapping] | None) -> list[int]:
    """The steps at which the phases after the first start (``result.json``'s ``phases``)."""
    return [int(p["start_step"]) for p in (phases or [])[1:] if "start_step" in p]


def phase_table_rows(phases: Sequence[Mapping] | None) -> list[dict]:
    """One row per (phase, domain) with a requested or realized weight: requested, realized, samples."""
    rows = []
    for p in phases or []:
        span = f"steps {p['start_step']}..{p['end_step'] - 1}" if "start_step" in p else \
            f"samples {p['start_sample']}..{p['end_sample'] - 1}"
        for d, w in p["requested"].items():
            if w > 0 or p["samples"].get(d, 0) > 0:
                rows.append({"phase": f"{p['phase']} ({span})", "domain": d, "requested": w,
                             "realized": p["realized"][d], "samples": p["samples"][d]})
    return rows


def schedule_sections(runs: Mapping[str, str | Path], *, highlight: str | None = None,
                      title: str = "Schedule: validation curves by phase") -> list[Section]:
    """Sections for labelled run directories (the first a scheduled run): the curves figure (every run's curves,
    the first run's phase boundaries) and the first run's per-phase requested-vs-realized table."""
    if not runs:
        return []
    first = next(iter(runs.values()))
    phases = read_result(first).phases
    curves = {label: validation_curve(d) for label, d in runs.items()}
    domains = sorted({d for points in curves.values() for _, losses in points for d in losses})
    boundaries = phase_boundaries(phases)
    fig = figure_section(title, figures.plot_phase_curves(curves, boundaries, domains, highlight),
                         "Validation loss per domain at each evaluation; dotted lines mark where a phase starts "
                         f"(step {', '.join(map(str, boundaries)) or '-'}). Solid: "
                         f"{figures.short_label(next(iter(runs)))}; dashed: the others.", name="phase_curves")
    body = fig.html
    rows = phase_table_rows(phases)
    if rows:
        body += ("<p>Requested vs realized token fractions per phase of that run (from its scheduled blend index; "
                 "megatron's greedy rounding).</p>" + table_html(rows, "{:.4f}"))
    return [Section(fig.title, body, fig.images)]


def labelled_run_dirs(runs_json: Mapping, labels: Sequence[str], scale: str = "target",
                      root: str | Path | None = None) -> dict[str, str]:
    """``{label: run_dir}`` of a pipeline's ``targets/runs.json`` document, for the labels present; relative
    run directories (the pipeline writes them relative to its output directory) are joined to ``root``."""
    out = {}
    for label in labels:
        run = runs_json.get("runs", {}).get(label) or {}
        record = run.get(scale) or {}
        if record and "run_dir" not in record:  # target scale: one record per seed; the first seed's run
            record = record[min(record, key=int)]
        if record.get("run_dir"):
            out[label] = str(Path(root) / record["run_dir"]) if root is not None else record["run_dir"]
    return out


__all__ = ["validation_curve", "phase_boundaries", "phase_table_rows", "schedule_sections", "labelled_run_dirs"]

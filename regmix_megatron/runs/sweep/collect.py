"""Collect a sweep's results table: one row per completed run, mixture weights and every evaluated domain's loss.

A sweep of schedules has, instead of ``weight/<domain>``, the schedule features ``weight/p<k>/<domain>`` (phase
weight x phase fraction: :meth:`regmix_megatron.mixtures.schedule.Schedule.features`), and its schedule hash as
``mixture_hash``; the loss columns are the same.

The table's columns, writer and reader belong to :mod:`regmix_megatron.runs.results`. A run that is not done, or
whose result lacks a finite loss for some domain, is left out and listed with its reason and log path: the table
never has a hole or a value that was not measured. ``results.csv``, ``results.parquet`` and ``excluded.json``
are written together (:func:`regmix_megatron.fileio.atomic_files`): all three, or on a failure (a full disk)
none of them changes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ...errors import RegmixError
from ...fileio import atomic_files, named_as
from ..results import RESULTS_CSV, RESULTS_PARQUET, make_table, write_table
from ..run_dir import RESULT_FILE, RunResult
from . import state as st
from .plan import Sweep

EXCLUDED_JSON = "excluded.json"


@dataclass(frozen=True)
class ExcludedRun:
    run_id: str
    status: str
    reason: str
    log_path: str | None


@dataclass(frozen=True)
class Collected:
    table: pd.DataFrame
    excluded: tuple[ExcludedRun, ...]
    csv_path: Path | None
    parquet_path: Path | None


def loss_domains(sweep: Sweep) -> tuple[str, ...]:
    """The domains every run of ``sweep`` evaluates (its recipe's ``eval.domains`` and the evaluation-only ones)."""
    from ...data.manifest import DomainRegistry
    from ..run_config import evaluated_domains

    return evaluated_domains(sweep.recipe, DomainRegistry.load(sweep.domains_path))


def build_table(sweep: Sweep, states: dict[str, st.RunState]) -> tuple[pd.DataFrame, list[ExcludedRun]]:
    domains = sweep.domain_names
    evaluated = loss_domains(sweep)
    weight_names = _weight_names(sweep)
    rows, excluded = [], []
    for run in sweep.runs:
        s = states[run.run_id]
        if s.status != st.DONE:
            excluded.append(ExcludedRun(run.run_id, s.status, s.reason or f"run is {s.status}", s.log_path))
            continue
        result = s.result or RunResult()
        problem = _check_result(result, run, evaluated)
        if problem:
            excluded.append(ExcludedRun(run.run_id, "invalid", problem, s.log_path))
            continue
        weights = run.schedule.features(domains)  # a static run's: its mixture's weights
        rows.append({"run_id": run.run_id, "mixture_hash": run.schedule.hash, "seed": run.seed,
                     "weights": dict(zip(weight_names, weights)), "val_loss": result.val_loss})
    return make_table(rows, domains, evaluated, weight_names), excluded


def _weight_names(sweep: Sweep) -> list[str]:
    """The table's weight columns: the schedule feature names (a sweep of mixtures: the domains)."""
    phases = {r.schedule.fractions for r in sweep.runs}
    if not phases:
        return list(sweep.domain_names)
    if len(phases) > 1:
        raise RegmixError(f"{sweep.root}: runs with different phase fractions {sorted(map(str, phases))} (or "
                          "mixtures and schedules mixed) cannot share one results table: sweep them separately")
    from ...mixtures.schedule import feature_names

    return feature_names(sweep.domain_names, len(next(iter(phases))))


def _check_result(result: RunResult, run, domains) -> str:
    """Why a result.json cannot enter the table ('' if it can)."""
    losses = result.val_loss
    if not isinstance(losses, dict):
        return f"{RESULT_FILE} has no val_loss mapping"
    missing = [d for d in domains if d not in losses]
    if missing:
        return f"{RESULT_FILE} has no validation loss for domain(s) {missing}"
    bad = {d: losses[d] for d in domains if not st.is_finite_number(losses[d])}
    if bad:
        return f"{RESULT_FILE} has non-finite validation loss(es) {bad}"
    if not run.schedule.is_static:  # result.json records a schedule of several phases beside its overall mixture
        got = (result.schedule or {}).get("hash")
        return "" if got == run.schedule.hash else f"{RESULT_FILE} is for schedule {got}, but the run planned " \
            f"{run.schedule.hash}"
    trained = result.mixture
    if isinstance(trained, dict):  # compare weights, not hashes (renormalization may change the last bits)
        planned = run.mixture.as_dict()
        if set(trained) != set(planned) or any(abs(float(trained[d]) - planned[d]) > 1e-12 for d in planned):
            return f"{RESULT_FILE} is for mixture {trained}, but the run planned {planned}"
    if result.seed is not None and result.seed != run.seed:
        return f"{RESULT_FILE} has seed {result.seed}, but the run planned seed {run.seed}"
    return ""


def collect(sweep: Sweep, allow_incomplete: bool = False, write: bool = True) -> Collected:
    """Build and (atomically) write the table. Runs still pending or running make this refuse unless
    ``allow_incomplete``; runs that failed for good are excluded and reported."""
    states = st.read_sweep_state(sweep)
    table, excluded = build_table(sweep, states)
    unfinished = [e for e in excluded if e.status in (st.PENDING, st.RUNNING)]
    if unfinished and not allow_incomplete:
        raise RegmixError(
            f"{sweep.root}: {len(unfinished)} of {len(sweep.runs)} runs are not finished (e.g. "
            f"{unfinished[0].run_id}: {unfinished[0].status}); launch the sweep until they are, or pass "
            "--allow-incomplete to collect the completed runs only")
    if table.empty:
        raise RegmixError(f"{sweep.root}: no completed run to collect ({len(excluded)} excluded; see "
                          f"`regmix-megatron sweep status {sweep.root}`)")
    csv_path = parquet_path = None
    if write:
        csv_path = sweep.root / RESULTS_CSV
        parquet_path = sweep.root / RESULTS_PARQUET
        excluded_doc = [{"run_id": e.run_id, "status": e.status, "reason": e.reason, "log": e.log_path}
                        for e in excluded]
        # the three together or none (results.csv, what the next steps read, renamed into place last)
        with atomic_files(sweep.root / EXCLUDED_JSON, parquet_path, csv_path) as (excluded_tmp, parquet_tmp, csv_tmp):
            write_table(table, csv_tmp, parquet_tmp, atomic=False)  # an error names the file that failed
            with named_as(excluded_tmp):
                excluded_tmp.write_text(json.dumps(excluded_doc, indent=2) + "\n", encoding="utf-8")
    return Collected(table=table, excluded=tuple(excluded), csv_path=csv_path, parquet_path=parquet_path)

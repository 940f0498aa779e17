"""The results table of a sweep: completed runs only, failed ones excluded and reported, CSV = parquet."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from regmix_megatron.errors import RegmixError
from regmix_megatron.runs.sweep import state as st
from regmix_megatron.runs.sweep.attempt import SubprocessRunner, execute_run
from regmix_megatron.runs.results import columns as result_columns
from regmix_megatron.runs.sweep.collect import collect

from sweep_fixtures import mechanics_command, planned  # noqa: F401

CLI = [sys.executable, "-m", "regmix_megatron.cli"]


def test_failed_runs_are_excluded_from_the_table_and_reported(tmp_path, planned):
    runs = planned.runs
    bad_dir, diverged_dir = planned.run_dir(runs[1].run_id), planned.run_dir(runs[2].run_id)
    (bad_dir / "fail-times").write_text("99")
    (diverged_dir / "diverge").write_text("1")
    for run in runs:
        d = planned.run_dir(run.run_id)
        execute_run(d, SubprocessRunner(mechanics_command(d)), max_attempts=2)
    states = st.read_sweep_state(planned, max_attempts=2)
    assert [states[r.run_id].status for r in runs] == [st.DONE, st.FAILED, st.FAILED, st.DONE]
    assert states[runs[2].run_id].num_attempts == 1  # a divergence is not retried
    st.write_launch_settings(planned.root, {"max_attempts": 2})
    out = collect(planned)
    assert list(out.table.columns) == result_columns(planned.domain_names)
    assert list(out.table["run_id"]) == [runs[0].run_id, runs[3].run_id]
    assert not out.table.isna().any().any()
    excluded = {e.run_id: e for e in out.excluded}
    assert set(excluded) == {runs[1].run_id, runs[2].run_id}
    assert excluded[runs[1].run_id].log_path == str(bad_dir / "logs" / "attempt-2.log")
    assert Path(excluded[runs[1].run_id].log_path).exists()
    assert "exit code 7" in excluded[runs[1].run_id].reason
    assert "diverged" in excluded[runs[2].run_id].reason
    # the CLI lists them with log paths
    proc = subprocess.run(CLI + ["sweep", "status", str(planned.root)], capture_output=True, text=True,
                          check=True)
    assert "done: 2  running: 0  failed: 2  pending: 0" in proc.stdout
    assert str(bad_dir / "logs" / "attempt-2.log") in proc.stdout


def test_collect_writes_the_same_table_to_csv_and_parquet(tmp_path, planned):
    for run in planned.runs:
        d = planned.run_dir(run.run_id)
        execute_run(d, SubprocessRunner(mechanics_command(d)))
    out = collect(planned)
    csv = pd.read_csv(out.csv_path)
    parquet = pd.read_parquet(out.parquet_path)
    pd.testing.assert_frame_equal(csv, parquet, check_dtype=False)
    assert len(csv) == 4
    for run in planned.runs:
        row = csv[csv.run_id == run.run_id].iloc[0]
        for d, w in run.mixture.as_dict().items():
            assert row[f"weight/{d}"] == w  # exact round trip (%.17g)
            assert row[f"val_loss/{d}"] == pytest.approx(5.0 - 2.0 * w)


def test_collect_refuses_an_unfinished_sweep(planned):
    with pytest.raises(RegmixError, match="4 of 4 runs are not finished"):
        collect(planned)


def test_a_sweep_of_schedules_plans_schedule_runs_and_collects_feature_columns(tmp_path):
    """Schedules JSONL -> runs whose config.yaml trains the schedule; the table's weight columns are the schedule
    features (p1/<domain>, p2/<domain>), its mixture_hash the schedule hash."""
    import json

    import numpy as np

    from regmix_megatron.runs.run_config import load_run_config
    from regmix_megatron.mixtures.schedule import Schedule, feature_names, write_schedules
    from regmix_megatron.mixtures.sampler import sample
    from regmix_megatron.mixtures.sampler_config import SamplerConfig
    from regmix_megatron.runs.sweep.plan import plan_from_files
    from sweep_fixtures import DOMAINS, write_domains_json, write_proxy_config

    domains_json = write_domains_json(tmp_path / "data")
    schedules = sample(np.array([1000.0, 2000.0, 3000.0]), SamplerConfig(num_samples=3, seed=1), (0.7, 0.3),
                       domains=DOMAINS)
    path = write_schedules(tmp_path / "schedules.jsonl", schedules)
    sweep, created = plan_from_files(path, write_proxy_config(tmp_path / "proxy.yaml", domains_json), tmp_path / "s")
    assert created and [r.schedule for r in sweep.runs] == schedules
    again, created = plan_from_files(path, tmp_path / "proxy.yaml", tmp_path / "s")
    assert not created and again.runs == sweep.runs  # sweep.json round-trips the schedules
    for run, schedule in zip(sweep.runs, schedules):
        cfg = load_run_config(sweep.run_config_path(run.run_id))
        assert cfg.mixture is None and Schedule.from_obj(cfg.schedule).hash == schedule.hash
        assert cfg.resolve().run_id == run.run_id
        result = {"status": "completed", "run_id": run.run_id, "seed": run.seed, "schedule": schedule.to_json_obj(),
                  "val_loss": {d: 5.0 - w for d, w in schedule.mixtures[1].as_dict().items()}}
        (sweep.run_dir(run.run_id) / "result.json").write_text(json.dumps(result))
    table = collect(sweep).table
    names = feature_names(DOMAINS, 2)
    assert list(table.columns) == result_columns(DOMAINS, weight_names=names)
    assert list(table["mixture_hash"]) == [s.hash for s in schedules]
    for (_, row), schedule in zip(table.iterrows(), schedules):
        assert [row[f"weight/{n}"] for n in names] == schedule.features(DOMAINS).tolist()

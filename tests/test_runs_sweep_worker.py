"""The SLURM task entry point ``python -m regmix_megatron.runs.sweep.worker`` (run here without SLURM)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from regmix_megatron.runs.sweep import state as st

from sweep_fixtures import mechanics_command, planned  # noqa: F401


def test_worker_entry_point_runs_one_run_with_retries(tmp_path, planned):
    """The command every SLURM array task executes (here without SLURM)."""
    rid = planned.runs[0].run_id
    run_dir = planned.run_dir(rid)
    (run_dir / "fail-times").write_text("1")
    cmd = [sys.executable, "-m", "regmix_megatron.runs.sweep.worker", str(planned.root), rid, "--max-attempts", "2",
           "--", *mechanics_command(run_dir)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, SLURM_ARRAY_JOB_ID="41",
                                                                        SLURM_ARRAY_TASK_ID="3"))
    assert proc.returncode == 0, proc.stderr
    assert f"run {rid}: done" in proc.stdout
    attempts = st.attempt_records(run_dir)
    assert [a["outcome"] for a in attempts] == ["failed", "completed"]
    assert {a["jobid"] for a in attempts} == {"41_3"}
    (planned.run_dir(planned.runs[1].run_id) / "fail-times").write_text("9")
    cmd[4] = planned.runs[1].run_id
    cmd[-1] = str(planned.run_dir(planned.runs[1].run_id))
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 1 and "failed (2 of 2 attempts failed" in proc.stdout


def test_a_terminated_worker_records_an_interrupted_attempt_and_exits_130(planned):
    """``scancel`` or the time limit: SIGTERM to the task; the train command is stopped, the attempt resumable."""
    rid = planned.runs[0].run_id
    run_dir = planned.run_dir(rid)
    (run_dir / "sleep").write_text("60")
    worker = subprocess.Popen([sys.executable, "-m", "regmix_megatron.runs.sweep.worker", str(planned.root), rid, "--",
                               *mechanics_command(run_dir)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, env=dict(os.environ, SLURM_JOB_ID="77"))
    deadline = time.monotonic() + 30
    while not (run_dir / "starts.log").exists():
        assert time.monotonic() < deadline and worker.poll() is None, worker.communicate()
        time.sleep(0.05)
    worker.send_signal(signal.SIGTERM)
    out, err = worker.communicate(timeout=60)
    assert worker.returncode == 130, out + err
    (record,) = st.attempt_records(run_dir)
    assert record["interrupted"] and "outcome" not in record and record["jobid"] == "77"
    assert st.read_run_state(run_dir).status == st.PENDING

"""The SLURM executor: the generated job script, and a 16-run sweep through a real SLURM cluster (slurmctld +
slurmd + munge on localhost).

The session fixture ``slurm_cluster`` (tests/sweep_fixtures.py) starts the cluster with tools/slurm_local.sh if
it is not running and stops, at the end, exactly the daemons it started. It skips with the script's message
only when SLURM cannot be installed or started (not root, no apt).
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from regmix_megatron.sweep import state as st
from regmix_megatron.sweep.plan import Sweep
from regmix_megatron.sweep.slurm import SlurmOptions, build_launch

from sweep_fixtures import (check_complete_table, domains_json_of, make_real_sweep_inputs,  # noqa: F401
                            planned, slurm_cluster)

CLI = [sys.executable, "-m", "regmix_megatron.cli"]


def _cli(*args, check=True):
    proc = subprocess.run(CLI + list(args), capture_output=True, text=True)
    if check and proc.returncode != 0:
        pytest.fail(f"{' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return proc


def test_the_job_script_maps_tasks_to_runs_and_sizes_threads(planned):
    launch = build_launch(planned, SlurmOptions(cpus_per_task=4, mem="8G", time="01:00:00", gpus_per_task=2,
                                                partition="gpu", account="proj", throttle=3,
                                                extra_sbatch_args=("--qos=high",)), planned.run_ids())
    script = launch.script
    for line in ("#SBATCH --array=0-3%3", "#SBATCH --cpus-per-task=4", "#SBATCH --mem=8G",
                 "#SBATCH --time=01:00:00", "#SBATCH --gres=gpu:2", "#SBATCH --partition=gpu",
                 "#SBATCH --account=proj", "#SBATCH --qos=high", "torch.distributed.run --standalone",
                 'sed -n "$((SLURM_ARRAY_TASK_ID + 1))p" "$RUN_LIST"', "SLURM_CPUS_PER_TASK",
                 "-m regmix_megatron.sweep.worker"):
        assert line in script, line
    proc = subprocess.run(["bash", "-n"], input=script, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.slow
def test_slurm_sweep_of_16_runs_collects_a_complete_table(tmp_path, indexed_fixture, slurm_cluster):
    domains_json = domains_json_of(indexed_fixture)
    mixtures, config, domains = make_real_sweep_inputs(tmp_path, domains_json, 16, seed=2)
    sweep_dir = tmp_path / "sweep"
    _cli("sweep", "plan", "--mixtures", str(mixtures), "--config", str(config), "--output", str(sweep_dir))
    proc = _cli("sweep", "launch", str(sweep_dir), "--executor", "slurm", "--cpus-per-task", "1",
                "--throttle", "2", "--mem", "2G", "--time", "00:20:00", "--job-name", "regmix-test", "--wait",
                check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "done=16 running=0 failed=0 pending=0" in proc.stdout
    sweep = Sweep.load(sweep_dir)
    jobs = [json.loads(line) for line in (sweep_dir / "slurm" / "jobs.jsonl").read_text().splitlines()]
    assert len(jobs) == 1 and jobs[0]["num_tasks"] == 16
    script = (sweep_dir / "slurm" / "launch-001.sbatch").read_text()
    assert "#SBATCH --array=0-15%2" in script and "#SBATCH --cpus-per-task=1" in script
    run_list = (sweep_dir / "slurm" / "launch-001.runs").read_text().split()
    assert run_list == sweep.run_ids()
    job_id = jobs[0]["job_id"]
    for i, run_id in enumerate(run_list):  # every run ran once, in the array task that the list maps it to
        attempts = st.attempt_records(sweep.run_dir(run_id))
        assert len(attempts) == 1 and attempts[0]["outcome"] == "completed"
        assert attempts[0]["jobid"] == f"{job_id}_{i}"
        task_log = (sweep_dir / "slurm" / "logs" / f"{job_id}_{i}.out").read_text()
        assert f"task {i} -> run {run_id}" in task_log and "with 1 thread(s)" in task_log
    _cli("sweep", "collect", str(sweep_dir))
    check_complete_table(sweep_dir, 16, domains)
    # nothing left to submit
    again = _cli("sweep", "launch", str(sweep_dir), "--executor", "slurm")
    assert "nothing to launch" in again.stdout

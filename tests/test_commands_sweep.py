"""``regmix-megatron sweep plan|launch|status|collect``: what the commands print and the flags errors name."""

from __future__ import annotations

import subprocess
import sys

from regmix_megatron.runs.sweep.plan import Sweep

from sweep_fixtures import DOMAINS, planned, random_mixtures, write_domains_json, write_mixtures, write_proxy_config  # noqa: F401,E501

CLI = [sys.executable, "-m", "regmix_megatron.cli"]


def test_plan_prints_the_sweep_and_what_to_do_next(tmp_path):
    domains_json = write_domains_json(tmp_path / "data")
    mixtures = write_mixtures(tmp_path / "m.jsonl", random_mixtures(DOMAINS, 3))
    config = write_proxy_config(tmp_path / "proxy.yaml", domains_json)
    args = CLI + ["sweep", "plan", "--mixtures", str(mixtures), "--config", str(config), "--output",
                  str(tmp_path / "sweep")]
    first = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    sweep = Sweep.load(tmp_path / "sweep")
    assert f"planned: 3 run(s) in {sweep.root} (recipe {sweep.recipe_hash}, seed 7)" in first
    again = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    assert "already planned (unchanged)" in again


def test_a_slurm_dry_run_prints_the_script_and_runs_nothing(planned):
    proc = subprocess.run(CLI + ["sweep", "launch", str(planned.root), "--executor", "slurm", "--dry-run",
                                 "--throttle", "2"], capture_output=True, text=True, check=True)
    assert "#SBATCH --array=0-3%2" in proc.stdout and "sbatch --parsable" in proc.stdout
    assert not (planned.root / "slurm").exists() and not (planned.root / "launch.json").exists()
    for run in planned.runs:
        assert not (planned.run_dir(run.run_id) / "logs").exists()
    local = subprocess.run(CLI + ["sweep", "launch", str(planned.root), "--dry-run", "--parallel", "2"],
                           capture_output=True, text=True, check=True)
    assert local.stdout.count(" train ") == 4 and not (planned.root / "launch.json").exists()


def test_cli_errors_name_the_flag(tmp_path, planned):
    proc = subprocess.run(CLI + ["sweep", "launch", str(planned.root), "--max-attempts", "0"],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and "--max-attempts=0" in proc.stderr
    proc = subprocess.run(CLI + ["sweep", "launch", str(planned.root), "--executor", "slurm", "--mem", "lots",
                                 "--dry-run"], capture_output=True, text=True)
    assert proc.returncode == 2 and "--mem='lots'" in proc.stderr
    proc = subprocess.run(CLI + ["sweep", "status", str(tmp_path)], capture_output=True, text=True)
    assert proc.returncode == 2 and "not a planned sweep" in proc.stderr

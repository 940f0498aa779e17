"""The SLURM executor: the generated job script, and a 16-run sweep through a real SLURM cluster (slurmctld +
slurmd + munge on localhost).

The session fixture ``slurm_cluster`` (tests/sweep_fixtures.py) starts the cluster with tools/slurm_local.sh if
it is not running and stops, at the end, exactly the daemons it started. It skips with the script's message
only when SLURM cannot be installed or started (not root, no apt).
"""

from __future__ import annotations

import json
import subprocess

import pytest

import shutil
from pathlib import Path

import yaml

from regmix_megatron.errors import ConfigError
from regmix_megatron.runs.sweep import state as st
from regmix_megatron.runs.sweep.plan import Sweep
from regmix_megatron.runs.sweep.slurm import SlurmOptions, build_launch

from helpers.cli import run_cli as _cli
from sweep_fixtures import (check_complete_table, domains_json_of, make_real_sweep_inputs,  # noqa: F401
                            planned, slurm_cluster)

#: What an attacker would put in an option: a newline ends the #SBATCH comment, the next line runs on the cluster.
PAYLOAD = "x\ntouch {marker}\n#"


def test_the_job_script_maps_tasks_to_runs_and_sizes_threads(planned):
    launch = build_launch(planned, SlurmOptions(cpus_per_task=4, mem="8G", time="01:00:00", gpus_per_task=2,
                                                partition="gpu", account="proj", throttle=3,
                                                extra_sbatch_args=("--qos=high",)), planned.run_ids())
    script = launch.script
    for line in ("#SBATCH --array=0-3%3", "#SBATCH --cpus-per-task=4", "#SBATCH --mem=8G",
                 "#SBATCH --time=01:00:00", "#SBATCH --gres=gpu:2", "#SBATCH --partition=gpu",
                 "#SBATCH --account=proj", "#SBATCH --qos=high", "torch.distributed.run --standalone",
                 'sed -n "$((SLURM_ARRAY_TASK_ID + 1))p" "$RUN_LIST"', "SLURM_CPUS_PER_TASK",
                 "-m regmix_megatron.runs.sweep.worker"):
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


# ---- injection: every option, from flags and from a pipeline YAML ---------------------------------------------
FLAG_VALUES = {"--job-name": "job", "--partition": "cpu", "--account": "proj", "--time": "01:00:00", "--mem": "2G",
               "--sbatch-arg": "--qos=high"}


@pytest.mark.parametrize("flag", sorted(FLAG_VALUES))
@pytest.mark.parametrize("bad", ["\n", "\r", "\x1b", "\u2028"])  # (argv cannot carry a NUL byte)
def test_a_control_character_in_any_flag_is_refused_naming_it(planned, tmp_path, flag, bad):
    marker = tmp_path / "pwned"
    value = FLAG_VALUES[flag] + PAYLOAD.format(marker=marker).replace("\n", bad)
    proc = _cli("sweep", "launch", str(planned.root), "--executor", "slurm", "--dry-run", f"{flag}={value}",
                check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert f"error: {flag}=" in proc.stderr and "is invalid" in proc.stderr
    assert not marker.exists() and not (planned.root / "slurm").exists()  # nothing written, nothing submitted


YAML_VALUES = {"job_name": "job", "partition": "cpu", "account": "proj", "time": "01:00:00", "mem": "2G",
               "extra_sbatch_args": ["--qos=high"]}


@pytest.mark.parametrize("key", sorted(YAML_VALUES))
def test_a_control_character_in_any_pipeline_slurm_key_is_refused_naming_it(tmp_path, key):
    marker = tmp_path / "pwned"
    good = YAML_VALUES[key]
    bad = [good[0] + PAYLOAD.format(marker=marker)] if isinstance(good, list) else good + PAYLOAD.format(marker=marker)
    config = tmp_path / "pipeline.yaml"
    config.write_text(yaml.safe_dump({"corpus": {"source": str(Path(__file__).parent / "fixtures" / "corpus")},
                                      "executor": {"kind": "slurm", "slurm": {key: bad}}}))
    proc = _cli("run", str(config), check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert f"error: {config}: executor.slurm.{key}=" in proc.stderr and "control character" in proc.stderr
    assert not marker.exists()


@pytest.mark.parametrize("key, value, words", [
    ("cpus_per_task", "1\nrm -rf /", "an integer >= 1"), ("throttle", True, "an integer >= 1"),
    ("gpus_per_task", -1, "an integer >= 0"), ("job_name", 42, "non-empty string"),
    ("extra_sbatch_args", "--qos=high", "a list of sbatch options"), ("extra_sbatch_args", ["qos=high"], "--OPTION"),
    ("partition", "a b", "no spaces"), ("time", "١:٠٠", "HH:MM:SS"),
])
def test_wrong_types_and_forms_are_refused_naming_the_key(key, value, words):
    with pytest.raises(ConfigError, match=rf"cfg.yaml: executor\.slurm\.{key}=.* is invalid: .*{words}"):
        SlurmOptions(**{key: value}, origin="cfg.yaml: executor.slurm")


def test_options_from_a_config_mapping_are_parsed_once_naming_the_file():
    from helpers.field_docs import undocumented_fields

    options = SlurmOptions.from_dict({"partition": "gpu", "extra_sbatch_args": ["--qos=high"], "max_attempts": 9},
                                     source="cfg.yaml: executor.slurm", throttle=4, max_attempts=2)
    assert (options.partition, options.extra_sbatch_args, options.throttle, options.max_attempts) == (
        "gpu", ("--qos=high",), 4, 2)  # max_attempts is the executor's, the throttle a default
    assert SlurmOptions.from_dict({"throttle": 8}, source="s", throttle=4).throttle == 8
    with pytest.raises(ConfigError, match=r"cfg\.yaml: executor\.slurm=\['partitions'\] is invalid: unknown SLURM "
                                          r"option\(s\); known: \['account', 'cpus_per_task'"):
        SlurmOptions.from_dict({"partitions": "gpu"}, source="cfg.yaml: executor.slurm")
    with pytest.raises(ConfigError, match=r"cfg\.yaml: executor\.slurm\.mem='4 GB' is invalid: use SLURM syntax"):
        SlurmOptions.from_dict({"mem": "4 GB"}, source="cfg.yaml: executor.slurm")
    with pytest.raises(ConfigError, match=r"executor\.slurm=\['gpu'\] is invalid: give a mapping"):
        SlurmOptions.from_dict(["gpu"], source="cfg.yaml: executor.slurm")
    assert undocumented_fields(SlurmOptions) == []


def test_shell_metacharacters_are_quoted_not_refused(planned):
    options = SlurmOptions(job_name='a b;$(touch x)`id`"q#', account="team_1", partition="gpu,cpu",
                           extra_sbatch_args=("--comment=two words # and more", "--exclusive"))
    script = build_launch(planned, options, planned.run_ids()).script
    assert '#SBATCH --job-name="a b;$(touch x)`id`\\"q#"' in script
    assert "#SBATCH --account=team_1" in script and "#SBATCH --partition=gpu,cpu" in script
    assert '#SBATCH --comment="two words # and more"' in script and "#SBATCH --exclusive" in script
    assert all(line.startswith("#") or not line.startswith("#SBATCH") for line in script.splitlines())
    assert subprocess.run(["bash", "-n"], input=script, capture_output=True, text=True).returncode == 0


def test_a_sweep_path_slurm_cannot_log_under_is_refused(planned, tmp_path):
    for name in ("back\\slash", "new\nline"):
        moved = Path(shutil.copytree(planned.root, tmp_path / name))
        with pytest.raises(ConfigError, match="SLURM cannot name its log files under such a path"):
            build_launch(Sweep.load(moved), SlurmOptions(), planned.run_ids())


@pytest.mark.slow
def test_a_sweep_under_a_path_with_spaces_and_shell_characters_runs_on_slurm(tmp_path, indexed_fixture,
                                                                             slurm_cluster):
    """The real cluster: a sweep directory named with a space, ;, $(...), %, # and a quote, and a job name full
    of shell characters, run to completion; the commands hidden in them never ran."""
    marker = tmp_path / "pwned"
    domains_json = domains_json_of(indexed_fixture)
    mixtures, config, domains = make_real_sweep_inputs(tmp_path, domains_json, 2, seed=5)
    sweep_dir = tmp_path / f'my sweep;$(touch {marker}) 100%#"q'
    _cli("sweep", "plan", "--mixtures", str(mixtures), "--config", str(config), "--output", str(sweep_dir))
    proc = _cli("sweep", "launch", str(sweep_dir), "--executor", "slurm", "--cpus-per-task", "1", "--time",
                "00:20:00", "--job-name", f"rm -rf x; touch {marker} `touch {marker}`", "--wait", check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "done=2 running=0 failed=0 pending=0" in proc.stdout
    job = json.loads((sweep_dir / "slurm" / "jobs.jsonl").read_text().splitlines()[0])["job_id"]
    for i in range(2):  # the task logs went where the script said, under the awkward path
        assert "-> run" in (sweep_dir / "slurm" / "logs" / f"{job}_{i}.out").read_text()
    _cli("sweep", "collect", str(sweep_dir))
    check_complete_table(sweep_dir, 2, domains)
    assert not marker.exists()


def test_a_refusing_slurm_is_a_message_that_blames_the_option_not_the_controller(planned, slurm_cluster):
    proc = _cli("sweep", "launch", str(planned.root), "--executor", "slurm", "--partition", "no-such-partition",
                check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert "invalid partition" in proc.stderr.lower() and "fix the option it names" in proc.stderr
    assert "slurmctld running" not in proc.stderr
    assert not (planned.root / "slurm" / "jobs.jsonl").exists()  # nothing recorded as submitted

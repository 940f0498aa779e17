"""Sweeps: planning, run state from files, executor mechanics, the results table, and real local sweeps."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from regmix_megatron.errors import DataError, RegmixError
from regmix_megatron.mixture import Mixture
from regmix_megatron.sweep import state as st
from regmix_megatron.sweep.collect import collect, result_columns
from regmix_megatron.sweep import local as local_executor
from regmix_megatron.sweep.local import LocalOptions, describe_local, launch_local
from regmix_megatron.sweep.plan import Sweep, SweepError, make_run_id, plan_from_files, read_mixtures
from regmix_megatron.sweep.slurm import SlurmOptions, build_launch
from regmix_megatron.sweep.worker import execute_run
from regmix_megatron.train_config import load_train_config

from sweep_fixtures import DOMAINS, mechanics_command, write_domains_json

REPO = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "regmix_megatron.cli"]


def _mixtures(domains, n, seed=0) -> list[Mixture]:
    rng = np.random.default_rng(seed)
    return [Mixture.from_array(domains, rng.dirichlet(np.ones(len(domains)))) for _ in range(n)]


def _write_mixtures(path: Path, mixtures) -> Path:
    path.write_text("".join(json.dumps(m.to_json_obj()) + "\n" for m in mixtures))
    return path


def _proxy_config(path: Path, domains_json: Path, **extra) -> Path:
    cfg = {"preset": "tiny-test", "domains": str(domains_json), "seed": 7}
    cfg.update(extra)
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.fixture
def planned(tmp_path) -> Sweep:
    domains_json = write_domains_json(tmp_path / "data")
    mixtures = _write_mixtures(tmp_path / "mixtures.jsonl", _mixtures(DOMAINS, 4))
    config = _proxy_config(tmp_path / "proxy.yaml", domains_json)
    sweep, created = plan_from_files(mixtures, config, tmp_path / "sweep")
    assert created
    return sweep


# ---- planning -------------------------------------------------------------------------------------------
def test_plan_ids_are_deterministic_and_replanning_is_idempotent(tmp_path, planned):
    sweep = planned
    assert len(sweep.runs) == 4 and len(set(sweep.run_ids())) == 4
    for run in sweep.runs:
        assert run.run_id == make_run_id(run.mixture.hash, sweep.config_hash, 7)
        cfg = yaml.safe_load(sweep.run_config_path(run.run_id).read_text())
        assert cfg["mixture"] == run.mixture.as_dict() and cfg["seed"] == 7 and cfg["run_id"] == run.run_id
        assert cfg["output_dir"] == str(sweep.run_dir(run.run_id))
        # the run config is a valid config of the real trainer
        assert load_train_config(sweep.run_config_path(run.run_id)).optim.train_steps > 0
    before = (sweep.root / "sweep.json").read_bytes()
    again, created = plan_from_files(tmp_path / "mixtures.jsonl", tmp_path / "proxy.yaml", tmp_path / "sweep")
    assert not created and again.run_ids() == sweep.run_ids()
    assert (sweep.root / "sweep.json").read_bytes() == before
    assert Sweep.load(sweep.root).run_ids() == sweep.run_ids()
    # another seed is another set of runs
    other, _ = plan_from_files(tmp_path / "mixtures.jsonl", tmp_path / "proxy.yaml", tmp_path / "other", seed=8)
    assert not set(other.run_ids()) & set(sweep.run_ids())


def test_planning_other_inputs_into_a_sweep_dir_is_refused(tmp_path, planned):
    _write_mixtures(tmp_path / "more.jsonl", _mixtures(DOMAINS, 5, seed=1))
    with pytest.raises(SweepError, match="already holds a different sweep"):
        plan_from_files(tmp_path / "more.jsonl", tmp_path / "proxy.yaml", planned.root)
    _proxy_config(tmp_path / "proxy2.yaml", planned.domains_path, optim={"train_steps": 5})
    with pytest.raises(SweepError, match=r"fields differing: \['optim'\]"):
        plan_from_files(tmp_path / "mixtures.jsonl", tmp_path / "proxy2.yaml", planned.root)
    with pytest.raises(SweepError, match="seed 7 vs 9"):
        plan_from_files(tmp_path / "mixtures.jsonl", tmp_path / "proxy.yaml", planned.root, seed=9)
    (tmp_path / "notasweep").mkdir()
    (tmp_path / "notasweep" / "x.txt").write_text("x")
    with pytest.raises(SweepError, match="not a sweep directory"):
        plan_from_files(tmp_path / "mixtures.jsonl", tmp_path / "proxy.yaml", tmp_path / "notasweep")


def test_mixture_file_errors_name_the_line(tmp_path):
    m = _mixtures(DOMAINS, 2)
    good = json.dumps(m[0].to_json_obj())
    p = tmp_path / "m.jsonl"
    p.write_text(good + "\n" + good + "\n")
    with pytest.raises(DataError, match=r"m.jsonl:2: the same mixture as line 1"):
        read_mixtures(p)
    bad = dict(m[1].to_json_obj(), hash="0123456789abcdef")
    p.write_text(good + "\n" + json.dumps(bad) + "\n")
    with pytest.raises(DataError, match=r"m.jsonl:2: stated hash"):
        read_mixtures(p)
    p.write_text(good + "\n{oops\n")
    with pytest.raises(DataError, match=r"m.jsonl:2: invalid JSON"):
        read_mixtures(p)
    p.write_text(json.dumps({"weights": {"arxiv": 0.5, "nope": 0.5}}) + "\n")
    domains_json = write_domains_json(tmp_path / "d")
    cfg = _proxy_config(tmp_path / "c.yaml", domains_json)
    with pytest.raises(DataError, match=r"unknown \['nope'\], missing \['code', 'web'\]"):
        plan_from_files(p, cfg, tmp_path / "s")


def test_plan_validates_the_proxy_config_with_the_trainer(tmp_path):
    domains_json = write_domains_json(tmp_path / "d")
    mixtures = _write_mixtures(tmp_path / "m.jsonl", _mixtures(DOMAINS, 2))
    cfg = _proxy_config(tmp_path / "c.yaml", domains_json, optim={"train_steps": -1})
    with pytest.raises(RegmixError, match=r"optim.train_steps=-1"):
        plan_from_files(mixtures, cfg, tmp_path / "s")
    cfg = _proxy_config(tmp_path / "c2.yaml", tmp_path / "missing.json")
    with pytest.raises(RegmixError, match=r"domains=.*does not exist"):
        plan_from_files(mixtures, cfg, tmp_path / "s")


# ---- state and executor mechanics (stand-in trainer script) ---------------------------------------------
def test_state_transitions(tmp_path, planned):
    run_dir = planned.run_dir(planned.runs[0].run_id)
    assert st.read_run_state(run_dir).status == st.PENDING
    lock = {"token": "t", "host": st.hostname(), "pid": os.getpid(), "jobid": None, "started_at": time.time()}
    assert st.acquire_lock(run_dir, lock)
    assert st.read_run_state(run_dir).status == st.RUNNING
    assert not st.acquire_lock(run_dir, dict(lock, token="u"))  # held by a live process
    # a lock whose process is gone is stale: pending again, and can be taken over
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    st.update_lock(run_dir, dict(lock, pid=dead.pid))
    assert st.read_run_state(run_dir).status == st.PENDING
    assert st.acquire_lock(run_dir, dict(lock, token="v"))
    st.release_lock(run_dir, "v")
    assert not (run_dir / st.LOCK_FILE).exists()
    # a stale heartbeat from another host is stale too
    st.update_lock(run_dir, dict(lock, host="elsewhere"))
    assert st.read_run_state(run_dir).status == st.RUNNING
    assert st.read_run_state(run_dir, now=time.time() + st.STALE_AFTER_S + 1).status == st.PENDING
    (run_dir / st.LOCK_FILE).unlink()
    # failed attempts count up to max_attempts
    (run_dir / "logs").mkdir()
    for n in (1, 2):
        (run_dir / "logs" / f"attempt-{n}.json").write_text(json.dumps({"attempt": n, "outcome": "failed",
                                                                         "reason": "exit code 7"}))
    assert st.read_run_state(run_dir, max_attempts=3).status == st.PENDING
    s = st.read_run_state(run_dir, max_attempts=2)
    assert s.status == st.FAILED and "2 of 2 attempts failed" in s.reason
    assert s.log_path.endswith("logs/attempt-2.log")
    # an interrupted attempt (no outcome) does not count
    (run_dir / "logs" / "attempt-3.json").write_text(json.dumps({"attempt": 3}))
    assert st.read_run_state(run_dir, max_attempts=3).status == st.PENDING
    # the trainer's outcome files win
    (run_dir / "status.json").write_text(json.dumps({"status": "diverged", "step": 4}))
    assert st.read_run_state(run_dir, max_attempts=9).status == st.FAILED
    (run_dir / "result.json").write_text(json.dumps({"status": "completed", "val_loss": {}}))
    assert st.read_run_state(run_dir).status == st.DONE


def test_retries_keep_every_attempt_log(tmp_path, planned):
    run_dir = planned.run_dir(planned.runs[0].run_id)
    (run_dir / "fail-times").write_text("2")
    final = execute_run(run_dir, mechanics_command(tmp_path, run_dir), max_attempts=3)
    assert final.status == st.DONE
    outcomes = [a["outcome"] for a in final.attempts]
    assert outcomes == ["failed", "failed", "completed"]
    assert [a["exit_code"] for a in final.attempts] == [7, 7, 0]
    for n in (1, 2, 3):
        text = (run_dir / "logs" / f"attempt-{n}.log").read_text()
        assert text.startswith(f"# regmix-megatron sweep: run {run_dir.name} attempt {n}")
        assert ("failing on purpose" in text) == (n < 3)
    assert not (run_dir / st.LOCK_FILE).exists()
    # done is done: another execution does not start the trainer again
    execute_run(run_dir, mechanics_command(tmp_path, run_dir), max_attempts=3)
    assert len((run_dir / "starts.log").read_text().split()) == 3


def test_failed_runs_are_excluded_from_the_table_and_reported(tmp_path, planned):
    runs = planned.runs
    bad_dir, diverged_dir = planned.run_dir(runs[1].run_id), planned.run_dir(runs[2].run_id)
    (bad_dir / "fail-times").write_text("99")
    (diverged_dir / "diverge").write_text("1")
    for run in runs:
        d = planned.run_dir(run.run_id)
        execute_run(d, mechanics_command(tmp_path, d), max_attempts=2)
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
        execute_run(d, mechanics_command(tmp_path, d))
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


def test_worker_entry_point_runs_one_run_with_retries(tmp_path, planned):
    """The command every SLURM array task executes (here without SLURM)."""
    rid = planned.runs[0].run_id
    run_dir = planned.run_dir(rid)
    (run_dir / "fail-times").write_text("1")
    cmd = [sys.executable, "-m", "regmix_megatron.sweep.worker", str(planned.root), rid, "--max-attempts", "2",
           "--", *mechanics_command(tmp_path, run_dir)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, SLURM_ARRAY_JOB_ID="41",
                                                                        SLURM_ARRAY_TASK_ID="3"))
    assert proc.returncode == 0, proc.stderr
    assert f"run {rid}: done" in proc.stdout
    attempts = st.attempt_records(run_dir)
    assert [a["outcome"] for a in attempts] == ["failed", "completed"]
    assert {a["jobid"] for a in attempts} == {"41_3"}
    (planned.run_dir(planned.runs[1].run_id) / "fail-times").write_text("9")
    cmd[4] = planned.runs[1].run_id
    cmd[-2:] = [str(planned.run_dir(planned.runs[1].run_id) / "config.yaml"),
                str(planned.run_dir(planned.runs[1].run_id))]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 1 and "failed (2 of 2 attempts failed" in proc.stdout


def test_collect_refuses_an_unfinished_sweep(planned):
    with pytest.raises(RegmixError, match="4 of 4 runs are not finished"):
        collect(planned)


def test_a_run_held_by_a_live_worker_is_not_started_twice(tmp_path, planned):
    run_dir = planned.run_dir(planned.runs[0].run_id)
    assert st.acquire_lock(run_dir, {"token": "other", "host": st.hostname(), "pid": os.getpid()})
    final = execute_run(run_dir, mechanics_command(tmp_path, run_dir))
    assert final.status == st.RUNNING and not (run_dir / "starts.log").exists()


def test_a_zombie_or_a_later_process_with_the_same_pid_holds_no_lock(tmp_path, planned):
    run_dir = planned.run_dir(planned.runs[0].run_id)
    me = st.holder_info()
    assert me["pid_start"] is not None and st.pid_alive(me["pid"], me["pid_start"])
    st.update_lock(run_dir, dict(me, token="t"))
    assert st.read_run_state(run_dir).status == st.RUNNING
    # the same pid with another start time is a later process: the holder is gone
    st.update_lock(run_dir, dict(me, token="t", pid_start=me["pid_start"] - 1))
    assert st.read_run_state(run_dir).status == st.PENDING
    # a killed holder that nobody has reaped yet is a zombie: kill(pid, 0) succeeds, but it holds nothing
    victim = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        st.update_lock(run_dir, dict(me, token="t", pid=victim.pid, pid_start=st.process_start(victim.pid)))
        assert st.read_run_state(run_dir).status == st.RUNNING
        victim.kill()
        deadline = time.monotonic() + 10
        while st.process_start(victim.pid) is not None and st._proc_stat(victim.pid)[0] != "Z":
            assert time.monotonic() < deadline, "the killed process never became a zombie"
            time.sleep(0.05)
        os.kill(victim.pid, 0)  # still there as a zombie ...
        assert st.read_run_state(run_dir).status == st.PENDING  # ... and yet the run is free
        assert st.acquire_lock(run_dir, dict(me, token="u"))
    finally:
        victim.kill()
        victim.wait()
    # a holder that died while the trainer it started lives on still holds the run
    trainer = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        st.update_lock(run_dir, dict(me, token="u", pid=victim.pid, pid_start=None, child_pid=trainer.pid,
                                     child_start=st.process_start(trainer.pid)))
        assert st.read_run_state(run_dir).status == st.RUNNING
    finally:
        trainer.kill()
        trainer.wait()
    assert st.read_run_state(run_dir).status == st.PENDING


def test_a_local_launch_waits_for_a_held_run_and_takes_it_over_when_its_holder_dies(tmp_path, planned,
                                                                                     monkeypatch):
    monkeypatch.setattr(local_executor, "train_command", lambda sweep, rid: mechanics_command(tmp_path,
                                                                                             sweep.run_dir(rid)))
    monkeypatch.setattr(local_executor, "HELD_POLL_S", 0.1)
    held = planned.runs[0].run_id
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3)"])
    assert st.acquire_lock(planned.run_dir(held), dict(st.holder_info(), token="other", pid=holder.pid,
                                                       pid_start=st.process_start(holder.pid)))
    started = time.monotonic()
    # nobody reaps the holder: it ends as a zombie, which must not hold the run forever
    final = launch_local(planned, LocalOptions(parallel=1, wait_for_held=True))
    assert time.monotonic() - started >= 2.5  # it did wait for the holder
    assert {s.status for s in final.values()} == {st.DONE}
    assert len((planned.run_dir(held) / "starts.log").read_text().splitlines()) == 1
    holder.wait()
    # --no-wait returns at once, leaving a held run to its holder
    other = _mixtures(DOMAINS, 1, seed=5)
    sweep2, _ = plan_from_files(_write_mixtures(tmp_path / "m2.jsonl", other), tmp_path / "proxy.yaml",
                                tmp_path / "sweep2")
    rid = sweep2.runs[0].run_id
    assert st.acquire_lock(sweep2.run_dir(rid), dict(st.holder_info(), token="me"))
    final = launch_local(sweep2, LocalOptions(parallel=1, wait_for_held=False))
    assert final[rid].status == st.RUNNING and not (sweep2.run_dir(rid) / "starts.log").exists()


def test_dry_runs_print_exact_commands_and_run_nothing(tmp_path, planned):
    lines = describe_local(planned, LocalOptions(parallel=2, threads_per_run=1))
    assert len(lines) == 5
    rid = planned.runs[0].run_id
    assert f"OMP_NUM_THREADS=1" in lines[1] and f"train {planned.run_config_path(rid)} --output-dir" in lines[1]
    launch = build_launch(planned, SlurmOptions(cpus_per_task=4, mem="8G", time="01:00:00", gpus_per_task=2,
                                                partition="gpu", account="proj", throttle=3,
                                                extra_sbatch_args=("--qos=high",)), planned.run_ids())
    script = launch.script
    for line in ("#SBATCH --array=0-3%3", "#SBATCH --cpus-per-task=4", "#SBATCH --mem=8G",
                 "#SBATCH --time=01:00:00", "#SBATCH --gres=gpu:2", "#SBATCH --partition=gpu",
                 "#SBATCH --account=proj", "#SBATCH --qos=high", "torch.distributed.run --standalone",
                 'sed -n "$((SLURM_ARRAY_TASK_ID + 1))p" "$RUN_LIST"', "SLURM_CPUS_PER_TASK"):
        assert line in script, line
    proc = subprocess.run(CLI + ["sweep", "launch", str(planned.root), "--executor", "slurm", "--dry-run",
                                 "--throttle", "2"], capture_output=True, text=True, check=True)
    assert "#SBATCH --array=0-3%2" in proc.stdout and "sbatch --parsable" in proc.stdout
    assert not (planned.root / "slurm").exists() and not (planned.root / "launch.json").exists()
    for run in planned.runs:
        assert not (planned.run_dir(run.run_id) / "logs").exists()


def test_cli_errors_name_the_flag(tmp_path, planned):
    proc = subprocess.run(CLI + ["sweep", "launch", str(planned.root), "--max-attempts", "0"],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and "--max-attempts=0" in proc.stderr
    proc = subprocess.run(CLI + ["sweep", "launch", str(planned.root), "--executor", "slurm", "--mem", "lots",
                                 "--dry-run"], capture_output=True, text=True)
    assert proc.returncode == 2 and "--mem='lots'" in proc.stderr
    proc = subprocess.run(CLI + ["sweep", "status", str(tmp_path)], capture_output=True, text=True)
    assert proc.returncode == 2 and "not a planned sweep" in proc.stderr


# ---- real sweeps: the real `regmix-megatron train` on the corpus fixture ---------------------------------
from sweep_fixtures import check_complete_table, domains_json_of, make_real_sweep_inputs  # noqa: E402


def _cli(*args, check=True, **kw):
    proc = subprocess.run(CLI + list(args), capture_output=True, text=True, **kw)
    if check and proc.returncode != 0:
        pytest.fail(f"{' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return proc


@pytest.fixture(scope="module")
def local_sweep_16(tmp_path_factory, indexed_fixture):
    """A 16-run sweep launched with the local executor (2 parallel `regmix-megatron train` processes)."""
    tmp_path = tmp_path_factory.mktemp("local16")
    domains_json = domains_json_of(indexed_fixture)
    mixtures, config, domains = make_real_sweep_inputs(tmp_path, domains_json, 16)
    sweep_dir = tmp_path / "sweep"
    _cli("sweep", "plan", "--mixtures", str(mixtures), "--config", str(config), "--output", str(sweep_dir))
    proc = _cli("sweep", "launch", str(sweep_dir), "--executor", "local", "--parallel", "2", check=False)
    return sweep_dir, mixtures, config, domains, proc


def test_local_sweep_of_16_runs_collects_a_complete_table(local_sweep_16):
    sweep_dir, _, _, domains, proc = local_sweep_16
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "done=16 running=0 failed=0 pending=0" in proc.stdout
    sweep = Sweep.load(sweep_dir)
    for run in sweep.runs:  # one attempt each, its log kept, the trainer's own result for that run
        d = sweep.run_dir(run.run_id)
        attempts = st.attempt_records(d)
        assert len(attempts) == 1 and attempts[0]["outcome"] == "completed"
        assert attempts[0]["command"][1:3] == ["train", str(d / "config.yaml")]
        result = json.loads((d / "result.json").read_text())
        assert result["run_id"] == run.run_id
        assert result["mixture"] == pytest.approx(run.mixture.as_dict(), abs=1e-12)
    status = _cli("sweep", "status", str(sweep_dir)).stdout
    assert "done: 16" in status and "16/16" in status
    _cli("sweep", "collect", str(sweep_dir))
    table = check_complete_table(sweep_dir, 16, domains)
    assert set(table["run_id"]) == set(sweep.run_ids())
    # the losses are the trainer's, per run: mixtures differ, so do the losses
    assert table[[f"val_loss/{d}" for d in domains]].round(6).drop_duplicates().shape[0] == 16
    # a re-launch has nothing to do
    again = _cli("sweep", "launch", str(sweep_dir), "--executor", "local")
    assert "done=16" in again.stdout
    assert all(len(st.attempt_records(sweep.run_dir(r))) == 1 for r in sweep.run_ids())


def test_reused_processes_give_the_same_losses_as_one_process_per_run(tmp_path, local_sweep_16):
    sweep_dir, mixtures, config, domains, proc = local_sweep_16
    assert proc.returncode == 0
    four = tmp_path / "four.jsonl"
    four.write_text("".join(mixtures.read_text().splitlines(keepends=True)[:4]))
    other = tmp_path / "sweep"
    _cli("sweep", "plan", "--mixtures", str(four), "--config", str(config), "--output", str(other))
    out = _cli("sweep", "launch", str(other), "--executor", "local", "--parallel", "2", "--reuse-process")
    assert "done=4" in out.stdout
    sweep = Sweep.load(other)
    pids = {st.attempt_records(sweep.run_dir(r))[0]["pid"] for r in sweep.run_ids()}
    assert len(pids) <= 2  # at most two processes trained the four runs
    _cli("sweep", "collect", str(other))
    reused = check_complete_table(other, 4, domains).set_index("run_id")
    separate = pd.read_parquet(sweep_dir / "results.parquet").set_index("run_id")
    assert set(reused.index) <= set(separate.index)  # same inputs, same run ids
    pd.testing.assert_frame_equal(reused, separate.loc[reused.index], check_exact=False, rtol=1e-6)


def test_killed_sweep_relaunches_without_repeating_finished_runs(tmp_path, indexed_fixture):
    domains_json = domains_json_of(indexed_fixture)
    mixtures, config, domains = make_real_sweep_inputs(tmp_path, domains_json, 6, seed=1)
    sweep_dir = tmp_path / "sweep"
    _cli("sweep", "plan", "--mixtures", str(mixtures), "--config", str(config), "--output", str(sweep_dir))
    sweep = Sweep.load(sweep_dir)
    launcher = subprocess.Popen(CLI + ["sweep", "launch", str(sweep_dir), "--executor", "local", "--parallel",
                                       "2"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True)
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            done = [r for r in sweep.run_ids() if (sweep.run_dir(r) / "result.json").exists()]
            if len(done) >= 2:
                break
            assert launcher.poll() is None, "the launcher ended before it could be killed"
            time.sleep(0.2)
        else:
            pytest.fail("no two runs finished within 180 s")
    finally:
        os.killpg(launcher.pid, signal.SIGKILL)
        launcher.wait()
    done_before = {r: (sweep.run_dir(r) / "result.json").read_bytes() for r in sweep.run_ids()
                   if (sweep.run_dir(r) / "result.json").exists()}
    assert 2 <= len(done_before) < 6
    # SIGKILL takes effect asynchronously, so the killed workers may look alive for a moment; then their
    # runs are free again (zombies not yet reaped by init hold nothing)
    deadline = time.monotonic() + 30
    while True:
        states = st.read_sweep_state(sweep)
        if all(states[r].status == st.PENDING for r in sweep.run_ids() if r not in done_before):
            break
        assert time.monotonic() < deadline, {r: s.status for r, s in states.items()}
        time.sleep(0.1)
    proc = _cli("sweep", "launch", str(sweep_dir), "--executor", "local", "--parallel", "2", check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "done=6" in proc.stdout
    for r in sweep.run_ids():
        attempts = st.attempt_records(sweep.run_dir(r))
        if r in done_before:  # never started again: one attempt, the same result
            # (its outcome is missing if the kill came between the trainer's result.json and the record)
            assert len(attempts) == 1 and attempts[0].get("outcome") in (None, "completed")
            assert (sweep.run_dir(r) / "result.json").read_bytes() == done_before[r]
        else:  # started now (or resumed after the kill): the last attempt completed
            assert attempts[-1]["outcome"] == "completed"
            assert all(a.get("outcome") in (None, "completed") for a in attempts)
    _cli("sweep", "collect", str(sweep_dir))
    check_complete_table(sweep_dir, 6, domains)

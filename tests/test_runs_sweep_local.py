"""The local executor: a pool of train subprocesses or reused in-process workers; held runs waited for; the
exact commands of a dry run; and real sweeps of the real trainer on the corpus fixture, killed and resumed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest

from regmix_megatron.runs.sweep import local as local_executor
from regmix_megatron.runs.sweep import state as st
from regmix_megatron.runs.sweep.local import LocalOptions, describe_local, launch_local
from regmix_megatron.runs.sweep.plan import Sweep, plan_from_files

from helpers.cli import CLI, run_cli as _cli
from sweep_fixtures import (DOMAINS, check_complete_table, domains_json_of, make_real_sweep_inputs,  # noqa: F401
                            mechanics_command, planned, random_mixtures, write_mixtures)


def test_a_local_launch_waits_for_a_held_run_and_takes_it_over_when_its_holder_dies(tmp_path, planned,
                                                                                     monkeypatch):
    monkeypatch.setattr(local_executor, "train_command", lambda sweep, rid: mechanics_command(sweep.run_dir(rid)))
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
    other = random_mixtures(DOMAINS, 1, seed=5)
    sweep2, _ = plan_from_files(write_mixtures(tmp_path / "m2.jsonl", other), tmp_path / "proxy.yaml",
                                tmp_path / "sweep2")
    rid = sweep2.runs[0].run_id
    assert st.acquire_lock(sweep2.run_dir(rid), dict(st.holder_info(), token="me"))
    final = launch_local(sweep2, LocalOptions(parallel=1, wait_for_held=False))
    assert final[rid].status == st.RUNNING and not (sweep2.run_dir(rid) / "starts.log").exists()


def test_a_run_freed_while_the_launch_is_busy_is_trained_too(planned, monkeypatch):
    """Its holder dies while the pool trains the other runs: the launch trains it before it returns."""
    monkeypatch.setattr(local_executor, "train_command", lambda sweep, rid: mechanics_command(sweep.run_dir(rid)))
    held = planned.runs[0].run_id
    (planned.run_dir(planned.runs[1].run_id) / "sleep").write_text("2")
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(0.5)"])
    try:
        assert st.acquire_lock(planned.run_dir(held), dict(st.holder_info(), token="other", pid=holder.pid,
                                                           pid_start=st.process_start(holder.pid)))
        final = launch_local(planned, LocalOptions(parallel=1))
    finally:
        holder.wait()
    assert {s.status for s in final.values()} == {st.DONE}
    assert len((planned.run_dir(held) / "starts.log").read_text().splitlines()) == 1


def test_a_dry_run_prints_the_exact_commands(planned):
    lines = describe_local(planned, LocalOptions(parallel=2, threads_per_run=1))
    assert len(lines) == 5
    rid = planned.runs[0].run_id
    assert "OMP_NUM_THREADS=1" in lines[1] and f"train {planned.run_config_path(rid)} --output-dir" in lines[1]
    reused = describe_local(planned, LocalOptions(parallel=2, reuse_process=True))
    assert len(reused) == 3 and all("-m regmix_megatron.megatron.sweep_runner" in line for line in reused[1:])


# ---- real sweeps: the real `regmix-megatron train` on the corpus fixture ---------------------------------
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


@pytest.mark.slow
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


@pytest.mark.slow
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


@pytest.mark.slow
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


def test_a_run_held_by_a_concurrent_launch_is_not_reported_as_ended(planned, monkeypatch, capsys):
    """Two launches of one sweep: the run the other launch holds is not printed as if it had ended
    ("run X: running ()"); the summary says who holds it."""
    from regmix_megatron import cli

    monkeypatch.setattr(local_executor, "train_command", lambda sweep, rid: mechanics_command(sweep.run_dir(rid)))
    held = planned.runs[0].run_id
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    listed = local_executor.runs_to_launch

    def claimed_meanwhile(sweep, max_attempts):
        """The other launch takes the first run just after this one listed the pending runs (the race)."""
        pending = listed(sweep, max_attempts)
        assert st.acquire_lock(planned.run_dir(held), dict(st.holder_info(), token="other", pid=holder.pid,
                                                           pid_start=st.process_start(holder.pid)))
        return pending

    monkeypatch.setattr(local_executor, "runs_to_launch", claimed_meanwhile)
    try:
        rc = cli.main(["sweep", "launch", str(planned.root), "--num-parallel", "1", "--no-wait"])
    finally:
        holder.kill()
        holder.wait()
    out = capsys.readouterr()
    assert rc == 0 and "running ()" not in out.out + out.err and f"run {held}:" not in out.out + out.err
    assert f"held by another launch {held}: host {st.hostname()}, pid {holder.pid} trains it" in out.out
    assert "done=3" in out.out and "running=1" in out.out

"""The one attempt protocol (lock, numbering, status set aside, heartbeat, outcome) with both runners: the
trainer as a subprocess and the trainer called in this process. The trainer here is the stand-in of
``sweep_fixtures.mechanics_train``; sweeps with the real trainer are in test_sweep_local.py."""

from __future__ import annotations

import json
import os
import signal
import threading
import time

import pytest

from regmix_megatron.runs.sweep import state as st
from regmix_megatron.runs.sweep.attempt import InProcessRunner, SubprocessRunner, drain, execute_run, slurm_job_id

from sweep_fixtures import mechanics_command, mechanics_train, planned  # noqa: F401

RUNNERS = ("subprocess", "in-process")


def runner_for(kind: str, run_dir):
    return SubprocessRunner(mechanics_command(run_dir)) if kind == "subprocess" else InProcessRunner(mechanics_train)


@pytest.mark.parametrize("kind", RUNNERS)
def test_retries_keep_every_attempt_log(planned, kind):
    run_dir = planned.run_dir(planned.runs[0].run_id)
    (run_dir / "fail-times").write_text("2")
    final = execute_run(run_dir, runner_for(kind, run_dir), max_attempts=3, jobid="9_1")
    assert final.status == st.DONE
    assert [a["outcome"] for a in final.attempts] == ["failed", "failed", "completed"]
    assert [a["exit_code"] for a in final.attempts] == ([7, 7, 0] if kind == "subprocess" else [None] * 3)
    assert {a["mode"] for a in final.attempts} == {kind} and {a["jobid"] for a in final.attempts} == {"9_1"}
    assert {a["pid"] for a in final.attempts} == {os.getpid()}  # the worker's pid, in both modes
    reason = "exit code 7" if kind == "subprocess" else "MechanicsFailure: failing on purpose"
    assert [a["reason"] for a in final.attempts] == [reason, reason, ""]
    for n in (1, 2, 3):
        text = (run_dir / "logs" / f"attempt-{n}.log").read_text()
        assert text.startswith(f"# regmix-megatron sweep: run {run_dir.name} attempt {n} on {st.hostname()} "
                               f"({kind} worker")
        assert ("failing on purpose" in text) == (n < 3)
    assert not (run_dir / st.LOCK_FILE).exists()
    # done is done: another execution does not start the trainer again
    execute_run(run_dir, runner_for(kind, run_dir), max_attempts=3)
    assert len((run_dir / "starts.log").read_text().split()) == 3


@pytest.mark.parametrize("kind", RUNNERS)
def test_a_divergence_is_final_and_a_failure_is_retried_until_max_attempts(planned, kind):
    diverging, failing = (planned.run_dir(r.run_id) for r in planned.runs[:2])
    (diverging / "diverge").write_text("1")
    final = execute_run(diverging, runner_for(kind, diverging), max_attempts=3)
    assert final.status == st.FAILED and final.num_attempts == 1 and "diverged" in final.reason
    assert final.attempts[0]["outcome"] == st.DIVERGED
    (failing / "fail-times").write_text("9")
    final = execute_run(failing, runner_for(kind, failing), max_attempts=2)
    assert final.status == st.FAILED and final.num_attempts == 2 and "2 of 2 attempts failed" in final.reason


@pytest.mark.parametrize("kind", RUNNERS)
def test_a_failed_attempts_status_is_set_aside_for_the_next(planned, kind):
    run_dir = planned.run_dir(planned.runs[0].run_id)
    (run_dir / "status.json").write_text(json.dumps({"status": "failed", "step": 2, "error": "OSError: disk"}))
    (run_dir / "logs").mkdir()
    (run_dir / "logs" / "attempt-1.json").write_text(json.dumps({"attempt": 1, "outcome": "failed"}))
    final = execute_run(run_dir, runner_for(kind, run_dir))
    assert final.status == st.DONE and [a["attempt"] for a in final.attempts] == [1, 2]
    kept = json.loads((run_dir / "logs" / "attempt-1.status.json").read_text())
    assert kept["error"] == "OSError: disk" and not (run_dir / "status.json").exists()


def test_a_run_held_by_a_live_worker_is_not_started_twice(planned):
    run_dir = planned.run_dir(planned.runs[0].run_id)
    assert st.acquire_lock(run_dir, {"token": "other", "host": st.hostname(), "pid": os.getpid()})
    for kind in RUNNERS:
        final = execute_run(run_dir, runner_for(kind, run_dir))
        assert final.status == st.RUNNING and not (run_dir / "starts.log").exists()


def _wait_for(predicate, timeout_s=30.0):
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_the_lock_names_the_trainer_and_its_heartbeat_advances(planned, monkeypatch):
    monkeypatch.setattr(st, "HEARTBEAT_INTERVAL_S", 0.1)
    run_dir = planned.run_dir(planned.runs[0].run_id)
    (run_dir / "sleep").write_text("1.5")
    worker = threading.Thread(target=execute_run, args=(run_dir, SubprocessRunner(mechanics_command(run_dir))))
    worker.start()
    try:
        _wait_for(lambda: (st.read_json_or_none(run_dir / st.LOCK_FILE) or {}).get("child_pid"))
        first = st.read_json_or_none(run_dir / st.LOCK_FILE)
        assert first["attempt"] == 1 and first["mode"] == "subprocess" and st.pid_alive(first["child_pid"])
        _wait_for(lambda: (st.read_json_or_none(run_dir / st.LOCK_FILE) or {}).get("heartbeat_at", 0)
                  > first["heartbeat_at"] + 0.15)
        # seen from another host, a lock with a fresh heartbeat is held
        elsewhere = dict(st.read_json_or_none(run_dir / st.LOCK_FILE), host="elsewhere")
        assert st.lock_is_fresh(elsewhere)
    finally:
        worker.join()
    assert st.read_run_state(run_dir).status == st.DONE


def test_a_stopped_subprocess_attempt_is_interrupted_and_resumes(planned):
    run_dir = planned.run_dir(planned.runs[0].run_id)
    (run_dir / "sleep").write_text("60")
    stop = threading.Event()
    out = {}
    worker = threading.Thread(target=lambda: out.update(state=execute_run(
        run_dir, SubprocessRunner(mechanics_command(run_dir), grace_s=10), stop=stop)))
    worker.start()
    _wait_for(lambda: (run_dir / "starts.log").exists())
    started = time.monotonic()
    stop.set()
    worker.join(timeout=30)
    assert not worker.is_alive() and time.monotonic() - started < 15
    _check_interrupted_then_resumed(run_dir, out["state"], SubprocessRunner(mechanics_command(run_dir)))
    assert st.attempt_records(run_dir)[0]["exit_code"] == -signal.SIGTERM


def test_a_signalled_in_process_attempt_is_interrupted_and_resumes(planned):
    run_dir = planned.run_dir(planned.runs[0].run_id)
    before = signal.getsignal(signal.SIGTERM)

    def train_then_get_terminated(path):
        if len((path / "starts.log").read_text().splitlines()) if (path / "starts.log").exists() else False:
            return mechanics_train(path)
        (path / "starts.log").write_text(f"{os.getpid()}\n")
        os.kill(os.getpid(), signal.SIGTERM)  # what `scancel` or the local executor's Ctrl-C sends
        time.sleep(60)  # never reached: the signal interrupts the trainer call

    stop = threading.Event()
    started = time.monotonic()
    state = execute_run(run_dir, InProcessRunner(train_then_get_terminated), stop=stop)
    assert time.monotonic() - started < 30 and stop.is_set()
    assert signal.getsignal(signal.SIGTERM) is before  # the handler is only there during the trainer call
    _check_interrupted_then_resumed(run_dir, state, InProcessRunner(train_then_get_terminated))
    assert st.attempt_records(run_dir)[0]["exit_code"] is None


def _check_interrupted_then_resumed(run_dir, state, runner) -> None:
    """An interrupted attempt: no outcome, marked interrupted, not counted; lock released; the run resumes."""
    assert state.status == st.PENDING and not (run_dir / st.LOCK_FILE).exists()
    (record,) = st.attempt_records(run_dir)
    assert "outcome" not in record and record["interrupted"] and record["reason"] == "stopped by the executor"
    (run_dir / "sleep").unlink(missing_ok=True)
    final = execute_run(run_dir, runner, max_attempts=1)  # the interrupted attempt does not use up the one
    assert final.status == st.DONE and [a.get("outcome") for a in final.attempts] == [None, "completed"]


def test_drain_trains_the_pending_runs_in_plan_order_and_skips_held_ones(planned):
    held = planned.runs[1].run_id
    assert st.acquire_lock(planned.run_dir(held), dict(st.holder_info(), token="someone"))
    order = []

    def train(run_dir):
        order.append(run_dir.name)
        return mechanics_train(run_dir)

    states = drain(planned, InProcessRunner(train))
    assert order == [r.run_id for r in planned.runs if r.run_id != held]
    assert [states[r.run_id].status for r in planned.runs] == [st.DONE, st.RUNNING, st.DONE, st.DONE]
    stop = threading.Event()
    stop.set()
    st.release_lock(planned.run_dir(held), "someone")
    assert drain(planned, InProcessRunner(train), stop=stop)[held].status == st.PENDING  # stopped: nothing run


def test_the_slurm_job_id_is_read_one_way():
    assert slurm_job_id({"SLURM_ARRAY_JOB_ID": "41", "SLURM_ARRAY_TASK_ID": "3", "SLURM_JOB_ID": "44"}) == "41_3"
    assert slurm_job_id({"SLURM_JOB_ID": "44"}) == "44"
    assert slurm_job_id({}) is None

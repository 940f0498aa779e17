"""Run state from files only: statuses, attempt records, locks (stale, zombie and reused pids)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

from regmix_megatron.runs.sweep import state as st

from sweep_fixtures import planned  # noqa: F401


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
    (run_dir / "logs").mkdir(exist_ok=True)  # the stale lock taken over above is kept there
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

"""Run one run of a sweep: take its lock, run attempts of the train command until done or out of attempts.

Used in-process by the local executor (one thread per parallel slot) and as the entry point of every SLURM
array task::

    python -m regmix_megatron.sweep.worker SWEEP_DIR RUN_ID --max-attempts 3 -- <train command...>

Each attempt appends a header line and the command's output to ``logs/attempt-<n>.log`` and records its
outcome in ``logs/attempt-<n>.json``; the lock's heartbeat is refreshed while the command runs. A run that is
done, failed for good, or held by a live worker elsewhere is left alone (exit 0), so the same run can never be
executed twice at once, and a finished run is never repeated.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Callable, Mapping, Sequence

from ..fileio import atomic_write_json
from . import state as st

log = logging.getLogger(__name__)


def execute_run(run_dir: str | os.PathLike, command: Sequence[str], *, env: Mapping[str, str] | None = None,
                max_attempts: int = st.DEFAULT_MAX_ATTEMPTS, jobid: str | None = None,
                stop: threading.Event | None = None,
                on_start: Callable[[str, int], None] | None = None,
                children: dict | None = None) -> st.RunState:
    """Run ``command`` for the run in ``run_dir`` until it is done or failed for good; return its final state.

    ``stop`` (set by the executor on Ctrl-C/SIGTERM) ends the loop after terminating the child; that attempt
    is recorded as interrupted. ``children`` (a dict shared by the executor) maps run id -> live Popen.
    """
    run_dir = Path(run_dir)
    run_id = run_dir.name
    token = uuid.uuid4().hex
    lock_info = {"token": token, "run_id": run_id, **st.holder_info(),
                 "jobid": jobid, "started_at": time.time()}
    if not st.acquire_lock(run_dir, lock_info):
        log.info("run %s is held by a live worker; leaving it", run_id)
        return st.read_run_state(run_dir, max_attempts)
    try:
        while True:
            current = st.read_run_state(run_dir, max_attempts, ignore_lock=True)
            if current.status in (st.DONE, st.FAILED) or (stop is not None and stop.is_set()):
                break
            attempt = max((int(a["attempt"]) for a in current.attempts), default=0) + 1
            _set_aside_status(run_dir, attempt - 1)
            lock_info.update(attempt=attempt)
            outcome = _run_attempt(run_dir, attempt, command, env, lock_info, stop, on_start, children)
            log.info("run %s attempt %d: %s", run_id, attempt, outcome)
            if outcome == st.INTERRUPTED:
                break
    finally:
        st.release_lock(run_dir, token)
    return st.read_run_state(run_dir, max_attempts)


def _set_aside_status(run_dir: Path, previous_attempt: int) -> None:
    """Keep a failed attempt's status.json with its logs, so the next attempt starts clean."""
    status = run_dir / st.STATUS_FILE
    if status.exists():
        target = run_dir / st.LOGS_DIR / f"attempt-{max(previous_attempt, 0)}.status.json"
        os.replace(status, target)


def _run_attempt(run_dir: Path, attempt: int, command: Sequence[str], env: Mapping[str, str] | None,
                 lock_info: dict, stop: threading.Event | None, on_start, children: dict | None) -> str:
    record_path = st.attempt_record_path(run_dir, attempt)
    log_path = st.attempt_log_path(run_dir, attempt)
    record = {"attempt": attempt, "run_id": run_dir.name, "host": lock_info["host"], "pid": os.getpid(),
              "jobid": lock_info.get("jobid"), "started_at": time.time(), "command": list(command)}
    atomic_write_json(record_path, record)
    full_env = dict(os.environ)
    if env:
        full_env.update(env)
    with open(log_path, "ab") as fh:
        fh.write(f"# regmix-megatron sweep: run {run_dir.name} attempt {attempt} on {record['host']} "
                 f"(worker pid {os.getpid()}, job {record['jobid']}) at "
                 f"{time.strftime('%Y-%m-%dT%H:%M:%S%z')}\n# command: {' '.join(command)}\n".encode())
        fh.flush()
        try:
            proc = subprocess.Popen(list(command), stdout=fh, stderr=subprocess.STDOUT, env=full_env,
                                    stdin=subprocess.DEVNULL)
        except OSError as exc:
            fh.write(f"# could not start: {exc}\n".encode())
            record.update(outcome=st.ATTEMPT_FAILED, exit_code=None, reason=f"could not start: {exc}",
                          ended_at=time.time())
            atomic_write_json(record_path, record)
            return st.ATTEMPT_FAILED
        if children is not None:
            children[run_dir.name] = proc
        if on_start is not None:
            on_start(run_dir.name, attempt)
        lock_info.update(child_pid=proc.pid, child_start=st.process_start(proc.pid))
        st.update_lock(run_dir, lock_info)
        while True:
            try:
                exit_code = proc.wait(timeout=st.HEARTBEAT_INTERVAL_S if stop is None else 0.5)
                break
            except subprocess.TimeoutExpired:
                if stop is not None and stop.is_set():
                    _terminate(proc)
                if time.time() - lock_info.get("_beat", 0) >= st.HEARTBEAT_INTERVAL_S:
                    lock_info["_beat"] = time.time()
                    st.update_lock(run_dir, {k: v for k, v in lock_info.items() if not k.startswith("_")})
        if children is not None:
            children.pop(run_dir.name, None)
    outcome, reason = _classify(run_dir, exit_code, stopped=stop is not None and stop.is_set())
    record.update(outcome=outcome, exit_code=exit_code, reason=reason, ended_at=time.time())
    if outcome == st.INTERRUPTED:
        record.pop("outcome")  # an interrupted attempt looks like a killed one: resumable, not a failure
        record["interrupted"] = True
    atomic_write_json(record_path, record)
    return outcome


def _classify(run_dir: Path, exit_code: int, stopped: bool) -> tuple[str, str]:
    if st.read_result(run_dir) is not None:
        return st.COMPLETED, ""
    status = st._read_json_or_none(run_dir / st.STATUS_FILE)
    if isinstance(status, dict) and status.get("status") == st.DIVERGED:
        return st.DIVERGED, st._describe(status)
    if stopped:
        return st.INTERRUPTED, "stopped by the executor"
    if isinstance(status, dict) and status.get("status"):
        return st.ATTEMPT_FAILED, st._describe(status)
    if exit_code == 0:
        return st.ATTEMPT_FAILED, f"exit code 0 but no {st.RESULT_FILE} was written"
    if exit_code < 0:
        return st.ATTEMPT_FAILED, f"killed by signal {-exit_code}"
    return st.ATTEMPT_FAILED, f"exit code {exit_code}"


def _terminate(proc: subprocess.Popen, grace_s: float = 20.0) -> None:
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        proc.kill()


def main(argv: list[str] | None = None) -> int:
    """SLURM task entry point. Exit 0 if the run is done (or held elsewhere), 1 if it failed."""
    parser = argparse.ArgumentParser(prog="python -m regmix_megatron.sweep.worker",
                                     description="run one sweep run with attempts, lock and logs")
    parser.add_argument("sweep_dir")
    parser.add_argument("run_id")
    parser.add_argument("--max-attempts", type=int, default=st.DEFAULT_MAX_ATTEMPTS)
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--" not in argv:
        parser.error("give the train command after --")
    split = argv.index("--")
    args = parser.parse_args(argv[:split])
    command = argv[split + 1:]
    if not command:
        parser.error("give the train command after --")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    run_dir = Path(args.sweep_dir) / "runs" / args.run_id
    if not run_dir.is_dir():
        print(f"error: {run_dir} does not exist: is {args.run_id} a run of {args.sweep_dir}?", file=sys.stderr)
        return 2
    jobid = os.environ.get("SLURM_ARRAY_JOB_ID")
    if jobid and os.environ.get("SLURM_ARRAY_TASK_ID"):
        jobid = f"{jobid}_{os.environ['SLURM_ARRAY_TASK_ID']}"
    jobid = jobid or os.environ.get("SLURM_JOB_ID")
    stop = threading.Event()

    def on_signal(signum, frame):  # scancel / time limit: stop the child, record the attempt as interrupted
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    final = execute_run(run_dir, command, max_attempts=args.max_attempts, jobid=jobid, stop=stop)
    print(f"run {args.run_id}: {final.status}" + (f" ({final.reason})" if final.reason else ""))
    return 0 if final.status in (st.DONE, st.RUNNING) else (130 if stop.is_set() else 1)


def which_train_command() -> list[str]:
    """``regmix-megatron`` beside this interpreter (the venv), else ``python -m regmix_megatron.cli``."""
    script = Path(sys.executable).parent / "regmix-megatron"
    if script.exists():
        return [str(script)]
    found = shutil.which("regmix-megatron")
    return [found] if found else [sys.executable, "-m", "regmix_megatron.cli"]


if __name__ == "__main__":
    sys.exit(main())

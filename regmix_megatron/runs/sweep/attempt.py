"""The attempt protocol of one sweep run, with two ways to run the trainer.

:func:`execute_run` takes the run's lock (or leaves the run alone if a live worker holds it), then runs
attempts until the run is done, failed for good, or the executor asks to stop. Each attempt

1. gets the next number and sets the previous attempt's ``status.json`` aside (``logs/attempt-<n-1>.status.json``),
2. writes ``logs/attempt-<n>.json`` (host, pid, SLURM job id, mode, command, start time) and a header line
   in ``logs/attempt-<n>.log``,
3. runs the trainer through a *runner* while a thread refreshes the lock's heartbeat,
4. is classified from the trainer's files (:func:`classify`): completed (``result.json``), diverged
   (``status.json`` "diverged": never retried), interrupted (the executor stopped it: recorded without an
   outcome, so it does not count against ``max_attempts`` and the next attempt resumes from checkpoints),
   or failed (with the reason from ``status.json``, the exception or the exit code).

Runners: :class:`SubprocessRunner` starts a command (``regmix-megatron train ...``) with its output in the
attempt log and its pid in the lock, and terminates it on stop; :class:`InProcessRunner` calls a function in
this process (output redirected at the file-descriptor level), and turns SIGTERM/SIGINT into an interrupt of
that call. :func:`drain` trains a sweep's pending runs back to back in one process. This module never imports
the trainer: the in-process entry point that supplies it is ``regmix_megatron.megatron.sweep_runner``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
import time
import traceback
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Mapping, Sequence

from ...fileio import atomic_write_json
from ..run_dir import RESULT_FILE, RunDir, read_status_or_none
from . import state as st
from .plan import Sweep

log = logging.getLogger(__name__)

SUBPROCESS, IN_PROCESS = "subprocess", "in-process"


def slurm_job_id(environ: Mapping[str, str] | None = None) -> str | None:
    """The SLURM job id of this process: ``<array job>_<task>`` in a job array, else ``SLURM_JOB_ID``."""
    env = os.environ if environ is None else environ
    array_job, task = env.get("SLURM_ARRAY_JOB_ID"), env.get("SLURM_ARRAY_TASK_ID")
    if array_job and task:
        return f"{array_job}_{task}"
    return env.get("SLURM_JOB_ID") or array_job or None


@dataclass(frozen=True)
class AttemptEnd:
    """How the trainer call of an attempt ended (the files it wrote say the rest)."""

    exit_code: int | None = None
    """The subprocess's exit code (negative: killed by that signal); None in process."""
    error: str = ""
    """Why the attempt could not run, or the exception the in-process trainer raised."""
    interrupted: bool = False
    """The executor stopped it (SIGTERM/SIGINT or ``stop``)."""


class _Lock:
    """The run's lock fields while we hold it; every write refreshes the heartbeat. Thread safe."""

    def __init__(self, run_dir: Path, info: dict):
        self.run_dir, self.info = run_dir, info
        self._mutex = threading.Lock()

    def update(self, **fields) -> None:
        with self._mutex:
            self.info.update(fields)
            st.update_lock(self.run_dir, self.info)


class _Heartbeat:
    """Refresh the lock every ``HEARTBEAT_INTERVAL_S`` while an attempt runs."""

    def __init__(self, lock: _Lock):
        self.lock = lock
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._beat, daemon=True, name=f"heartbeat-{lock.run_dir.name}")

    def _beat(self) -> None:
        while not self.done.wait(st.HEARTBEAT_INTERVAL_S):
            self.lock.update()

    def __enter__(self) -> "_Heartbeat":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.done.set()
        self.thread.join()


class SubprocessRunner:
    """Run ``command`` as a child process; its output goes to the attempt log, its pid into the lock."""

    mode = SUBPROCESS

    def __init__(self, command: Sequence[str], env: Mapping[str, str] | None = None, grace_s: float = 20.0):
        self.command = list(command)
        self.env = dict(env or {})
        self.grace_s = grace_s

    def describe(self, run_dir: Path) -> list[str]:
        return list(self.command)

    def run(self, run_dir: Path, attempt: int, log_file, lock: _Lock, stop: threading.Event) -> AttemptEnd:
        try:
            proc = subprocess.Popen(self.command, stdout=log_file, stderr=subprocess.STDOUT,
                                    env=dict(os.environ, **self.env), stdin=subprocess.DEVNULL)
        except OSError as exc:
            log_file.write(f"# could not start: {exc}\n".encode())
            return AttemptEnd(error=f"could not start: {exc}")
        lock.update(child_pid=proc.pid, child_start=st.process_start(proc.pid))
        while True:
            try:
                return AttemptEnd(exit_code=proc.wait(timeout=0.5), interrupted=stop.is_set())
            except subprocess.TimeoutExpired:
                if stop.is_set():
                    self._terminate(proc)

    def _terminate(self, proc: subprocess.Popen) -> None:
        if proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=self.grace_s)
        except subprocess.TimeoutExpired:
            proc.kill()


class InProcessRunner:
    """Call ``train(run_dir)`` in this process, with stdout/stderr (file descriptors 1 and 2) in the attempt
    log. In the main thread, SIGTERM and SIGINT during the call set ``stop`` and interrupt it."""

    mode = IN_PROCESS

    def __init__(self, train: Callable[[Path], object]):
        self.train = train

    def describe(self, run_dir: Path) -> list[str]:
        name = getattr(self.train, "__qualname__", repr(self.train))
        return [f"{getattr(self.train, '__module__', '')}.{name}", str(run_dir)]

    def run(self, run_dir: Path, attempt: int, log_file, lock: _Lock, stop: threading.Event) -> AttemptEnd:
        log_file.flush()
        try:
            with _output_to(log_file), _interrupt_on_signals(stop):
                self.train(run_dir)
        except KeyboardInterrupt:
            stop.set()
            return AttemptEnd(interrupted=True)
        except Exception as exc:  # one run's failure must not end the others: record it, keep going
            log_file.write(traceback.format_exc().encode())
            return AttemptEnd(error=f"{type(exc).__name__}: {exc}")
        return AttemptEnd(interrupted=stop.is_set())


@contextlib.contextmanager
def _interrupt_on_signals(stop: threading.Event):
    """SIGTERM/SIGINT: set ``stop`` and raise KeyboardInterrupt in the main thread (elsewhere: nothing)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        stop.set()
        raise KeyboardInterrupt(f"signal {signum}")

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


@contextlib.contextmanager
def _output_to(log_file):
    """Send this process's stdout/stderr (fd level, so C++ output and warnings too) to ``log_file``."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    os.dup2(log_file.fileno(), 1)
    os.dup2(log_file.fileno(), 2)
    try:
        yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        os.close(saved[0])
        os.close(saved[1])


Runner = SubprocessRunner | InProcessRunner


# ---- the protocol -------------------------------------------------------------------------------------------
def execute_run(run_dir: str | os.PathLike, runner: Runner, *, max_attempts: int = st.DEFAULT_MAX_ATTEMPTS,
                jobid: str | None = None, stop: threading.Event | None = None,
                sweep: Sweep | None = None) -> st.RunState:
    """Run attempts of the run in ``run_dir`` until it is done, failed for good, or ``stop`` is set; return its
    final state. A run held by a live worker is left alone (its state, ``running``, is returned).

    Holding the lock, it first sets aside the run's unreadable files (:func:`state.repair_run_files`) and, given
    the ``sweep``, restores the run's ``config.yaml`` from the plan when it is missing or damaged; each with a log
    line, also written at the top of the next attempt's log."""
    run_dir = Path(run_dir)
    stop = stop if stop is not None else threading.Event()
    token = uuid.uuid4().hex
    info = {"token": token, "run_id": run_dir.name, **st.holder_info(), "jobid": jobid, "mode": runner.mode,
            "started_at": time.time()}
    if not st.acquire_lock(run_dir, info):
        log.info("run %s is held by a live worker; leaving it", run_dir.name)
        return st.read_run_state(run_dir, max_attempts)
    lock = _Lock(run_dir, info)
    try:
        notes = st.repair_run_files(run_dir)
        if sweep is not None:
            notes += sweep.restore_run_config(run_dir.name)
        for note in notes:
            log.warning("run %s: %s", run_dir.name, note)
        while not stop.is_set():
            current = st.read_run_state(run_dir, max_attempts, ignore_lock=True)
            if current.status in (st.DONE, st.FAILED):
                break
            attempt = max((int(a["attempt"]) for a in current.attempts), default=0) + 1
            outcome = _attempt(run_dir, attempt, runner, lock, stop, notes)
            notes = []
            log.info("run %s attempt %d: %s", run_dir.name, attempt, outcome)
            if outcome == st.INTERRUPTED:
                break
    finally:
        st.release_lock(run_dir, token)
    return st.read_run_state(run_dir, max_attempts)


def _attempt(run_dir: Path, attempt: int, runner: Runner, lock: _Lock, stop: threading.Event,
             notes: Sequence[str] = ()) -> str:
    """One attempt: set the old status aside, record, run with a heartbeat, classify, record the outcome."""
    _set_aside_status(run_dir, attempt - 1)
    lock.update(attempt=attempt, child_pid=None, child_start=None)
    record_path = st.attempt_record_path(run_dir, attempt)
    record = {"attempt": attempt, "run_id": run_dir.name, "host": lock.info["host"], "pid": os.getpid(),
              "jobid": lock.info.get("jobid"), "mode": runner.mode, "started_at": time.time(),
              "command": runner.describe(run_dir)}
    atomic_write_json(record_path, record)
    with open(st.attempt_log_path(run_dir, attempt), "ab") as log_file, _Heartbeat(lock):
        log_file.write(f"# regmix-megatron sweep: run {run_dir.name} attempt {attempt} on {record['host']} "
                       f"({runner.mode} worker pid {os.getpid()}, job {record['jobid']}) at "
                       f"{time.strftime('%Y-%m-%dT%H:%M:%S%z')}\n"
                       f"# command: {' '.join(record['command'])}\n".encode())
        for note in notes:
            log_file.write(f"# before this attempt: {note}\n".encode())
        log_file.flush()
        end = runner.run(run_dir, attempt, log_file, lock, stop)
    outcome, reason = classify(run_dir, end)
    record.update(outcome=outcome, exit_code=end.exit_code, reason=reason, ended_at=time.time())
    if outcome == st.INTERRUPTED:
        record.pop("outcome")  # an interrupted attempt looks like a killed one: resumable, not a failure
        record["interrupted"] = True
    atomic_write_json(record_path, record)
    return outcome


def _set_aside_status(run_dir: Path, previous_attempt: int) -> None:
    """Keep a failed attempt's status.json with its logs, so the next attempt starts clean."""
    files = RunDir(run_dir)
    if files.status.exists():
        files.logs.mkdir(parents=True, exist_ok=True)
        os.replace(files.status, files.logs / f"attempt-{max(previous_attempt, 0)}.{files.status.name}")


def classify(run_dir: Path, end: AttemptEnd) -> tuple[str, str]:
    """(outcome, reason) of an attempt from the trainer's files and how its call ended."""
    if st.read_result(run_dir) is not None:
        return st.COMPLETED, ""
    status = read_status_or_none(run_dir)
    if status is not None and status.is_diverged:
        return st.DIVERGED, status.describe()
    if end.interrupted:
        return st.INTERRUPTED, "stopped by the executor"
    if status is not None and status.status:
        return st.ATTEMPT_FAILED, status.describe()
    if end.error:
        return st.ATTEMPT_FAILED, end.error
    if end.exit_code is None:
        return st.ATTEMPT_FAILED, f"the trainer returned without writing {RESULT_FILE}"
    if end.exit_code == 0:
        return st.ATTEMPT_FAILED, f"exit code 0 but no {RESULT_FILE} was written"
    if end.exit_code < 0:
        return st.ATTEMPT_FAILED, f"killed by signal {-end.exit_code}"
    return st.ATTEMPT_FAILED, f"exit code {end.exit_code}"


def drain(sweep: Sweep, runner: Runner, *, max_attempts: int = st.DEFAULT_MAX_ATTEMPTS,
          run_ids: Iterable[str] | None = None, stop: threading.Event | None = None) -> dict[str, st.RunState]:
    """Run every pending run this process can claim (all of the sweep's, or ``run_ids``), in plan order, one
    after the other; several processes draining the same sweep share its runs through the runs' locks."""
    stop = stop if stop is not None else threading.Event()
    jobid = slurm_job_id()
    for run_id in (list(run_ids) if run_ids is not None else sweep.run_ids()):
        if stop.is_set():
            break
        run_dir = sweep.run_dir(run_id)
        if st.read_run_state(run_dir, max_attempts).status == st.PENDING:
            execute_run(run_dir, runner, max_attempts=max_attempts, jobid=jobid, stop=stop, sweep=sweep)
    return st.read_sweep_state(sweep, max_attempts)

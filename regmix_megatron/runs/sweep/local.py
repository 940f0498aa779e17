"""Local executor: ``parallel`` workers on this machine.

Either a thread per slot, each running the attempts of one run at a time with a ``regmix-megatron train``
subprocess per attempt (``attempt.SubprocessRunner``), or (``reuse_process``) ``parallel`` long-lived
processes of ``regmix_megatron.megatron.sweep_runner`` that train runs back to back in process. Both go
through the one attempt protocol of ``sweep/attempt.py``.

Threads per run are pinned through OMP/MKL/OpenBLAS variables (torch sizes its pool from OMP_NUM_THREADS),
and the pool defaults to ``cores // threads_per_run`` so parallel runs never oversubscribe the cores.
Runs that are done, failed for good, or running elsewhere are skipped; interrupted runs resume.
"""

from __future__ import annotations

import logging
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from typing import Callable

from ...errors import ConfigError
from . import state as st
from .plan import Sweep
from .attempt import SubprocessRunner, execute_run
from .worker import which_train_command

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LocalOptions:
    parallel: int | None = None
    """Runs at once; default ``cores // threads_per_run`` (at least 1)."""
    threads_per_run: int = 1
    """CPU threads of each run (OMP_NUM_THREADS)."""
    max_attempts: int = st.DEFAULT_MAX_ATTEMPTS
    """Attempts per run before it counts as failed (interrupted attempts do not count)."""
    reuse_process: bool = False
    """Each of the ``parallel`` workers is one long-lived process that trains runs back to back through
    ``run_training`` (imports paid once), instead of one ``regmix-megatron train`` process per run."""
    wait_for_held: bool = True
    """Runs held by another live worker (another launcher, or a killed one still exiting) are waited for:
    the launch returns when they are done, or trains them itself once their holder is gone."""

    def __post_init__(self) -> None:
        if self.parallel is not None and self.parallel < 1:
            raise ConfigError(f"--parallel={self.parallel} is invalid: use 1 or more")
        if self.threads_per_run < 1:
            raise ConfigError(f"--threads-per-run={self.threads_per_run} is invalid: use 1 or more")
        if self.max_attempts < 1:
            raise ConfigError(f"--max-attempts={self.max_attempts} is invalid: use 1 or more")

    def resolved_parallel(self) -> int:
        return self.parallel or max(1, num_cores() // self.threads_per_run)


def num_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def thread_env(num_threads: int) -> dict[str, str]:
    n = str(int(num_threads))
    return {"OMP_NUM_THREADS": n, "MKL_NUM_THREADS": n, "OPENBLAS_NUM_THREADS": n, "NUMEXPR_NUM_THREADS": n}


def train_command(sweep: Sweep, run_id: str) -> list[str]:
    return [*which_train_command(), "train", str(sweep.run_config_path(run_id)),
            "--output-dir", str(sweep.run_dir(run_id))]


def runs_to_launch(sweep: Sweep, max_attempts: int) -> list[str]:
    """Pending runs in plan order (done, failed-for-good and running runs are skipped)."""
    states = st.read_sweep_state(sweep, max_attempts)
    return [rid for rid, s in states.items() if s.status == st.PENDING]


#: The in-process worker: the Megatron edge supplies the trainer, ``sweep/attempt.py`` the protocol.
IN_PROCESS_MODULE = "regmix_megatron.megatron.sweep_runner"


def inprocess_command(sweep: Sweep, options: LocalOptions) -> list[str]:
    return [sys.executable, "-m", IN_PROCESS_MODULE, str(sweep.root), "--max-attempts", str(options.max_attempts)]


def describe_local(sweep: Sweep, options: LocalOptions) -> list[str]:
    """The exact commands ``launch_local`` would run (for ``--dry-run``)."""
    env = " ".join(f"{k}={v}" for k, v in thread_env(options.threads_per_run).items())
    pending = runs_to_launch(sweep, options.max_attempts)
    if options.reuse_process:
        return [f"# local executor, reused processes: {options.resolved_parallel()} process(es) drain "
                f"{len(pending)} pending run(s), each run claimed by its lock; output of attempt n goes to "
                "runs/<id>/logs/attempt-<n>.log"] + \
               [f"{env} {shlex.join(inprocess_command(sweep, options))}"] * options.resolved_parallel()
    lines = [f"# local executor: {len(pending)} pending run(s), {options.resolved_parallel()} at a time, "
             f"{options.threads_per_run} thread(s) each, up to {options.max_attempts} attempt(s); output of "
             "attempt n goes to runs/<id>/logs/attempt-<n>.log"]
    lines += [f"{env} {shlex.join(train_command(sweep, rid))}" for rid in pending]
    return lines


def launch_local(sweep: Sweep, options: LocalOptions,
                 on_run_end: Callable[[str, st.RunState], None] | None = None) -> dict[str, st.RunState]:
    """Run every pending run; return the final state of every run of the sweep.

    ``on_run_end(run_id, state)`` is called when a run's worker is done with it (done, failed for good, or
    left pending by an interruption). SIGTERM/SIGINT stop the pool: running children are terminated, their
    attempts recorded as interrupted, and a re-launch resumes them. Runs held by another live worker are waited
    for and taken over if their holder dies (``options.wait_for_held``), also when the holder dies while this
    launch is busy with other runs, so a launch ends with no run left running or left pending untried.
    """
    st.write_launch_settings(sweep.root, {"executor": "local", "max_attempts": options.max_attempts,
                                          "parallel": options.resolved_parallel(),
                                          "threads_per_run": options.threads_per_run,
                                          "reuse_process": options.reuse_process})
    launch = _launch_reused if options.reuse_process else _launch_pool
    tried: set[str] = set()
    while True:
        states = launch(sweep, options, on_run_end, tried)
        held = [rid for rid, s in states.items() if s.status == st.RUNNING]
        freed = [rid for rid, s in states.items() if s.status == st.PENDING and rid not in tried]
        if not options.wait_for_held or not (held or freed):
            return states
        if held:
            _wait_for_held(sweep, options, held)  # then launch again: take over what their holders left


#: How often a launch re-reads runs held by other workers while it waits for them.
HELD_POLL_S = 1.0


def _wait_for_held(sweep: Sweep, options: LocalOptions, held: list[str]) -> None:
    """Block until none of ``held`` is running any more (done, failed, or pending because its holder died)."""
    def describe(rid: str, lock) -> str:
        lock = lock or {}
        return f"{rid} (host {lock.get('host')}, pid {lock.get('pid')}, job {lock.get('jobid')})"

    states = {rid: st.read_run_state(sweep.run_dir(rid), options.max_attempts) for rid in held}
    log.info("waiting for %d run(s) held by other workers: %s", len(held),
             ", ".join(describe(rid, s.lock) for rid, s in states.items()))
    last_note = time.monotonic()
    while True:
        still = [rid for rid in held
                 if st.read_run_state(sweep.run_dir(rid), options.max_attempts).status == st.RUNNING]
        if not still:
            return
        if time.monotonic() - last_note > 300:
            log.info("still waiting for %d run(s) held by other workers: %s", len(still), ", ".join(still))
            last_note = time.monotonic()
        time.sleep(HELD_POLL_S)


def _launch_pool(sweep: Sweep, options: LocalOptions, on_run_end, tried: set[str]) -> dict[str, st.RunState]:
    """A thread per parallel slot, each running ``regmix-megatron train`` subprocesses (``attempt.py``)."""
    pending = runs_to_launch(sweep, options.max_attempts)
    tried.update(pending)
    parallel = options.resolved_parallel()
    env = thread_env(options.threads_per_run)
    stop = threading.Event()
    log.info("local launch: %d pending of %d runs, %d at a time, %d thread(s) each",
             len(pending), len(sweep.runs), parallel, options.threads_per_run)

    previous = {}
    if threading.current_thread() is threading.main_thread():
        def on_signal(signum, frame):
            log.warning("signal %d: stopping the running run(s); re-launch to resume", signum)
            stop.set()
        for sig in (signal.SIGTERM, signal.SIGINT):
            previous[sig] = signal.signal(sig, on_signal)
    try:
        def one(run_id: str) -> st.RunState:
            if stop.is_set():
                return st.read_run_state(sweep.run_dir(run_id), options.max_attempts)
            return execute_run(sweep.run_dir(run_id), SubprocessRunner(train_command(sweep, run_id), env=env),
                               max_attempts=options.max_attempts, stop=stop, sweep=sweep)

        with ThreadPoolExecutor(max_workers=parallel, thread_name_prefix="sweep") as pool:
            futures = {pool.submit(one, rid): rid for rid in pending}
            for fut in as_completed(futures):
                final = fut.result()
                if on_run_end and final.status != st.RUNNING:  # running: held by another live worker, not ended
                    on_run_end(futures[fut], final)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if stop.is_set():
        raise KeyboardInterrupt
    return st.read_sweep_state(sweep, options.max_attempts)


def _launch_reused(sweep: Sweep, options: LocalOptions, on_run_end, tried: set[str]) -> dict[str, st.RunState]:
    """``parallel`` long-lived processes drain the pending runs (``megatron/sweep_runner.py``)."""
    pending = runs_to_launch(sweep, options.max_attempts)
    tried.update(pending)
    num_procs = min(options.resolved_parallel(), len(pending))
    env = dict(os.environ, **thread_env(options.threads_per_run))
    procs = [subprocess.Popen(inprocess_command(sweep, options), env=env, stdin=subprocess.DEVNULL,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for _ in range(num_procs)]
    stop = threading.Event()
    previous = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            previous[sig] = signal.signal(sig, lambda signum, frame: stop.set())
    reported: set[str] = set()
    try:
        while any(p.poll() is None for p in procs):
            if stop.is_set():
                for p in procs:
                    p.terminate()
                for p in procs:
                    p.wait()
                raise KeyboardInterrupt
            time.sleep(0.5)
            if on_run_end:
                _report(sweep, options, pending, reported, on_run_end)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if on_run_end:
        _report(sweep, options, pending, reported, on_run_end)
    bad = [p.returncode for p in procs if p.returncode != 0]
    if bad:
        log.warning("%d in-process worker(s) exited with %s; re-launch to retry their runs", len(bad), bad)
    return st.read_sweep_state(sweep, options.max_attempts)


def _report(sweep, options, pending, reported, on_run_end) -> None:
    for rid in pending:
        if rid in reported:
            continue
        s = st.read_run_state(sweep.run_dir(rid), options.max_attempts)
        if s.status in (st.DONE, st.FAILED):
            reported.add(rid)
            on_run_end(rid, s)

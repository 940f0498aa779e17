"""One process, many proxies: run a sweep's pending runs back to back through ``run_training``.

A fresh ``regmix-megatron train`` process per proxy pays Python start-up and the torch/megatron imports
(seconds) every time; for tiny proxies that is most of the run (see bench/bench_sweep.py). Here one process
imports once and trains run after run. Several such processes share a sweep safely: each claims a run by
taking its lock (the same lock, attempt records and per-attempt logs as the subprocess worker), so they
drain the pending runs between them without coordination::

    python -m regmix_megatron.sweep.inprocess SWEEP_DIR [--max-attempts 3] [--runs RUN_ID ...]

Used by ``sweep launch --executor local --runs-per-process``; the trainer is the real one, only the
process boundary is gone. The megatron import happens inside :func:`drain` (this module is not part of the
pure core's import graph).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
import threading
import time
import traceback
import uuid
from pathlib import Path
from typing import Iterable

from ..fileio import atomic_write_json
from . import state as st
from .plan import Sweep

log = logging.getLogger(__name__)


@contextlib.contextmanager
def _output_to(path: Path):
    """Send this process's stdout/stderr (fd level, so C++ and warnings too) and logging to ``path``."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with open(path, "ab") as fh:
        os.dup2(fh.fileno(), 1)
        os.dup2(fh.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


class _Heartbeat:
    """Refresh the lock of the run being trained while ``run_training`` blocks the main thread."""

    def __init__(self, run_dir: Path, info: dict):
        self.run_dir, self.info = run_dir, info
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._beat, daemon=True)

    def _beat(self):
        while not self.stop.wait(st.HEARTBEAT_INTERVAL_S):
            st.update_lock(self.run_dir, self.info)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()


def drain(sweep: Sweep, max_attempts: int = st.DEFAULT_MAX_ATTEMPTS,
          run_ids: Iterable[str] | None = None) -> dict[str, st.RunState]:
    """Train every pending run this process can claim (all of the sweep's, or ``run_ids``), in plan order."""
    from ..megatron.train import run_training
    from ..train_config import load_train_config

    jobid = os.environ.get("SLURM_JOB_ID")
    for run_id in (list(run_ids) if run_ids is not None else sweep.run_ids()):
        run_dir = sweep.run_dir(run_id)
        if st.read_run_state(run_dir, max_attempts).status != st.PENDING:
            continue
        token = uuid.uuid4().hex
        info = {"token": token, "run_id": run_id, **st.holder_info(), "jobid": jobid,
                "started_at": time.time(), "mode": "in-process"}
        if not st.acquire_lock(run_dir, info):
            continue  # another process claimed it
        try:
            while True:
                current = st.read_run_state(run_dir, max_attempts, ignore_lock=True)
                if current.status != st.PENDING:
                    break
                attempt = max((int(a["attempt"]) for a in current.attempts), default=0) + 1
                status = run_dir / st.STATUS_FILE
                if status.exists():
                    os.replace(status, run_dir / st.LOGS_DIR / f"attempt-{attempt - 1}.status.json")
                info["attempt"] = attempt
                st.update_lock(run_dir, info)
                outcome = _attempt(run_dir, attempt, info, run_training, load_train_config)
                log.info("run %s attempt %d: %s", run_id, attempt, outcome)
        finally:
            st.release_lock(run_dir, token)
    return st.read_sweep_state(sweep, max_attempts)


def _attempt(run_dir: Path, attempt: int, info: dict, run_training, load_train_config) -> str:
    record_path = st.attempt_record_path(run_dir, attempt)
    log_path = st.attempt_log_path(run_dir, attempt)
    config_path = run_dir / "config.yaml"
    record = {"attempt": attempt, "run_id": run_dir.name, "host": info["host"], "pid": os.getpid(),
              "jobid": info.get("jobid"), "started_at": time.time(), "mode": "in-process",
              "command": ["run_training", str(config_path)]}
    atomic_write_json(record_path, record)
    reason = ""
    with _output_to(log_path), _Heartbeat(run_dir, info):
        print(f"# regmix-megatron sweep: run {run_dir.name} attempt {attempt} on {info['host']} (in-process "
              f"worker pid {os.getpid()}, job {info.get('jobid')}) at {time.strftime('%Y-%m-%dT%H:%M:%S%z')}",
              flush=True)
        try:
            result = run_training(load_train_config(config_path, output_dir=run_dir))
        except Exception as exc:  # one run's failure must not end the others: record it, keep going
            traceback.print_exc()
            result, reason = None, f"{type(exc).__name__}: {exc}"
    if st.read_result(run_dir) is not None:
        outcome = st.COMPLETED
    elif isinstance(result, dict) and result.get("status") == st.DIVERGED:
        outcome, reason = st.DIVERGED, st._describe(result)
    else:
        outcome = st.ATTEMPT_FAILED
        reason = reason or "run_training returned without writing result.json"
    record.update(outcome=outcome, reason=reason, exit_code=None, ended_at=time.time())
    atomic_write_json(record_path, record)
    return outcome


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m regmix_megatron.sweep.inprocess",
                                     description="train a sweep's pending runs back to back in this process")
    parser.add_argument("sweep_dir")
    parser.add_argument("--max-attempts", type=int, default=st.DEFAULT_MAX_ATTEMPTS)
    parser.add_argument("--runs", nargs="*", default=None, metavar="RUN_ID", help="only these runs")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        datefmt="%H:%M:%S")
    sweep = Sweep.load(args.sweep_dir)
    states = drain(sweep, args.max_attempts, args.runs)
    counts = st.count_statuses(states.values())
    print(" ".join(f"{k}={v}" for k, v in counts.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())

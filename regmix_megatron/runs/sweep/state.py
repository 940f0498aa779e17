"""The state of every run of a sweep, read from its files only (no database, no scheduler query).

A run is
- ``done``     when the trainer wrote ``result.json`` with status "completed";
- ``failed``   when the trainer wrote ``status.json`` "diverged" (deterministic: retrying cannot help), or
               ``max_attempts`` attempts failed;
- ``running``  when ``lock.json`` is fresh: on this host its holder (or the trainer it started) is alive, not
               a zombie and not a later process given the same pid; on another host its heartbeat is recent;
- ``pending``  otherwise (never started, interrupted, or failed with attempts left).

Every attempt leaves ``logs/attempt-<n>.log`` (its output, with a header line) and ``logs/attempt-<n>.json``
(host, pid, SLURM job id, start time; outcome and exit code once it ends). An attempt without an outcome was
interrupted (the executor was killed): it does not count against ``max_attempts``, and the next attempt
resumes from the trainer's checkpoints.

A per-run file that cannot be read (a truncated ``result.json`` or ``status.json``, a garbled lock or attempt
record) never costs attempts: the worker that takes the run sets it aside as ``<name>.corrupt-<n>`` (kept for
inspection; :func:`repair_run_files`), logs a line, and the run is redone, resuming from its checkpoints.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import re
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

from ...fileio import atomic_write_json, set_aside
from ..run_dir import LOCK_FILE, RunDir, RunResult, read_json_or_none, read_result_or_none, read_status_or_none
from .plan import Sweep

log = logging.getLogger(__name__)

DONE, RUNNING, FAILED, PENDING = "done", "running", "failed", "pending"
STATUSES = (DONE, RUNNING, FAILED, PENDING)

LAUNCH_FILE = "launch.json"

DEFAULT_MAX_ATTEMPTS = 3
#: The holder of a lock rewrites its heartbeat this often ...
HEARTBEAT_INTERVAL_S = 10.0
#: ... and a lock whose heartbeat is older than this is stale (its holder died).
STALE_AFTER_S = 90.0

#: Attempt outcomes.
COMPLETED, ATTEMPT_FAILED, DIVERGED, INTERRUPTED = "completed", "failed", "diverged", "interrupted"

_ATTEMPT_RE = re.compile(r"^attempt-(\d+)\.json$")


@dataclass(frozen=True)
class RunState:
    run_id: str
    status: str
    attempts: tuple[Mapping[str, Any], ...] = ()
    """Attempt records, oldest first (``outcome`` missing while running or if interrupted)."""
    reason: str = ""
    """Why a run failed (or what the last failed attempt said)."""
    lock: Mapping[str, Any] | None = None
    log_path: str | None = None
    """The latest attempt's log."""
    result: RunResult | None = field(default=None, repr=False)
    """The trainer's ``result.json`` of a run that is done."""

    @property
    def num_attempts(self) -> int:
        return len(self.attempts)

    @property
    def num_failed_attempts(self) -> int:
        return sum(1 for a in self.attempts if a.get("outcome") == ATTEMPT_FAILED)


def hostname() -> str:
    return socket.gethostname()


def _proc_stat(pid: int) -> list[str] | None:
    """Fields of ``/proc/<pid>/stat`` after the command name (state first), or None where there is no procfs."""
    try:
        text = Path(f"/proc/{int(pid)}/stat").read_text()
    except (OSError, ValueError, TypeError):
        return None
    return text[text.rfind(")") + 2:].split()


def _start_of(fields: list[str] | None) -> int | None:
    try:
        return int(fields[19]) if fields else None
    except (IndexError, ValueError):
        return None


def process_start(pid: int) -> int | None:
    """When process ``pid`` started (clock ticks since boot), to tell it from a later process given the same
    pid; None where procfs is missing."""
    return _start_of(_proc_stat(pid))


def pid_alive(pid: int, start: int | None = None) -> bool:
    """Whether ``pid`` is a live process, and, given ``start`` (from :func:`process_start`), the same one.

    A killed process is a zombie until its parent (or init, for an orphan) reaps it, and ``kill(pid, 0)``
    still succeeds on a zombie; a container's init may take seconds to reap. Zombies count as dead.
    """
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    except (OverflowError, ValueError, TypeError):
        return False
    fields = _proc_stat(pid)
    if fields is None:
        return True  # no procfs (not Linux): kill(pid, 0) is all we know
    if not fields or fields[0] in ("Z", "X", "x"):
        return False
    return start is None or _start_of(fields) in (None, start)


def holder_info() -> dict:
    """The fields naming this process in a lock: host, pid and the pid's start time."""
    return {"host": hostname(), "pid": os.getpid(), "pid_start": process_start(os.getpid())}


def lock_is_fresh(lock: Mapping[str, Any] | None, now: float | None = None) -> bool:
    """Whether a lock's holder still works on the run.

    On this host the processes decide: the holder, or the trainer it started, is alive (a holder killed
    with its trainer still running must not let a second trainer into the same directory). Elsewhere the
    heartbeat decides: it is refreshed every ``HEARTBEAT_INTERVAL_S`` and stale after ``STALE_AFTER_S``.
    """
    if not isinstance(lock, Mapping):
        return False
    if lock.get("host") == hostname():
        return pid_alive(lock.get("pid", -1), lock.get("pid_start")) or (
            lock.get("child_pid") is not None and pid_alive(lock["child_pid"], lock.get("child_start")))
    now = time.time() if now is None else now
    try:
        age = now - float(lock.get("heartbeat_at", 0))
    except (TypeError, ValueError):
        return False
    return age <= STALE_AFTER_S


def attempt_records(run_dir: Path) -> list[dict]:
    logs = RunDir(run_dir).logs
    if not logs.is_dir():
        return []
    found = []
    for p in logs.iterdir():
        m = _ATTEMPT_RE.match(p.name)
        if m:
            rec = read_json_or_none(p) or {}
            rec.setdefault("attempt", int(m.group(1)))
            found.append(rec)
    return sorted(found, key=lambda r: int(r["attempt"]))


def attempt_log_path(run_dir: Path, attempt: int) -> Path:
    return RunDir(run_dir).logs / f"attempt-{attempt}.log"


def attempt_record_path(run_dir: Path, attempt: int) -> Path:
    return RunDir(run_dir).logs / f"attempt-{attempt}.json"


def read_result(run_dir: Path) -> RunResult | None:
    """The run's ``result.json`` when it is a completed run's, with the per-domain losses (the run is done)."""
    return read_result_or_none(run_dir)


def repair_run_files(run_dir: Path) -> list[str]:
    """Set aside the run's files that cannot be read (``<name>.corrupt-<n>``, kept for inspection): a
    ``result.json`` that is not a completed run's, a ``status.json`` or an attempt record that is not a JSON
    mapping. Returns one line per file set aside. Call it holding the run's lock."""
    notes = []

    def aside(path: Path, why: str) -> Path:
        moved = set_aside(path)
        notes.append(f"{path.relative_to(run_dir)} {why}: set aside as {moved.name}; the run is redone from its "
                     "checkpoints")
        return moved

    files = RunDir(run_dir)
    if files.result.exists() and read_result_or_none(run_dir) is None:
        aside(files.result, "is unreadable or not a completed run's result")
    if files.status.exists() and not isinstance(read_json_or_none(files.status), dict):
        aside(files.status, "is unreadable")
    logs = files.logs
    for path in sorted(logs.iterdir()) if logs.is_dir() else []:
        m = _ATTEMPT_RE.match(path.name)
        if m and not isinstance(read_json_or_none(path), dict):
            moved = aside(path, "is unreadable")
            # keep the attempt's number taken (its log is attempt-<n>.log); without an outcome it costs nothing
            atomic_write_json(path, {"attempt": int(m.group(1)), "record_set_aside": moved.name})
    return notes


def read_run_state(run_dir: str | os.PathLike, max_attempts: int = DEFAULT_MAX_ATTEMPTS,
                   now: float | None = None, ignore_lock: bool = False) -> RunState:
    """``ignore_lock``: the caller holds the lock (a worker deciding whether to start another attempt)."""
    run_dir = Path(run_dir)
    run_id = run_dir.name
    attempts = tuple(attempt_records(run_dir))
    log_path = str(attempt_log_path(run_dir, attempts[-1]["attempt"])) if attempts else None
    common = dict(run_id=run_id, attempts=attempts, log_path=log_path)
    result = read_result(run_dir)
    if result is not None:
        return RunState(status=DONE, result=result, **common)
    status = read_status_or_none(run_dir)
    if status is not None and status.is_diverged:
        return RunState(status=FAILED, reason=status.describe(), **common)
    lock = None if ignore_lock else read_json_or_none(RunDir(run_dir).lock)
    if lock_is_fresh(lock, now):
        return RunState(status=RUNNING, lock=lock, **common)
    failed = [a for a in attempts if a.get("outcome") == ATTEMPT_FAILED]
    reason = str(failed[-1].get("reason", "")) if failed else ""
    if status is not None and status.status:
        reason = status.describe()
    if len(failed) >= max_attempts:
        return RunState(status=FAILED, reason=f"{len(failed)} of {max_attempts} attempts failed; last: {reason}",
                        **common)
    return RunState(status=PENDING, reason=reason, **common)


def read_sweep_state(sweep: Sweep, max_attempts: int | None = None) -> dict[str, RunState]:
    """States of every planned run, in plan order."""
    if max_attempts is None:
        max_attempts = read_launch_settings(sweep.root).get("max_attempts", DEFAULT_MAX_ATTEMPTS)
    now = time.time()
    return {r.run_id: read_run_state(sweep.run_dir(r.run_id), max_attempts, now) for r in sweep.runs}


def count_statuses(states: Iterable[RunState]) -> dict[str, int]:
    counts = {s: 0 for s in STATUSES}
    for st in states:
        counts[st.status] += 1
    return counts


# ---- launch settings ----------------------------------------------------------------------------------
def read_launch_settings(root: str | os.PathLike) -> dict:
    obj = read_json_or_none(Path(root) / LAUNCH_FILE)
    return obj if isinstance(obj, dict) else {}


def write_launch_settings(root: str | os.PathLike, settings: Mapping[str, Any]) -> None:
    atomic_write_json(Path(root) / LAUNCH_FILE, dict(settings, written_at=time.time()))


# ---- locks ---------------------------------------------------------------------------------------------
def acquire_lock(run_dir: Path, info: Mapping[str, Any]) -> bool:
    """Take the run's lock (exclusive create). A stale lock is moved aside first. False if someone holds it."""
    path = RunDir(run_dir).lock
    run_dir.mkdir(parents=True, exist_ok=True)
    body = json.dumps(dict(info, heartbeat_at=time.time()), indent=2) + "\n"
    for _ in range(3):
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            held = read_json_or_none(path)
            if lock_is_fresh(held):
                return False
            if held is None:  # being written right now, or garbage: give a writer a moment
                time.sleep(0.2)
                held = read_json_or_none(path)
                if lock_is_fresh(held):
                    return False
            with contextlib.suppress(FileNotFoundError):  # only one contender wins the rename
                if not isinstance(held, dict):
                    moved = set_aside(path)
                    log.warning("run %s: %s is unreadable (garbled): set aside as %s", run_dir.name, LOCK_FILE,
                                moved.name)
                else:  # a dead holder's lock: kept with the run's logs
                    logs = RunDir(run_dir).logs
                    logs.mkdir(exist_ok=True)
                    os.replace(path, logs / f"stale-lock-{time.time():.0f}-{os.getpid()}.json")
            continue
        with os.fdopen(fd, "w") as fh:
            fh.write(body)
        return True
    return False


def update_lock(run_dir: Path, info: Mapping[str, Any]) -> None:
    """Rewrite the lock we hold (new heartbeat, child pid, attempt)."""
    atomic_write_json(RunDir(run_dir).lock, dict(info, heartbeat_at=time.time()))


def release_lock(run_dir: Path, owner_token: str) -> None:
    path = RunDir(run_dir).lock
    held = read_json_or_none(path)
    if isinstance(held, dict) and held.get("token") == owner_token:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def is_finite_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)

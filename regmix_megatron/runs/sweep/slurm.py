"""SLURM executor: one job array over the pending runs, a readable generated sbatch script.

``SWEEP_DIR/slurm/launch-<k>.sbatch`` maps ``SLURM_ARRAY_TASK_ID`` to a run id through the list file
``slurm/launch-<k>.runs`` (line i+1 = task i), sizes threads from ``SLURM_CPUS_PER_TASK``, and runs the train
command (through ``torchrun`` when a task has several GPUs) under ``regmix_megatron.runs.sweep.worker``, which keeps
per-attempt logs, the lock and retries. ``%throttle`` in ``--array`` caps how many tasks run at once.

Why not submitit: it pickles a Python callable per job, so the job script says nothing a person can read or
rerun by hand; a generated sbatch script is the interface our users already know, and it is all we need.

Nothing a user or a file gives can become a line of the script: every option (flags, or ``executor.slurm`` in a
pipeline YAML) is checked for its type and for control characters (a newline would end the ``#SBATCH`` comment
and start a shell command), errors naming the flag or key; values in ``#SBATCH`` lines are double-quoted when
they hold anything but plain characters (sbatch reads quotes and backslash escapes there, and shell characters
mean nothing to it); the sweep directory, which the ``--output`` path and the shell variables hold, must be free
of control characters and backslashes (SLURM turns off its filename patterns on a backslash) and its ``%`` is
doubled; shell variables are ``shlex``-quoted.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shlex
import subprocess
import sys
import time
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from ...errors import ConfigError, RegmixError
from ...fileio import atomic_write_text
from . import state as st
from .plan import Sweep

log = logging.getLogger(__name__)

SLURM_DIR = "slurm"
JOBS_FILE = "jobs.jsonl"


class SlurmError(RegmixError):
    """sbatch/squeue failed or the cluster does not answer."""


#: How each option is spelled on the command line (``sweep launch``).
FLAGS = {"cpus_per_task": "--cpus-per-task", "mem": "--mem", "time": "--time", "gpus_per_task": "--gpus-per-task",
         "partition": "--partition", "account": "--account", "throttle": "--throttle", "job_name": "--job-name",
         "max_attempts": "--max-attempts", "extra_sbatch_args": "--sbatch-arg"}
#: Characters a ``#SBATCH`` value may hold unquoted.
_PLAIN = re.compile(r"[A-Za-z0-9_.,:+@/=-]+", re.ASCII)
_OPTION = re.compile(r"--[A-Za-z][A-Za-z0-9-]*(=.*)?", re.ASCII | re.DOTALL)


def control_characters(text: str) -> list[str]:
    """The control, format and line/paragraph-separator characters of ``text`` (``repr`` of each, once)."""
    bad = [c for c in text if unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp")]
    return sorted({repr(c) for c in bad})


@dataclass(frozen=True)
class SlurmOptions:
    """How the SLURM executor submits a sweep's job array: ``sweep launch --executor slurm`` flags, or a pipeline
    config's ``executor.slurm`` mapping (:meth:`from_dict`). Every value is checked once, here, before it can
    become a line of the job script."""

    cpus_per_task: int = 1
    """CPU cores per array task (``--cpus-per-task``); the task's threads are sized from it."""
    mem: str | None = None
    """Memory per task, SLURM syntax (``4G``); default: the partition's default."""
    time: str | None = None
    """Time limit per task (``HH:MM:SS`` or ``D-HH:MM:SS``)."""
    gpus_per_task: int = 0
    """GPUs per task; with more than one the task runs ``torchrun --nproc-per-node <gpus>``."""
    partition: str | None = None
    """The partition to submit to (default: the cluster's default)."""
    account: str | None = None
    """The account to charge (default: the user's default)."""
    throttle: int = 32
    """Array tasks running at once (``--array=0-N%throttle``)."""
    job_name: str = "regmix-sweep"
    """The job array's name in ``squeue``."""
    max_attempts: int = st.DEFAULT_MAX_ATTEMPTS
    """Attempts of a run before it is failed for good (the worker retries within the task)."""
    extra_sbatch_args: tuple[str, ...] = field(default=())
    """More ``#SBATCH`` options, ``--option`` or ``--option=value`` each (e.g. ``--qos=high``)."""
    origin: str = field(default="", compare=False, repr=False)
    """Where the options come from, for errors: empty for ``sweep launch`` flags (errors name ``--job-name``),
    else a prefix such as ``pipeline.yaml: executor.slurm`` (errors name ``...executor.slurm.job_name``)."""

    def name(self, key: str) -> str:
        """How the user spelled option ``key``."""
        return f"{self.origin}.{key}" if self.origin else FLAGS[key]

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str, throttle: int | None = None,
                  max_attempts: int | None = None) -> "SlurmOptions":
        """Options from a config's mapping (``executor.slurm``), parsed and checked once. ``source`` names the
        mapping in errors (``pipeline.yaml: executor.slurm``: errors name ``...executor.slurm.<key>``);
        ``throttle`` is the default of the mapping's own ``throttle``; ``max_attempts``, when given, is the
        executor's (it is not a SLURM key)."""
        if not isinstance(data, Mapping):
            raise ConfigError(f"{source}={data!r} is invalid: give a mapping of SLURM options, e.g. "
                              "{partition: gpu, time: '01:00:00'}")
        fields = dict(data)
        if isinstance(fields.get("extra_sbatch_args"), list):
            fields["extra_sbatch_args"] = tuple(fields["extra_sbatch_args"])
        if throttle is not None:
            fields.setdefault("throttle", throttle)
        if max_attempts is not None:
            fields["max_attempts"] = max_attempts
        known = set(cls.__dataclass_fields__) - {"origin", "max_attempts"}
        unknown = sorted(set(fields) - known - {"max_attempts"})
        if unknown:
            raise ConfigError(f"{source}={unknown!r} is invalid: unknown SLURM option(s); known: {sorted(known)}")
        return cls(**fields, origin=source)

    def __post_init__(self) -> None:
        for key, least in (("cpus_per_task", 1), ("gpus_per_task", 0), ("throttle", 1), ("max_attempts", 1)):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                raise ConfigError(f"{self.name(key)}={value!r} is invalid: use an integer >= {least}")
        for key in ("mem", "time", "partition", "account", "job_name"):
            self._check_text(key, getattr(self, key), optional=key != "job_name")
        if self.mem is not None and not re.fullmatch(r"\d+[KMGT]?", self.mem, re.ASCII):
            raise ConfigError(f"{self.name('mem')}={self.mem!r} is invalid: use SLURM syntax such as 4G or 4000M")
        if self.time is not None and not re.fullmatch(r"(\d+-)?\d+(:\d\d){0,2}", self.time, re.ASCII):
            raise ConfigError(f"{self.name('time')}={self.time!r} is invalid: use HH:MM:SS or D-HH:MM:SS")
        for key in ("partition", "account"):
            value = getattr(self, key)
            if value is not None and any(c.isspace() for c in value):
                raise ConfigError(f"{self.name(key)}={value!r} is invalid: SLURM {key} names hold no spaces")
        args = self.extra_sbatch_args
        if isinstance(args, str) or not isinstance(args, (tuple, list)):
            raise ConfigError(f"{self.name('extra_sbatch_args')}={args!r} is invalid: give a list of sbatch "
                              "options such as ['--qos=high']")
        for arg in args:
            self._check_text("extra_sbatch_args", arg, optional=False)
            if not _OPTION.fullmatch(arg):
                raise ConfigError(f"{self.name('extra_sbatch_args')}={arg!r} is invalid: give a long sbatch option "
                                  "as --OPTION or --OPTION=VALUE, such as --qos=high")

    def _check_text(self, key: str, value: Any, *, optional: bool) -> None:
        if value is None and optional:
            return
        if not isinstance(value, str) or not value:
            raise ConfigError(f"{self.name(key)}={value!r} is invalid: give a non-empty string")
        bad = control_characters(value)
        if bad:
            raise ConfigError(f"{self.name(key)}={value!r} is invalid: it holds control character(s) "
                              f"{', '.join(bad)}; a newline in a job script option would start a shell "
                              "command: remove them")

    def sbatch_options(self, num_runs: int) -> list[str]:
        """The ``#SBATCH`` options of a job array over ``num_runs`` runs (values quoted where needed)."""
        v = sbatch_value
        sb = [f"--job-name={v(self.job_name)}",
              f"--array=0-{num_runs - 1}%{min(self.throttle, num_runs)}",
              "--nodes=1",
              "--ntasks=1",
              f"--cpus-per-task={self.cpus_per_task}"]
        if self.mem:
            sb.append(f"--mem={self.mem}")
        if self.time:
            sb.append(f"--time={self.time}")
        if self.gpus_per_task:
            sb.append(f"--gres=gpu:{self.gpus_per_task}")
        if self.partition:
            sb.append(f"--partition={v(self.partition)}")
        if self.account:
            sb.append(f"--account={v(self.account)}")
        for arg in self.extra_sbatch_args:
            name, sep, value = arg.partition("=")
            sb.append(f"{name}={v(value)}" if sep else name)
        return sb


def sbatch_value(value: str) -> str:
    """``value`` as sbatch reads it from a ``#SBATCH`` line: as is when plain, else in double quotes with
    backslashes and quotes escaped (sbatch's own rules; a ``#`` outside quotes would start a comment)."""
    if _PLAIN.fullmatch(value):
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def check_script_path(path: Path, what: str) -> None:
    """A path that goes into the job script: no control characters, no backslash (see the module docstring)."""
    text = str(path)
    bad = control_characters(text)
    if bad or "\\" in text:
        why = f"control character(s) {', '.join(bad)}" if bad else "a backslash"
        raise ConfigError(f"{what} {text!r} holds {why}: SLURM cannot name its log files under such a path "
                          "(and a newline would start a shell command in the job script); move it to a plain path")


@dataclass(frozen=True)
class SlurmLaunch:
    """What one launch submits (or would submit, with ``--dry-run``)."""

    index: int
    run_ids: tuple[str, ...]
    script_path: Path
    runs_path: Path
    script: str

    def sbatch_command(self) -> list[str]:
        return ["sbatch", "--parsable", str(self.script_path)]


def _python() -> str:
    return sys.executable


def build_launch(sweep: Sweep, options: SlurmOptions, run_ids: list[str]) -> SlurmLaunch:
    slurm_dir = sweep.root / SLURM_DIR
    index = 1 + max((int(m.group(1)) for p in slurm_dir.glob("launch-*.sbatch")
                     if (m := re.match(r"launch-(\d+)\.sbatch$", p.name))), default=0) \
        if slurm_dir.is_dir() else 1
    stem = f"launch-{index:03d}"
    runs_path = slurm_dir / f"{stem}.runs"
    script_path = slurm_dir / f"{stem}.sbatch"
    script = render_script(sweep, options, run_ids, runs_path)
    return SlurmLaunch(index=index, run_ids=tuple(run_ids), script_path=script_path, runs_path=runs_path,
                       script=script)


def render_script(sweep: Sweep, options: SlurmOptions, run_ids: list[str], runs_path: Path) -> str:
    q = shlex.quote
    n = len(run_ids)
    check_script_path(sweep.root, "the sweep directory")
    check_script_path(Path(_python()), "the Python interpreter")
    sb = options.sbatch_options(n)
    logs = str(sweep.root / SLURM_DIR / "logs").replace("%", "%%")  # a literal % in a SLURM filename pattern
    sb.append(f"--output={sbatch_value(logs + '/%A_%a.out')}")
    gpus = options.gpus_per_task
    if gpus > 1:
        launcher = ('"$PYTHON" -m torch.distributed.run --standalone --nproc-per-node="$GPUS_PER_TASK" '
                    "-m regmix_megatron.cli")
        threads = '$(( ${SLURM_CPUS_PER_TASK:-1} / GPUS_PER_TASK > 0 ? ${SLURM_CPUS_PER_TASK:-1} / GPUS_PER_TASK : 1 ))'
    else:
        launcher = '"$PYTHON" -m regmix_megatron.cli'
        threads = "${SLURM_CPUS_PER_TASK:-1}"
    lines = [
        "#!/bin/bash",
        f"# RegMix sweep {sweep.root.name}: {n} proxy run(s) as one SLURM job array.",
        "# Generated by `regmix-megatron sweep launch --executor slurm`; safe to read, edit and resubmit by hand.",
        "# Task i runs the run id on line i+1 of RUN_LIST. The worker skips runs that are done or running,",
        "# keeps each attempt's log in runs/<id>/logs/attempt-<n>.log and retries failed attempts.",
        *[f"#SBATCH {a}" for a in sb],
        "",
        "set -euo pipefail",
        f"SWEEP_DIR={q(str(sweep.root))}",
        f"RUN_LIST={q(str(runs_path))}",
        f"PYTHON={q(_python())}   # the Python environment with regmix-megatron installed",
        f"MAX_ATTEMPTS={options.max_attempts}",
        f"GPUS_PER_TASK={gpus}",
        "",
        'RUN_ID=$(sed -n "$((SLURM_ARRAY_TASK_ID + 1))p" "$RUN_LIST")',
        'if [[ -z "$RUN_ID" ]]; then echo "no run for task $SLURM_ARRAY_TASK_ID in $RUN_LIST" >&2; exit 2; fi',
        'RUN_DIR="$SWEEP_DIR/runs/$RUN_ID"',
        "",
        "# Jobs see every CPU of the node: size the thread pools from what SLURM gave this task.",
        f"THREADS={threads}",
        'export OMP_NUM_THREADS="$THREADS" MKL_NUM_THREADS="$THREADS" OPENBLAS_NUM_THREADS="$THREADS"',
        "",
        'echo "task $SLURM_ARRAY_TASK_ID -> run $RUN_ID on $(hostname) with $THREADS thread(s), $GPUS_PER_TASK GPU(s)"',
        'exec "$PYTHON" -m regmix_megatron.runs.sweep.worker "$SWEEP_DIR" "$RUN_ID" --max-attempts "$MAX_ATTEMPTS" -- \\',
        f'    {launcher} train "$RUN_DIR/config.yaml" --output-dir "$RUN_DIR"',
        "",
    ]
    return "\n".join(lines)


# ---- cluster interaction --------------------------------------------------------------------------------
#: What SLURM's tools print when they cannot reach the controller (then the hint is about slurmctld).
_UNREACHABLE = re.compile(r"unable to contact|connection refused|socket timed out|communication|slurm_conf|"
                          r"cannot open|zero bytes were transmitted", re.IGNORECASE)


def _run(cmd: list[str], what: str, timeout_s: float = 60, fix: str = "") -> str:
    """``cmd``'s output; a :class:`SlurmError` quoting SLURM's own message when it fails. ``fix``: what to do
    when the cluster answered and refused (the controller is blamed only when it could not be reached)."""
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
    except FileNotFoundError:
        raise SlurmError(f"{cmd[0]} not found: the SLURM client tools are not installed here "
                         "(on a test machine: tools/slurm_local.sh start)") from None
    except subprocess.TimeoutExpired:
        raise SlurmError(f"{what}: `{shlex.join(cmd)}` did not answer in {timeout_s:.0f} s; is slurmctld "
                         "running? (`scontrol ping`)") from None
    if proc.returncode != 0:
        said = " ".join((proc.stderr.strip() or proc.stdout.strip()).split())
        hint = ("is slurmctld running and SLURM_CONF right? (`scontrol ping`; on a test machine: "
                "tools/slurm_local.sh status)") if _UNREACHABLE.search(said) or not fix else fix
        raise SlurmError(f"{what}: `{shlex.join(cmd)}` failed with exit code {proc.returncode}: {said}; {hint}")
    return proc.stdout


def queued_tasks(job_id: str) -> list[str]:
    """Tasks of job ``job_id`` still queued or running (``squeue``); empty once it has left the queue."""
    out = _run(["squeue", "-h", "-r", "-j", job_id, "-o", "%i %T"], "squeue")
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def previous_jobs(sweep: Sweep) -> list[dict]:
    path = sweep.root / SLURM_DIR / JOBS_FILE
    if not path.exists():
        return []
    jobs = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            jobs.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return jobs


def _squeue_job_ids(job_ids: list[str]) -> set[str]:
    if not job_ids:
        return set()
    out = _run(["squeue", "-h", "-r", "-j", ",".join(job_ids), "-o", "%F"], "squeue")
    return {line.strip() for line in out.splitlines() if line.strip()}


def submit(sweep: Sweep, options: SlurmOptions, dry_run: bool = False) -> SlurmLaunch | None:
    """Submit a job array over the pending runs. Returns None when nothing is pending."""
    states = st.read_sweep_state(sweep, options.max_attempts)
    pending = [rid for rid, s in states.items() if s.status == st.PENDING]
    if not pending:
        return None
    launch = build_launch(sweep, options, pending)
    if dry_run:
        return launch
    in_queue = _squeue_job_ids([str(j["job_id"]) for j in previous_jobs(sweep)])
    if in_queue:
        raise SlurmError(f"job(s) {sorted(in_queue)} of this sweep are still queued or running: wait for them "
                         f"(`regmix-megatron sweep status {sweep.root}`) or `scancel` them before re-launching")
    st.write_launch_settings(sweep.root, {"executor": "slurm", "max_attempts": options.max_attempts,
                                          "throttle": options.throttle, "cpus_per_task": options.cpus_per_task})
    (sweep.root / SLURM_DIR / "logs").mkdir(parents=True, exist_ok=True)
    atomic_write_text(launch.runs_path, "\n".join(pending) + "\n")
    atomic_write_text(launch.script_path, launch.script)
    os.chmod(launch.script_path, 0o755)
    out = _run(launch.sbatch_command(), "sbatch", timeout_s=120,
               fix=f"SLURM refused the job script {launch.script_path}: fix the option it names (--partition, "
                   "--account, --time, --mem, --gpus-per-task, --sbatch-arg; executor.slurm in a pipeline config) "
                   "and launch again")
    job_id = out.strip().split(";")[0]
    if not job_id.isdigit():
        raise SlurmError(f"sbatch printed {out.strip()!r}, not a job id")
    with open(sweep.root / SLURM_DIR / JOBS_FILE, "a", encoding="utf-8") as fh:
        fh.write(json.dumps({"job_id": job_id, "launch": launch.index, "num_tasks": len(pending),
                             "script": str(launch.script_path), "submitted_at": time.time()}) + "\n")
    log.info("submitted job array %s: %d task(s), script %s", job_id, len(pending), launch.script_path)
    return launch


def last_job_id(sweep: Sweep) -> str | None:
    jobs = previous_jobs(sweep)
    return str(jobs[-1]["job_id"]) if jobs else None


def wait_for_job(job_id: str, poll_s: float = 1.0, timeout_s: float | None = None,
                 on_poll: Callable[[], None] | None = None) -> None:
    """Block until every task of ``job_id`` has left the queue."""
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    while queued_tasks(job_id):
        if on_poll:
            on_poll()
        if deadline is not None and time.monotonic() > deadline:
            raise SlurmError(f"job {job_id} still queued or running after {timeout_s:.0f} s")
        time.sleep(poll_s)
    if on_poll:
        on_poll()

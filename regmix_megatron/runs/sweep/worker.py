"""The entry point of every SLURM array task: one run of a sweep, its train command run as a subprocess::

    python -m regmix_megatron.runs.sweep.worker SWEEP_DIR RUN_ID --max-attempts 3 -- <train command...>

The attempts, lock, heartbeat and logs are ``attempt.execute_run`` with a ``SubprocessRunner``. A run that is
done, failed for good, or held by a live worker elsewhere is left alone (exit 0), so the same run can never be
executed twice at once, and a finished run is never repeated. SIGTERM (``scancel``, the time limit) and
SIGINT stop the train command; that attempt is recorded as interrupted and resumes on the next launch.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import signal
import sys
import threading
from pathlib import Path

from ...errors import RegmixError, run_guarded
from . import state as st
from .attempt import SubprocessRunner, execute_run, slurm_job_id
from .plan import Sweep


def main(argv: list[str] | None = None) -> int:
    """Exit 0 if the run is done (or held elsewhere), 1 if it failed, 130 if it was stopped."""
    parser = argparse.ArgumentParser(prog="python -m regmix_megatron.runs.sweep.worker",
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
    return run_guarded(parser.prog, lambda: _work(args, command))


def _work(args: argparse.Namespace, command: list[str]) -> int:
    run_dir = Path(args.sweep_dir) / "runs" / args.run_id
    if not run_dir.is_dir():
        raise RegmixError(f"{run_dir} does not exist: is {args.run_id} a run of {args.sweep_dir}?")
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):  # the runner terminates the child; the attempt is interrupted
        signal.signal(sig, lambda signum, frame: stop.set())
    final = execute_run(run_dir, SubprocessRunner(command), max_attempts=args.max_attempts, jobid=slurm_job_id(),
                        stop=stop, sweep=Sweep.load(args.sweep_dir))
    print(f"run {args.run_id}: {final.status}" + (f" ({final.reason})" if final.reason else ""))
    if final.status in (st.DONE, st.RUNNING):
        return 0
    return 130 if stop.is_set() else 1


def which_train_command() -> list[str]:
    """``regmix-megatron`` beside this interpreter (the venv), else ``python -m regmix_megatron.cli``."""
    script = Path(sys.executable).parent / "regmix-megatron"
    if script.exists():
        return [str(script)]
    found = shutil.which("regmix-megatron")
    return [found] if found else [sys.executable, "-m", "regmix_megatron.cli"]


if __name__ == "__main__":
    sys.exit(main())

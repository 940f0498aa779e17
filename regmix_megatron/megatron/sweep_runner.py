"""One process, many proxies: train a sweep's pending runs back to back through ``run_training``.

A fresh ``regmix-megatron train`` process per proxy pays Python start-up and the torch/megatron imports
(seconds) every time; for tiny proxies that is most of the run (see bench/bench_sweep.py). Here one process
imports once and trains run after run, through the same attempt protocol as the subprocess worker
(``sweep.attempt``: lock, attempt records, per-attempt logs, heartbeat, outcome), with the trainer called in
this process (``attempt.InProcessRunner``). Several such processes share a sweep safely: each claims a run by
taking its lock, so they drain the pending runs between them without coordination::

    python -m regmix_megatron.megatron.sweep_runner SWEEP_DIR [--max-attempts 3] [--runs RUN_ID ...]

Started by ``sweep launch --executor local --reuse-process`` (and the pipeline's local executor). SIGTERM or
SIGINT interrupts the run being trained (its attempt is recorded as interrupted and resumes from its
checkpoints on the next launch) and ends the process with exit code 130.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path

from ..errors import run_guarded
from ..runs.sweep import state as st
from ..runs.sweep.attempt import InProcessRunner, drain
from ..runs.sweep.plan import Sweep


def train_run_dir(run_dir: Path) -> dict:
    """Train (or resume) the run whose ``config.yaml`` the sweep wrote into ``run_dir``."""
    from ..runs.run_dir import read_run_config
    from .train import run_training

    return run_training(read_run_config(run_dir))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m regmix_megatron.megatron.sweep_runner",
                                     description="train a sweep's pending runs back to back in this process")
    parser.add_argument("sweep_dir")
    parser.add_argument("--max-attempts", type=int, default=st.DEFAULT_MAX_ATTEMPTS)
    parser.add_argument("--runs", nargs="*", default=None, metavar="RUN_ID", help="only these runs")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        datefmt="%H:%M:%S")
    logging.getLogger("megatron.core").setLevel(logging.WARNING)  # its per-parameter INFO listing
    return run_guarded(parser.prog, lambda: _drain(args))


def _drain(args: argparse.Namespace) -> int:
    sweep = Sweep.load(args.sweep_dir)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):  # between runs; during one, the runner interrupts it
        signal.signal(sig, lambda signum, frame: stop.set())
    states = drain(sweep, InProcessRunner(train_run_dir), max_attempts=args.max_attempts, run_ids=args.runs,
                   stop=stop)
    counts = st.count_statuses(states.values())
    print(" ".join(f"{k}={v}" for k, v in counts.items()))
    return 130 if stop.is_set() else 0


if __name__ == "__main__":
    sys.exit(main())

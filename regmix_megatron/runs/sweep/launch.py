"""Launch a sweep's pending runs and wait for them: the one launch-and-wait of the CLI and the pipeline.

:func:`launch` picks the executor from its options:

- ``LocalOptions``: the local executor (``local.launch_local``) runs every pending run on this machine and
  returns when none is left running (waiting for runs another live worker holds, unless told not to).
- ``SlurmOptions``: if an earlier job array of this sweep is still queued (a killed launcher left it), wait for
  it first; then submit the pending runs as one job array, wait until it has left the queue, and submit again
  what is still pending (tasks cut by the time limit, preempted, or never started; failed attempts were
  already retried inside each task). It stops resubmitting when a job array ended without starting any attempt
  (then the cause is not transient: see the task logs in ``slurm/logs/``). With ``wait=False`` it submits once
  and returns.

Progress goes to ``on_progress(states, ended)``: the state of every run at the start, whenever a run ends
(``ended`` its state; local) and on every poll of the queue (``ended`` None; SLURM).
"""

from __future__ import annotations

import logging
from typing import Callable, Mapping

from . import slurm
from . import state as st
from .local import LocalOptions, launch_local
from .plan import Sweep
from .slurm import SlurmOptions

log = logging.getLogger(__name__)

ProgressCallback = Callable[[Mapping[str, st.RunState], "st.RunState | None"], None]

#: Seconds between two polls of the SLURM queue.
SLURM_POLL_S = 5.0


def launch(sweep: Sweep, options: LocalOptions | SlurmOptions, *, on_progress: ProgressCallback | None = None,
           wait: bool = True, poll_s: float = SLURM_POLL_S) -> dict[str, st.RunState]:
    """Run the pending runs of ``sweep`` with the executor of ``options``; return the state of every run."""
    def report(ended: st.RunState | None = None) -> None:
        if on_progress is not None:
            on_progress(st.read_sweep_state(sweep, options.max_attempts), ended)

    report()
    if isinstance(options, LocalOptions):
        return launch_local(sweep, options, on_run_end=lambda run_id, state: report(state))
    if not wait:
        slurm.submit(sweep, options)
        return st.read_sweep_state(sweep, options.max_attempts)
    previous = slurm.last_job_id(sweep)
    if previous and slurm.queued_tasks(previous):
        log.info("job array %s of this sweep is still queued or running: waiting for it", previous)
        slurm.wait_for_job(previous, poll_s=poll_s, on_poll=report)
    before = _attempt_counts(sweep, options.max_attempts)
    while slurm.submit(sweep, options) is not None:  # resubmits runs still pending
        slurm.wait_for_job(slurm.last_job_id(sweep), poll_s=poll_s, on_poll=report)
        after = _attempt_counts(sweep, options.max_attempts)
        if not after:
            break
        if after == before:
            log.warning("job array %s ended without starting an attempt of its %d pending run(s); not resubmitting "
                        "(see %s)", slurm.last_job_id(sweep), len(after), sweep.root / slurm.SLURM_DIR / "logs")
            break
        before = after
    return st.read_sweep_state(sweep, options.max_attempts)


def _attempt_counts(sweep: Sweep, max_attempts: int) -> dict[str, int]:
    """Attempts so far of every pending run (what a job array that made progress changes)."""
    return {rid: s.num_attempts for rid, s in st.read_sweep_state(sweep, max_attempts).items()
            if s.status == st.PENDING}

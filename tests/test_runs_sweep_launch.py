"""``sweep.launch``: the one launch-and-wait of the CLI and the pipeline, with progress through a callback.

Local launches run the stand-in trainer through the real local executor. For SLURM, the resubmission logic
is tested against a scheduler stand-in that runs each task's attempts here (or leaves behind what a task
killed by the time limit leaves: an attempt without an outcome); the real cluster is in test_sweep_slurm.py.
"""

from __future__ import annotations

import json
import logging

from regmix_megatron.runs.sweep import local as local_executor
from regmix_megatron.runs.sweep import slurm
from regmix_megatron.runs.sweep import state as st
from regmix_megatron.runs.sweep.attempt import SubprocessRunner, execute_run
from regmix_megatron.runs.sweep.launch import launch
from regmix_megatron.runs.sweep.local import LocalOptions
from regmix_megatron.runs.sweep.slurm import SlurmOptions

from sweep_fixtures import mechanics_command, planned  # noqa: F401


def _finished(states) -> int:
    counts = st.count_statuses(states.values())
    return counts[st.DONE] + counts[st.FAILED]


def test_a_local_launch_reports_each_ended_run_and_returns_every_state(planned, monkeypatch):
    monkeypatch.setattr(local_executor, "train_command", lambda sweep, rid: mechanics_command(sweep.run_dir(rid)))
    failing = planned.runs[2].run_id
    (planned.run_dir(failing) / "fail-times").write_text("9")
    calls = []
    final = launch(planned, LocalOptions(parallel=2, max_attempts=2),
                   on_progress=lambda states, ended: calls.append((_finished(states), ended)))
    assert calls[0] == (0, None)  # the start
    ended = {e.run_id: e for _, e in calls[1:]}
    assert set(ended) == set(planned.run_ids()) and len(calls) == 5
    assert ended[failing].status == st.FAILED and "exit code 7" in ended[failing].reason
    assert calls[-1][0] == 4 and [n for n, _ in calls] == sorted(n for n, _ in calls)
    assert [final[r].status for r in planned.run_ids()] == [st.DONE, st.DONE, st.FAILED, st.DONE]


class FakeScheduler:
    """``sbatch``/``squeue`` stand-in: a job array "runs" when waited for. A run directory with a ``cut``
    file (a count) has that many tasks killed by the time limit first (an attempt record without outcome);
    one with ``never-starts`` never gets an attempt (a task that dies before the worker starts)."""

    def __init__(self, sweep, monkeypatch, queued=()):
        self.sweep, self.jobs, self.waited, self.queued = sweep, [], [], list(queued)
        monkeypatch.setattr(slurm, "submit", self.submit)
        monkeypatch.setattr(slurm, "wait_for_job", self.wait_for_job)
        monkeypatch.setattr(slurm, "last_job_id", lambda sweep: self.jobs[-1][0] if self.jobs else
                            (self.queued[0] if self.queued else None))
        monkeypatch.setattr(slurm, "queued_tasks", lambda job_id: ["0"] if job_id in self.queued else [])

    def submit(self, sweep, options, dry_run=False):
        states = st.read_sweep_state(sweep, options.max_attempts)
        pending = [rid for rid, s in states.items() if s.status == st.PENDING]
        if not pending:
            return None
        self.jobs.append((str(100 + len(self.jobs)), pending, options.max_attempts))
        return object()

    def wait_for_job(self, job_id, poll_s=1.0, timeout_s=None, on_poll=None):
        self.waited.append(job_id)
        if job_id in self.queued:
            self.queued.remove(job_id)
        for jid, run_ids, max_attempts in self.jobs:
            if jid != job_id:
                continue
            for rid in run_ids:
                run_dir = self.sweep.run_dir(rid)
                cut = run_dir / "cut"
                if (run_dir / "never-starts").exists():
                    continue
                if cut.exists() and int(cut.read_text()) > 0:
                    cut.write_text(str(int(cut.read_text()) - 1))
                    n = len(st.attempt_records(run_dir)) + 1
                    (run_dir / "logs").mkdir(exist_ok=True)
                    (run_dir / "logs" / f"attempt-{n}.json").write_text(json.dumps({"attempt": n}))
                    continue
                execute_run(run_dir, SubprocessRunner(mechanics_command(run_dir)), max_attempts=max_attempts,
                            jobid=f"{jid}_{run_ids.index(rid)}")
        if on_poll:
            on_poll()


def test_slurm_resubmits_runs_whose_tasks_were_cut_until_none_is_pending(planned, monkeypatch):
    cut = planned.runs[1].run_id
    (planned.run_dir(cut) / "cut").write_text("2")
    scheduler = FakeScheduler(planned, monkeypatch)
    polls = []
    final = launch(planned, SlurmOptions(max_attempts=1), on_progress=lambda states, ended: polls.append(
        _finished(states)), poll_s=0)
    assert {s.status for s in final.values()} == {st.DONE}
    assert [len(run_ids) for _, run_ids, _ in scheduler.jobs] == [4, 1, 1]  # the cut run, twice more
    assert [a.get("outcome") for a in final[cut].attempts] == [None, None, "completed"]
    assert polls[0] == 0 and polls[-1] == 4


def test_slurm_waits_for_a_queued_array_first_and_stops_when_a_job_made_no_progress(planned, monkeypatch,
                                                                                     caplog):
    stuck = planned.runs[0].run_id
    (planned.run_dir(stuck) / "never-starts").write_text("1")
    scheduler = FakeScheduler(planned, monkeypatch, queued=["99"])
    with caplog.at_level(logging.WARNING, logger="regmix_megatron.runs.sweep.launch"):
        final = launch(planned, SlurmOptions(max_attempts=2), poll_s=0)
    assert scheduler.waited[0] == "99"  # the array a killed launcher left behind, before any submission
    assert [len(run_ids) for _, run_ids, _ in scheduler.jobs] == [4, 1]
    assert final[stuck].status == st.PENDING and "without starting an attempt" in caplog.text
    assert sum(s.status == st.DONE for s in final.values()) == 3


def test_slurm_without_wait_submits_once(planned, monkeypatch):
    scheduler = FakeScheduler(planned, monkeypatch)
    states = launch(planned, SlurmOptions(), wait=False)
    assert len(scheduler.jobs) == 1 and scheduler.waited == []
    assert {s.status for s in states.values()} == {st.PENDING}


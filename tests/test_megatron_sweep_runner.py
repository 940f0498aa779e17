"""The in-process sweep worker (``python -m regmix_megatron.megatron.sweep_runner``) with the real trainer:
SIGTERM interrupts the run being trained, the attempt is recorded as interrupted, and the next worker resumes
it from its checkpoint to completion."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest
import yaml

from regmix_megatron.runs.sweep import state as st
from regmix_megatron.runs.sweep.plan import Sweep, plan_from_files

from helpers.training import subprocess_env
from sweep_fixtures import PROXY_OVERRIDES, domains_json_of, make_real_sweep_inputs

RUNNER = [sys.executable, "-m", "regmix_megatron.megatron.sweep_runner"]


@pytest.mark.slow
def test_a_terminated_in_process_worker_interrupts_its_run_and_the_next_resumes_it(tmp_path, indexed_fixture):
    mixtures, config, _ = make_real_sweep_inputs(tmp_path, domains_json_of(indexed_fixture), 1, seed=3)
    longer = dict(yaml.safe_load(config.read_text()), optim=dict(PROXY_OVERRIDES["optim"], train_steps=400))
    config.write_text(yaml.safe_dump(longer))
    sweep, _ = plan_from_files(mixtures, config, tmp_path / "sweep")
    run_dir = sweep.run_dir(sweep.runs[0].run_id)
    worker = subprocess.Popen(RUNNER + [str(sweep.root)], env=subprocess_env(), stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
    first_checkpoint = run_dir / "checkpoints" / "step_0000004" / "meta.json"
    deadline = time.monotonic() + 240
    while not first_checkpoint.exists():
        assert time.monotonic() < deadline and worker.poll() is None, worker.communicate()[0][-3000:]
        time.sleep(0.05)
    worker.send_signal(signal.SIGTERM)
    out, _ = worker.communicate(timeout=120)
    assert worker.returncode == 130, out[-3000:]
    assert not (run_dir / "result.json").exists(), "the run finished before it could be interrupted"
    (record,) = st.attempt_records(run_dir)
    assert record["mode"] == "in-process" and record["interrupted"] and "outcome" not in record
    assert st.read_run_state(run_dir).status == st.PENDING and not (run_dir / st.LOCK_FILE).exists()

    done = subprocess.run(RUNNER + [str(sweep.root), "--max-attempts", "1"], env=subprocess_env(),
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    final = st.read_run_state(run_dir, max_attempts=1)
    assert final.status == st.DONE and [a.get("outcome") for a in final.attempts] == [None, "completed"]
    assert "resumed from" in (run_dir / "logs" / "attempt-2.log").read_text()
    result = json.loads((run_dir / "result.json").read_text())
    assert result["run_id"] == run_dir.name and result["steps"] == 400
    assert Sweep.load(sweep.root).run_ids() == [run_dir.name]

"""The confirm stage (regmix_megatron/pipeline/confirm.py): its config checks and skips, and the round run for real on
the corpus fixture, killed midway and resumed."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from regmix_megatron.errors import ConfigError
from regmix_megatron.pipeline.config import load_pipeline_config
from regmix_megatron.pipeline.confirm import confirm_inputs, skip_reason
from regmix_megatron.pipeline.framework import read_record
from helpers.pipeline_configs import FIXTURE_CONFIG, FIXTURE_CORPUS, SCHEDULE_CONFIG, write_config


def _config_with(tmp_path, confirm: dict, base: Path = FIXTURE_CONFIG):
    data = yaml.safe_load(base.read_text())
    data["corpus"]["source"] = str(FIXTURE_CORPUS)
    data["confirm"] = confirm
    return load_pipeline_config(write_config(tmp_path, data), output_dir=str(tmp_path / "out"))


@pytest.mark.parametrize("confirm, field", [({"seeds": 1}, "seeds"), ({"num_sweep": -1}, "num_sweep"),
                                            ({"threshold_sd": 0}, "threshold_sd"), ({"enabled": "yes"}, "enabled")])
def test_the_confirm_section_is_checked_naming_the_field(tmp_path, confirm, field):
    with pytest.raises(ConfigError, match=rf"confirm.*{field}"):
        _config_with(tmp_path, confirm)


def test_a_schedule_pipeline_or_a_disabled_round_is_skipped_with_its_reason(tmp_path):
    cfg = _config_with(tmp_path, {})
    assert skip_reason(cfg) is None and confirm_inputs(cfg)["seeds"] == 2
    off = _config_with(tmp_path, {"enabled": False})
    assert "confirm.enabled is false" in skip_reason(off) and confirm_inputs(off) == {"enabled": False}
    schedule = load_pipeline_config(SCHEDULE_CONFIG, output_dir=str(tmp_path / "s"))
    assert schedule.confirm.enabled and "schedule.phases" in skip_reason(schedule)


def test_the_round_is_redone_when_its_section_or_the_proxy_recipe_changes(tmp_path):
    cfg = _config_with(tmp_path, {"seeds": 2})
    assert confirm_inputs(_config_with(tmp_path, {"seeds": 3})) != confirm_inputs(cfg)
    assert confirm_inputs(_config_with(tmp_path, {"num_domains": 0})) != confirm_inputs(cfg)
    cfg.proxy.overrides = cfg.proxy.overrides.merged({"optim": {"train_steps": 31}})
    assert confirm_inputs(cfg) != confirm_inputs(_config_with(tmp_path, {"seeds": 2}))


def _cli(out: Path) -> list[str]:
    return [sys.executable, "-m", "regmix_megatron.cli", "run", str(FIXTURE_CONFIG), "--output-dir", str(out),
            "--until", "confirm", "--no-progress"]


def _kill_once_some_runs_finished(out: Path, log_path: Path) -> dict[str, int]:
    """Run the pipeline up to confirm in a subprocess; SIGKILL it (and its training processes) as soon as one of the
    round's own runs has a result. Returns run id -> its result.json's mtime."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    runs = out / "confirm" / "proxy-scale" / "runs"
    finished: dict[str, int] = {}
    with open(log_path, "w") as log:
        proc = subprocess.Popen(_cli(out), stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        deadline = time.monotonic() + 900
        try:
            while time.monotonic() < deadline and proc.poll() is None:
                finished = {p.parent.name: p.stat().st_mtime_ns for p in runs.glob("*/result.json")}
                if finished:
                    break
                time.sleep(0.2)
        finally:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return finished


@pytest.mark.slow
def test_the_round_resumes_after_a_kill_and_ends_as_an_uninterrupted_one(tmp_path):
    """Kill the confirm stage once some but not all of its runs finished; the rerun keeps those runs (their
    result.json untouched, one attempt each) and writes the same confirmation.json as a round never interrupted."""
    from regmix_megatron.full_scale.confirmation import read_confirmation
    from regmix_megatron.full_scale.evaluation import target_loss
    from regmix_megatron.pipeline import run_pipeline
    from regmix_megatron.runs.run_dir import RunResult

    if not FIXTURE_CORPUS.is_dir():
        pytest.skip(f"corpus fixture {FIXTURE_CORPUS} missing")
    killed, whole = tmp_path / "killed", tmp_path / "whole"
    run_pipeline(load_pipeline_config(FIXTURE_CONFIG, output_dir=str(killed)), until="search")
    shutil.copytree(killed, whole)  # the same sweep, fit and search for both rounds

    finished = _kill_once_some_runs_finished(killed, tmp_path / "first.log")
    assert finished, "no confirmation run finished before the kill: " + (tmp_path / "first.log").read_text()[-2000:]
    planned = json.loads((killed / "confirm" / "proxy-scale" / "sweep.json").read_text())["runs"]
    assert len(finished) < len(planned), "the round finished before the kill; nothing was interrupted"
    assert read_record(killed, "confirm") is None and not (killed / "confirm" / "confirmation.json").exists()

    done = subprocess.run(_cli(killed), capture_output=True, text=True, timeout=1800,
                          env=dict(os.environ, PYTHONUNBUFFERED="1"))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    summary = json.loads((killed / "stages" / "summary.json").read_text())["stages"]
    assert {s["stage"]: s["status"] for s in summary}["confirm"] == "done"
    assert all(s["status"] == "skipped" for s in summary if s["stage"] != "confirm")
    runs = killed / "confirm" / "proxy-scale" / "runs"
    for run_id, mtime in finished.items():  # finished runs were not trained again
        assert (runs / run_id / "result.json").stat().st_mtime_ns == mtime
        assert len(list((runs / run_id / "logs").glob("attempt-*.json"))) == 1

    run_pipeline(load_pipeline_config(FIXTURE_CONFIG, output_dir=str(whole)), until="confirm")
    resumed = (killed / "confirm" / "confirmation.json").read_text()
    assert resumed == (whole / "confirm" / "confirmation.json").read_text()
    assert (killed / "confirm" / "mixture.json").read_text() == (whole / "confirm" / "mixture.json").read_text()

    # the record against the runs it names: 4 distinct candidates, 2 seeds each, losses from their result.json
    record = read_confirmation(killed / "confirm")
    labels = [c.label for c in record.candidates]
    assert labels[:2] == ["regmix", "top1"] and len({c.mixture_hash for c in record.candidates}) == len(labels) == 4
    assert labels[2].startswith("best_domain:") and labels[3].startswith("best_sweep:")
    for c in record.candidates:
        outcome = record.decision.outcome(c.label)
        for seed, run_dir in c.run_dirs.items():
            result = RunResult.from_json_obj(json.loads((killed / run_dir / "result.json").read_text()), run_dir)
            assert result.seed == seed
            assert {d: result.mixture.get(d, 0.0) for d in c.mixture} == pytest.approx(c.mixture, abs=1e-12)
            assert outcome.losses[seed] == target_loss(result, record.target, "valid")
    reused = [d for c in record.candidates for d in c.run_dirs.values() if d.startswith("sweep/")]
    assert reused and len(reused) + len(planned) == 8  # the sweep's finished runs of a candidate are not repeated
    assert record.decision.chosen in labels and record.decision.reason

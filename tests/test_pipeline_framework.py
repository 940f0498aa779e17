"""The stage framework (regmix_megatron/pipeline/framework.py): hashing, skip, redo, resume, on small real stages."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import pytest

from regmix_megatron.errors import RegmixError
from regmix_megatron.pipeline.framework import (
    Stage,
    StageOutput,
    format_summary,
    read_record,
    record_path,
    run_stages,
)


@dataclass
class Cfg:
    text: str = "hello"
    repeat: int = 2
    calls: list = field(default_factory=list)


def _stages():
    """write -> upper -> count: each writes a file under OUT and reads its upstream's file."""

    def write(ctx):
        ctx.config.calls.append("write")
        p = ctx.out / "write" / "text.txt"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(ctx.config.text)
        return StageOutput(files={"text": str(p)}, summary=str(p.name))

    def upper(ctx):
        ctx.config.calls.append("upper")
        src = ctx.path("write", "text").read_text()
        p = ctx.out / "upper" / "text.txt"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(src.upper() * ctx.config.repeat)
        return StageOutput(files={"text": str(p)})

    def count(ctx):
        ctx.config.calls.append("count")
        n = len(ctx.path("upper", "text").read_text())
        return StageOutput(values={"num_chars": n}, summary=f"{n} chars")

    return [
        Stage("write", lambda c: {"text": c.text}, write),
        Stage("upper", lambda c: {"repeat": c.repeat}, upper, ("write",)),
        Stage("count", lambda c: {}, count, ("upper",)),
    ]


def test_stages_run_then_skip(tmp_path):
    cfg = Cfg()
    results = run_stages(_stages(), cfg, tmp_path)
    assert [r.status for r in results] == ["done"] * 3
    assert cfg.calls == ["write", "upper", "count"]
    rec = read_record(tmp_path, "count")
    assert rec["outputs"]["values"] == {"num_chars": 10}
    assert rec["outputs"]["files"] == {}
    assert read_record(tmp_path, "write")["outputs"]["files"]["text"] == "write/text.txt"  # relative to OUT
    cfg.calls.clear()
    results = run_stages(_stages(), cfg, tmp_path)
    assert [r.status for r in results] == ["skipped"] * 3
    assert cfg.calls == []
    assert "skipped" in format_summary(results)
    summary = json.loads((tmp_path / "stages" / "summary.json").read_text())
    assert [s["status"] for s in summary["stages"]] == ["skipped"] * 3


def test_changed_input_redoes_stage_and_downstream_only(tmp_path):
    run_stages(_stages(), Cfg(), tmp_path)
    cfg = Cfg(repeat=3)
    results = run_stages(_stages(), cfg, tmp_path)
    assert [r.status for r in results] == ["skipped", "done", "done"]
    assert read_record(tmp_path, "count")["outputs"]["values"] == {"num_chars": 15}
    # back to the first setting: redone again (a record remembers only the last inputs)
    cfg = Cfg()
    assert [r.status for r in run_stages(_stages(), cfg, tmp_path)] == ["skipped", "done", "done"]


def test_upstream_rerun_with_identical_output_keeps_downstream(tmp_path):
    run_stages(_stages(), Cfg(), tmp_path)
    cfg = Cfg()
    results = run_stages(_stages(), cfg, tmp_path, force=["write"])
    assert [r.status for r in results] == ["done", "skipped", "skipped"]  # same content -> same fingerprint


def test_upstream_output_change_invalidates_downstream_records(tmp_path):
    run_stages(_stages(), Cfg(), tmp_path)
    run_stages(_stages(), Cfg(text="other"), tmp_path, until="write")
    assert read_record(tmp_path, "write") is not None
    assert read_record(tmp_path, "upper") is None and read_record(tmp_path, "count") is None
    results = run_stages(_stages(), Cfg(text="other"), tmp_path)
    assert [r.status for r in results] == ["skipped", "done", "done"]


def test_missing_output_file_redoes_stage(tmp_path):
    run_stages(_stages(), Cfg(), tmp_path)
    (tmp_path / "upper" / "text.txt").unlink()
    cfg = Cfg()
    results = run_stages(_stages(), cfg, tmp_path)
    assert [r.status for r in results] == ["skipped", "done", "skipped"]
    assert cfg.calls == ["upper"]


def test_failed_stage_leaves_no_record_and_resumes(tmp_path):
    stages = _stages()

    def broken(ctx):
        raise RuntimeError("disk on fire")

    bad = stages[:1] + [Stage("upper", stages[1].inputs, broken, ("write",))] + stages[2:]
    run_stages(stages, Cfg(), tmp_path, until="write")
    with pytest.raises(RuntimeError, match="disk on fire"):
        run_stages(bad, Cfg(repeat=5), tmp_path)
    assert read_record(tmp_path, "upper") is None
    summary = json.loads((tmp_path / "stages" / "summary.json").read_text())
    assert [s["status"] for s in summary["stages"]] == ["skipped", "failed", "not run"]
    results = run_stages(stages, Cfg(repeat=5), tmp_path)
    assert [r.status for r in results] == ["skipped", "done", "done"]


def test_until_and_force_names_are_checked(tmp_path):
    with pytest.raises(RegmixError, match="--until 'nope'"):
        run_stages(_stages(), Cfg(), tmp_path, until="nope")
    with pytest.raises(RegmixError, match="--force-stage 'nope'"):
        run_stages(_stages(), Cfg(), tmp_path, force=["nope"])
    results = run_stages(_stages(), Cfg(), tmp_path, until="upper")
    assert [r.stage for r in results] == ["write", "upper"]
    assert not record_path(tmp_path, "count").exists()

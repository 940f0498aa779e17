"""The pipeline: stage hashing/skip/redo, config validation, and the end-to-end run with kill-and-resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from regmix_megatron.errors import ConfigError, RegmixError
from regmix_megatron.pipeline.config import PipelineConfig, load_pipeline_config
from regmix_megatron.pipeline.framework import (Stage, StageOutput, format_summary, read_record, record_path,
                                                run_stages)

REPO = Path(__file__).resolve().parents[1]
FIXTURE_CORPUS = REPO / "tests" / "fixtures" / "corpus"
FIXTURE_CONFIG = REPO / "examples" / "fixture.yaml"


# ---- the stage framework on small real stages -------------------------------------------------------------
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


# ---- config -----------------------------------------------------------------------------------------------
def _write(tmp_path, data) -> Path:
    p = tmp_path / "cfg.yaml"
    p.write_text(yaml.safe_dump(data))
    return p


def test_config_errors_name_field_and_fix(tmp_path):
    cases = [
        ({"target": "average", "targets": {"baselines": ["natural", "target_only"]}}, "targets.baselines"),
        ({"targets": {"baselines": ["natural", "best"]}}, "targets.baselines"),
        ({"sample": {"num_proxies": 2}}, "sample.num_proxies"),
        ({"search": {"pool_size": 10, "top_k": 20}}, "search.top_k"),
        ({"executor": {"kind": "kubernetes"}}, "executor.kind"),
        ({"proxy": {"preset": "cpu-proxy", "overrides": {"seed": 3}}}, "proxy.overrides"),
        ({"corpus": {"source": "no/such/dir"}}, "corpus.source"),
        ({"proxy": {"preset": "huge"}}, "preset"),
        ({"proxy": {"overrides": {"optim": {"lr": -1}}}}, "optim.lr"),
        ({"sample": {"sampler": {"temperature": "hot"}}}, "temperature"),
        ({"nonsense": 1}, "nonsense"),
    ]
    for data, needle in cases:
        with pytest.raises(ConfigError, match=needle.replace(".", r"\.")):
            load_pipeline_config(_write(tmp_path, data))


def test_config_resolves_paths_against_file(tmp_path):
    (tmp_path / "corp").mkdir()
    cfg = load_pipeline_config(_write(tmp_path, {"output_dir": "out", "corpus": {"source": "corp"}}))
    assert cfg.output_dir == str(tmp_path / "out")
    assert cfg.corpus.source == str(tmp_path / "corp")
    assert load_pipeline_config(_write(tmp_path, {}), output_dir=str(tmp_path / "x")).output_dir == \
        str(tmp_path / "x")
    assert PipelineConfig(target="code").target_column == "val_loss/code"


# ---- real stages on the corpus fixture --------------------------------------------------------------------
def _fixture_config(tmp_path, **changes) -> PipelineConfig:
    if not FIXTURE_CORPUS.is_dir():
        pytest.skip(f"corpus fixture {FIXTURE_CORPUS} missing")
    cfg = load_pipeline_config(FIXTURE_CONFIG, output_dir=str(tmp_path / "out"))
    for key, value in changes.items():
        section, name = key.split("__")
        setattr(getattr(cfg, section), name, value)
    return cfg


def test_real_early_stages_skip_and_redo(tmp_path):
    from regmix_megatron.manifest import DomainRegistry
    from regmix_megatron.pipeline import run_pipeline

    cfg = _fixture_config(tmp_path)
    first = run_pipeline(cfg, until="sample")
    assert [r.status for r in first] == ["done"] * 4
    out = Path(cfg.output_dir)
    registry = DomainRegistry.load(out / "data" / "domains.json")
    assert registry.names == ("code", "legal", "literature", "math")  # corpus.domains is honoured
    assert len((out / "sample" / "mixtures.jsonl").read_text().splitlines()) == cfg.sample.num_proxies
    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert saved["tokenizer"]["vocab_size"] == 1000 and saved["output_dir"] == cfg.output_dir
    mixtures_before = (out / "sample" / "mixtures.jsonl").read_text()

    # speed-only settings are not inputs: nothing is redone
    cfg2 = _fixture_config(tmp_path, preprocess__workers=2)
    assert [r.status for r in run_pipeline(cfg2, until="sample")] == ["skipped"] * 4

    # a new vocabulary redoes the tokenizer and everything downstream of it, not the corpus
    cfg3 = _fixture_config(tmp_path, tokenizer__vocab_size=800)
    again = run_pipeline(cfg3, until="sample")
    assert [r.status for r in again] == ["skipped", "done", "done", "done"]
    assert DomainRegistry.load(out / "data" / "domains.json").tokenizer.vocab_size == 800
    # token counts changed, so the prior and the sampled mixtures changed too
    assert (out / "sample" / "mixtures.jsonl").read_text() != mixtures_before


def test_epoch_caps_bind_the_sampled_mixtures_to_the_target_budget(tmp_path):
    """``sample.sampler.max_epochs`` alone: the budget is one target run's tokens, and every mixture keeps
    each domain under ``max_epochs * tokens_i / target_tokens``."""
    import numpy as np

    from regmix_megatron.manifest import DomainRegistry
    from regmix_megatron.pipeline import run_pipeline
    from regmix_megatron.pipeline.config import sampler_config
    from regmix_megatron.pipeline.stages import target_train_tokens
    from regmix_megatron.sweep.plan import read_mixtures

    data = yaml.safe_load(FIXTURE_CONFIG.read_text())
    data["corpus"]["source"] = str(FIXTURE_CORPUS)
    data["sample"]["sampler"] = {"max_epochs": 0.5}
    cfg = load_pipeline_config(_write(tmp_path, data), output_dir=str(tmp_path / "out"))  # loads: no error
    budget = target_train_tokens(cfg)
    assert budget == 60 * 16 * 64  # the fixture's target runs: steps x global batch x sequence length
    assert sampler_config(cfg, None, target_tokens=budget).target_tokens == budget
    run_pipeline(cfg, until="sample")
    registry = DomainRegistry.load(Path(cfg.output_dir) / "data" / "domains.json")
    caps = 0.5 * registry.tokens_per_domain("train") / budget
    assert caps.min() < 1  # the caps bind on this corpus
    mixtures = read_mixtures(Path(cfg.output_dir) / "sample" / "mixtures.jsonl")
    weights = np.array([m.as_array(registry.names) for m in mixtures])
    assert len(mixtures) == cfg.sample.num_proxies
    assert (weights <= caps + 1e-9).all()


# ---- end to end with a kill and a resume ------------------------------------------------------------------
def _cli(*args) -> list[str]:
    return [sys.executable, "-m", "regmix_megatron.cli", "run", str(FIXTURE_CONFIG), *args]


def _statuses(out: Path) -> dict[str, str]:
    summary = json.loads((out / "stages" / "summary.json").read_text())
    return {s["stage"]: s["status"] for s in summary["stages"]}


@pytest.mark.slow
def test_end_to_end_kill_and_resume(tmp_path):
    if not FIXTURE_CORPUS.is_dir():
        pytest.skip(f"corpus fixture {FIXTURE_CORPUS} missing")
    out = tmp_path / "out"
    args = ["--output-dir", str(out), "--no-progress"]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    log = open(tmp_path / "first.log", "w")
    proc = subprocess.Popen(_cli(*args), stdout=log, stderr=subprocess.STDOUT, env=env, cwd=tmp_path,
                            start_new_session=True)
    runs = out / "sweep" / "runs"
    finished: dict[str, int] = {}
    deadline = time.monotonic() + 600
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            finished = {p.parent.name: p.stat().st_mtime_ns for p in runs.glob("*/result.json")}
            if finished:
                break
            time.sleep(0.5)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the pipeline and its training subprocesses
        proc.wait()
        log.close()
    assert finished, "no sweep run finished before the kill: " + (tmp_path / "first.log").read_text()[-2000:]
    num_planned = len(json.loads((out / "sweep" / "sweep.json").read_text())["runs"])
    assert len(finished) < num_planned, "the sweep finished before the kill; nothing was interrupted"
    assert read_record(out, "sweep") is None  # a killed stage never looks complete
    for stage in ("corpus", "tokenizer", "indexed", "sample"):
        assert read_record(out, stage) is not None

    done = subprocess.run(_cli(*args), capture_output=True, text=True, env=env, cwd=tmp_path, timeout=3600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    statuses = _statuses(out)
    assert [statuses[s] for s in ("corpus", "tokenizer", "indexed", "sample")] == ["skipped"] * 4
    assert all(statuses[s] == "done" for s in ("sweep", "fit", "search", "targets", "evaluate", "report"))
    for run_id, mtime in finished.items():  # finished runs were not redone
        result = runs / run_id / "result.json"
        assert result.stat().st_mtime_ns == mtime
        assert len(list((runs / run_id / "logs").glob("attempt-*.json"))) == 1
    assert "skipped" in done.stdout and "report:" in done.stdout  # the summary table

    evaluation = json.loads((out / "evaluation.json").read_text())
    labels = {r["label"] for r in evaluation["runs"]}
    assert {"regmix", "natural", "uniform", "target_only"} <= labels and len(labels) == 5
    for r in evaluation["runs"]:
        assert r["target_loss"] == pytest.approx(r["val_loss"]["literature"])
        assert 0 < r["target_loss"] < 10
    assert evaluation["rank_invariance"]["num_mixtures"] == 5
    assert -1 <= evaluation["rank_invariance"]["spearman"] <= 1
    html = (out / "report.html").read_text()
    for needle in ("Pipeline stages", "Sweep: proxy losses", "Target runs", "Rank invariance", "data:image/png"):
        assert needle in html
    for png in ("stage_timings.png", "target_comparison.png", "rank_invariance.png"):
        assert (out / "report" / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    search = json.loads((out / "search" / "search.json").read_text())
    assert search["result"]["within_caps"] is True
    assert (out / "search" / "export" / "per_split_data_args.json").is_file()
    for label in ("regmix", "natural", "uniform", "target_only"):
        assert (out / "targets" / "mixtures" / f"{label}.json").is_file()

    # everything done: a rerun skips every stage; redoing evaluate with identical output keeps the report
    again = subprocess.run(_cli(*args, "--force-stage", "evaluate"), capture_output=True, text=True, env=env,
                           cwd=tmp_path, timeout=1800)
    assert again.returncode == 0, again.stderr[-3000:]
    statuses = _statuses(out)
    assert statuses["evaluate"] == "done"
    assert all(v == "skipped" for k, v in statuses.items() if k != "evaluate")


# ---- evaluation (pure) ------------------------------------------------------------------------------------
def _result(run_id, **losses):
    return {"run_id": run_id, "val_loss": losses}


def test_evaluation_comparison_and_rank_invariance():
    from regmix_megatron.pipeline.evaluation import evaluate

    target = {"regmix": _result("r", a=3.0, b=5.0), "natural": _result("n", a=3.2, b=4.0),
              "uniform": _result("u", a=3.5, b=4.6), "sweep:x": _result("x", a=4.0, b=4.0)}
    proxy = {"regmix": _result("rp", a=4.0, b=6.0), "natural": _result("np", a=4.1, b=5.0),
             "uniform": _result("up", a=4.3, b=5.5), "sweep:x": _result("xp", a=4.6, b=5.0)}
    doc = evaluate("a", target, proxy, predicted={"regmix": 3.9, "natural": 4.05})
    comp = doc["comparison"]
    assert comp["regmix_target_loss"] == 3.0 and comp["regmix_rank"] == 1
    assert comp["regmix_beats"] == ["natural", "uniform"]
    assert comp["baselines"]["natural"]["regmix_minus_baseline"] == pytest.approx(-0.2)
    assert [r["label"] for r in doc["runs"]] == ["regmix", "natural", "uniform", "sweep:x"]
    assert doc["runs"][0]["predicted_loss"] == 3.9 and doc["runs"][2]["predicted_loss"] is None
    assert doc["rank_invariance"]["num_mixtures"] == 4
    assert doc["rank_invariance"]["spearman"] == pytest.approx(1.0)  # same order at both scales
    # the average target: mean over domains; the ranking flips
    avg = evaluate("average", target, proxy)
    assert avg["comparison"]["regmix_target_loss"] == pytest.approx(4.0)
    assert avg["comparison"]["regmix_beats"] == ["uniform"]
    # too few mixtures at both scales: no rho rather than a meaningless one
    assert evaluate("a", target, {"regmix": proxy["regmix"]})["rank_invariance"]["spearman"] is None
    with pytest.raises(RegmixError, match="target domain 'c'"):
        evaluate("c", target, proxy)
    with pytest.raises(RegmixError, match="regmix"):
        evaluate("a", {"natural": target["natural"]}, proxy)


def test_spread_indices_cover_the_range():
    from regmix_megatron.pipeline.evaluation import spread_indices

    values = [5.0, 1.0, 3.0, 4.0, 2.0]
    assert spread_indices(values, 2) == [1, 0]  # best and worst
    assert spread_indices(values, 3) == [1, 2, 0]
    assert sorted(spread_indices(values, 9)) == [0, 1, 2, 3, 4]
    assert spread_indices(values, 0) == []

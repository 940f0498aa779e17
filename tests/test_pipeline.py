"""The whole pipeline end to end on the corpus fixture: a kill during the sweep, a resume, and outputs checked
against the files they were computed from."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.stats

from regmix_megatron.pipeline.framework import read_record

REPO = Path(__file__).resolve().parents[1]
FIXTURE_CORPUS = REPO / "tests" / "fixtures" / "corpus"
FIXTURE_CONFIG = REPO / "examples" / "fixture.yaml"


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
    _check_evaluation_against_the_runs(out, evaluation)
    _check_fit_against_the_sweep(out)
    html = (out / "report.html").read_text()
    for needle in ("Pipeline stages", "Sweep: proxy losses", "Target runs", "Rank invariance", "data:image/png"):
        assert needle in html
    for png in ("stage_timings.png", "target_comparison.png", "rank_invariance.png"):
        assert (out / "report" / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    _check_in_a_browser(out / "report.html")
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



def _result_json(run_dir) -> dict:
    return json.loads((Path(run_dir) / "result.json").read_text())


def _check_evaluation_against_the_runs(out: Path, evaluation: dict) -> None:
    """Every number of evaluation.json recomputed from the runs' own result.json files (target: literature)."""
    runs = json.loads((out / "targets" / "runs.json").read_text())["runs"]
    search = json.loads((out / "search" / "search.json").read_text())
    predicted = {"regmix": search["result"]["predicted"],
                 **{k: v["predicted"] for k, v in search["baselines"].items()}}
    assert evaluation["target"] == "literature"
    for row in evaluation["runs"]:
        target_result = _result_json(runs[row["label"]]["target"]["run_dir"])
        proxy_result = _result_json(runs[row["label"]]["proxy"]["run_dir"])
        assert row["run_id"] == target_result["run_id"]
        assert row["val_loss"] == target_result["val_loss"]
        assert row["target_loss"] == target_result["val_loss"]["literature"]
        assert row["proxy_loss"] == proxy_result["val_loss"]["literature"]
        assert row["predicted_loss"] == predicted.get(row["label"])
    assert [r["target_loss"] for r in evaluation["runs"]] == sorted(r["target_loss"] for r in evaluation["runs"])
    by_label = {r["label"]: r for r in evaluation["runs"]}
    comp = evaluation["comparison"]
    regmix = by_label["regmix"]["target_loss"]
    assert comp["regmix_target_loss"] == regmix
    assert comp["regmix_rank"] == 1 + [r["label"] for r in evaluation["runs"]].index("regmix")
    for name in ("natural", "uniform", "target_only"):
        assert comp["baselines"][name] == {"target_loss": by_label[name]["target_loss"],
                                           "regmix_minus_baseline": regmix - by_label[name]["target_loss"]}
    assert comp["regmix_beats"] == sorted(n for n in comp["baselines"] if regmix < by_label[n]["target_loss"])
    rank = evaluation["rank_invariance"]
    assert rank["num_mixtures"] == 5
    proxy = [m["proxy_loss"] for m in rank["mixtures"]]
    target = [m["target_loss"] for m in rank["mixtures"]]
    assert rank["spearman"] == pytest.approx(scipy.stats.spearmanr(proxy, target)[0], abs=1e-12)
    # the sweep mixture's proxy-scale loss is the one the sweep measured
    table = pd.read_csv(out / "sweep" / "results.csv").set_index("run_id")
    (sweep_label,) = [lab for lab in by_label if lab.startswith("sweep:")]
    assert by_label[sweep_label]["proxy_loss"] == table.loc[sweep_label.split(":", 1)[1], "val_loss/literature"]


def _check_fit_against_the_sweep(out: Path) -> None:
    """metrics.json's CV numbers recomputed from predictions.csv, whose true values are the sweep's losses."""
    metrics = json.loads((out / "fit" / "metrics.json").read_text())
    predictions = pd.read_csv(out / "fit" / "predictions.csv")
    table = pd.read_csv(out / "sweep" / "results.csv").set_index("run_id")
    assert metrics["targets"]["val_loss/literature"]["definition"] == "literature"
    for kind in ("lightgbm", "linear"):
        rows = predictions[(predictions["regressor"] == kind) & (predictions["split"] == "cv")]
        assert sorted(rows["run_id"]) == sorted(table.index)
        np.testing.assert_array_equal(rows["true"].to_numpy(), table.loc[rows["run_id"], "val_loss/literature"])
        entry = metrics["regressors"][kind]["targets"]["val_loss/literature"]
        rho = scipy.stats.spearmanr(rows["true"], rows["predicted"])[0]
        if np.isnan(rho):  # a constant prediction (tiny fit): no correlation, stored as null
            assert entry["spearman"] is None
        else:
            assert entry["spearman"] == pytest.approx(rho, abs=1e-12)
        assert entry["mse"] == pytest.approx(np.mean((rows["true"] - rows["predicted"]) ** 2), rel=1e-12)


def _check_in_a_browser(report: Path) -> None:
    """The pipeline's report in headless Chromium (tests/helpers/browser.py): loads, every image renders, the
    answer is on the first screen, the sweep table scrolls inside its box (no page-wide overflow)."""
    from helpers.browser import ensure_chromium, measure

    chromium = ensure_chromium()
    if chromium is None:
        print("report not checked in a browser: no /usr/bin/chromium and it could not be installed", file=sys.stderr)
        return
    m = measure(report, chromium)
    assert m["images"] >= 5 and m["broken"] == 0, m
    assert m["answer_top"] is not None and m["answer_top"] < m["viewport_height"] * 0.5, m
    assert "--full-validation" in m["answer_text"] and "per_split_data_args" in m["answer_text"], m["answer_text"]
    assert m["page_width"] <= m["viewport_width"], m


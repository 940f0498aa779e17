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
from helpers.pipeline_configs import FIXTURE_CONFIG, FIXTURE_CORPUS


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
    assert all(statuses[s] == "done" for s in ("sweep", "fit", "search", "confirm", "full_scale", "evaluate",
                                               "report"))
    for run_id, mtime in finished.items():  # finished runs were not redone
        result = runs / run_id / "result.json"
        assert result.stat().st_mtime_ns == mtime
        assert len(list((runs / run_id / "logs").glob("attempt-*.json"))) == 1
    assert "skipped" in done.stdout and "report:" in done.stdout  # the summary table

    evaluation = json.loads((out / "evaluation.json").read_text())
    labels = set(evaluation["mixtures"])
    assert {"regmix", "natural", "uniform", "best_domain", "best_sweep"} <= labels and len(labels) == 6
    _check_evaluation_against_the_runs(out, evaluation)
    _check_confirmation(out, evaluation, done.stdout)
    _check_fit_against_the_sweep(out)
    _check_qa_was_never_trained_on(out)
    assert "verdicts" in done.stdout and "natural:" in done.stdout  # the summary prints the verdicts
    html = (out / "report.html").read_text()
    for needle in ("Pipeline stages", "Sweep: proxy losses", "Target runs", "Rank invariance", "noise ceiling",
                   "Confirmation round", "data:image/png"):
        assert needle in html
    for png in ("stage_timings.png", "target_comparison.png", "rank_invariance.png"):
        assert (out / "report" / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    _check_in_a_browser(out / "report.html")
    search = json.loads((out / "search" / "search.json").read_text())
    assert search["result"]["within_caps"] is True
    assert (out / "search" / "export" / "per_split_data_args.json").is_file()
    for label in ("regmix", "natural", "uniform", "best_domain", "best_sweep"):
        assert (out / "full_scale" / "mixtures" / f"{label}.json").is_file()

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
    """Every number of evaluation.json recomputed from the runs' own result.json files (target: qa, the held-out
    domain; the comparison on its test split, rank invariance on its validation split)."""
    from regmix_megatron.full_scale.verdict import compare

    runs = json.loads((out / "full_scale" / "runs.json").read_text())["runs"]
    search = json.loads((out / "search" / "search.json").read_text())
    predicted = {"regmix": search["result"]["predicted_loss"],
                 **{k: v["predicted_loss"] for k, v in search["baselines"].items()}}
    assert evaluation["target"] == "qa" and evaluation["split"] == "test"
    for label, m in evaluation["mixtures"].items():
        seeds = ["1234", "1235"] if label in ("regmix", "natural", "uniform") else ["1234"]
        assert list(m["target_losses"]) == seeds  # paired: the same seeds for RegMix, natural and uniform
        for seed, loss in m["target_losses"].items():
            assert not Path(runs[label]["target"][seed]["run_dir"]).is_absolute()  # the folder can be moved
            result = _result_json(out / runs[label]["target"][seed]["run_dir"])
            assert result["seed"] == int(seed) and m["run_ids"][seed] == result["run_id"]
            assert loss == result["split_loss"]["test"]["qa"]
            assert m["valid_losses"][seed] == result["val_loss"]["qa"]
            assert result["mixture"] == m["mixture"]
        assert m["mean"] == pytest.approx(np.mean(list(m["target_losses"].values())), abs=1e-12)
        proxy_result = _result_json(out / runs[label]["proxy"]["run_dir"])
        assert m["proxy_loss"] == proxy_result["val_loss"]["qa"]
        if label in predicted and not (label == "regmix" and evaluation["confirmation"]["replaced"]):
            assert m["predicted_loss"] == predicted[label]  # the search's own prediction
        else:  # a compared mixture the search never predicted (or a replaced pick): the same model's
            assert m["predicted_loss"] == pytest.approx(_model_prediction(out, evaluation, m["mixture"]), rel=1e-12)
    groups = [list(m["target_losses"].values()) for m in evaluation["mixtures"].values() if m["num_seeds"] >= 2]
    pooled = np.sqrt(sum(np.var(g, ddof=1) * (len(g) - 1) for g in groups) / sum(len(g) - 1 for g in groups))
    assert evaluation["noise"]["sd"] == pytest.approx(pooled, rel=1e-9) and evaluation["noise"]["dof"] == 3
    comp = evaluation["comparison"]
    regmix = evaluation["mixtures"]["regmix"]["target_losses"]
    for name, c in comp["baselines"].items():
        document_sd = _document_sd(out, runs, "regmix", name)  # the paired bootstrap over qa's test documents
        assert c["document_sd"] == pytest.approx(document_sd, rel=1e-12) and c["seed_sd"] is not None
        again = compare(name, {int(k): v for k, v in regmix.items()},
                        {int(k): v for k, v in evaluation["mixtures"][name]["target_losses"].items()}, pooled,
                        document_sd=document_sd)
        assert c["verdict"] == again.verdict and c["text"] == again.text
        assert c["combined_sd"] == pytest.approx(np.hypot(c["seed_sd"], c["document_sd"]), rel=1e-12)
    _check_losses_by_source(out, runs, evaluation)
    assert set(comp["baselines"]) == {"natural", "uniform", "best_domain", "best_sweep"}
    rank = evaluation["rank_invariance"]
    assert rank["num_mixtures"] == 6 and rank["split"] == "valid"
    proxy = [m["proxy_loss"] for m in rank["mixtures"]]
    target = [m["target_loss"] for m in rank["mixtures"]]
    assert rank["spearman"] == pytest.approx(scipy.stats.spearmanr(proxy, target)[0], abs=1e-12)
    assert rank["passed"] == (rank["spearman"] >= rank["threshold"])
    # best_domain and best_sweep are the sweep's best single-domain / sampled mixtures on the validation split
    table = pd.read_csv(out / "sweep" / "fit_runs.csv")
    weights = table[[c for c in table.columns if c.startswith("weight/")]]
    single = (weights > 0).sum(axis=1) == 1
    for name, rows in (("best_domain", table[single]), ("best_sweep", table[~single])):
        best = rows.loc[rows["val_loss/qa"].idxmin()]
        assert evaluation["mixtures"][name]["mixture_hash"] == best["mixture_hash"]
        assert evaluation["mixtures"][name]["proxy_loss"] == best["val_loss/qa"]
    fit = evaluation["fit"]
    rho = {k: v["spearman"] for k, v in fit["cv"].items()}
    finite = {k: v for k, v in rho.items() if v is not None}
    assert fit["regressor"] == (max(finite, key=lambda k: (finite[k], k == "lightgbm")) if finite else "lightgbm")


def _model_prediction(out: Path, evaluation: dict, mixture: dict) -> float:
    from regmix_megatron.regression.fitting import find_model
    from regmix_megatron.regression.models import load_regressor

    fit = read_record(out, "fit")["outputs"]["values"]
    model = load_regressor(find_model(out / "fit", evaluation["fit"]["regressor"], fit["target"]))
    return float(model.predict(np.array([[mixture.get(d, 0.0) for d in model.domains]]))[0])


def _run_documents(out: Path, runs: dict, label: str) -> list:
    from regmix_megatron.runs.document_losses import read_document_losses

    return [read_document_losses(out / rec["run_dir"]).splits["test"] for rec in runs[label]["target"].values()]


def _document_sd(out: Path, runs: dict, a: str, b: str) -> float:
    from regmix_megatron.full_scale.document_noise import document_bootstrap
    from regmix_megatron.regression.target import Target

    draws = document_bootstrap(_run_documents(out, runs, a), _run_documents(out, runs, b), Target.domain("qa"))
    return float(np.std(draws, ddof=1))


def _check_losses_by_source(out: Path, runs: dict, evaluation: dict) -> None:
    """qa's test loss by source, recomputed from each run's per-document losses and domains.json's sources (the
    evaluator records the split's first documents, up to the last one scored)."""
    from regmix_megatron.data.manifest import DomainRegistry

    sources = np.array(DomainRegistry.load(out / "data" / "domains.json").get("qa").document_sources("test"))
    for label, m in evaluation["mixtures"].items():
        docs = [d["qa"] for d in _run_documents(out, runs, label)]
        names = sources[: len(docs[0].loss_sum)]
        want = {s: np.mean([d.loss_sum[names == s].sum() / d.num_tokens[names == s].sum() for d in docs])
                for s in set(names.tolist())}
        assert m["test_loss_by_source"]["qa"] == pytest.approx(want, rel=1e-12) and len(want) >= 1
    shares = evaluation["documents"]["domains"]["qa"]
    assert sum(s["num_tokens"] for s in shares["sources"].values()) == shares["num_tokens"]


def _check_confirmation(out: Path, evaluation: dict, stdout: str) -> None:
    """The confirmation round: what it measured went into evaluation.json, its pick trained as regmix."""
    record = json.loads((out / "confirm" / "confirmation.json").read_text())
    conf = evaluation["confirmation"]
    decision = record["decision"]
    assert conf["chosen"] == decision["chosen"] and conf["split"] == "valid" and conf["reason"] == decision["reason"]
    assert [c["label"] for c in conf["candidates"]] == [c["label"] for c in record["candidates"]]
    assert [c["label"] for c in record["candidates"]][:2] == ["regmix", "top1"]
    for row, measured in zip(conf["candidates"], decision["candidates"]):
        assert row["losses"] == measured["losses"] and len(row["losses"]) == 2
        assert row["mean"] == pytest.approx(np.mean(list(measured["losses"].values())), abs=1e-12)
    chosen = next(c for c in record["candidates"] if c["label"] == decision["chosen"])
    runs = json.loads((out / "full_scale" / "runs.json").read_text())
    assert runs["runs"]["regmix"]["mixture_hash"] == chosen["mixture_hash"]
    assert runs["confirmation"] == {"chosen": conf["chosen"], "replaced": conf["replaced"], "reason": conf["reason"]}
    assert "confirmation round" in stdout and ("replaced the search's pick" in stdout) == conf["replaced"]


def _check_qa_was_never_trained_on(out: Path) -> None:
    """qa is evaluated in every run (valid and test) and in no run's mixture; the export lists it for
    validation only."""
    results = [json.loads(p.read_text()) for p in out.rglob("runs/*/result.json")]
    assert len(results) >= 6 + 4 + 2 + 3 + 8  # sweep, corners, noise repeats, proxy-scale, target-scale
    for r in results:
        assert "qa" not in r["mixture"]
        assert "qa" in r["val_loss"] and "qa" in r["split_loss"]["test"]
    for root in ("sweep", "confirm/proxy-scale", "full_scale/proxy-scale", "full_scale/target-scale"):
        planned = json.loads((out / root / "sweep.json").read_text())["runs"]
        assert planned and all("qa" not in run["mixture"] for run in planned)
    per_split = json.loads((out / "search" / "export" / "per_split_data_args.json").read_text())
    assert not any("/qa/" in p for p in per_split["train"][1::2])
    assert any("/qa/" in p for p in per_split["valid"]) and any("/qa/" in p for p in per_split["test"])
    domains = json.loads((out / "data" / "domains.json").read_text())
    assert [d["name"] for d in domains["domains"] if d.get("evaluation_only")] == ["qa"]
    noise = pd.read_csv(out / "sweep" / "noise_runs.csv")
    assert noise.groupby("mixture_hash")["seed"].apply(sorted).tolist() == [[1234, 1235]] * 2


def _check_fit_against_the_sweep(out: Path) -> None:
    """metrics.json's CV numbers recomputed from predictions.csv, whose true values are the sweep's losses."""
    metrics = json.loads((out / "fit" / "metrics.json").read_text())
    predictions = pd.read_csv(out / "fit" / "predictions.csv")
    table = pd.read_csv(out / "sweep" / "fit_runs.csv").set_index("run_id")
    assert (table["seed"] == 1234).all()  # one run per mixture: the noise repeats stay out of the fit
    assert metrics["targets"]["val_loss/qa"]["definition"] == "qa"
    for kind in ("lightgbm", "linear"):
        rows = predictions[(predictions["regressor"] == kind) & (predictions["split"] == "cv")]
        assert sorted(rows["run_id"]) == sorted(table.index)
        np.testing.assert_array_equal(rows["true"].to_numpy(), table.loc[rows["run_id"], "val_loss/qa"])
        entry = metrics["regressors"][kind]["targets"]["val_loss/qa"]
        rho = scipy.stats.spearmanr(rows["true"], rows["predicted"])[0]
        if np.isnan(rho):  # a constant prediction (tiny fit): no correlation, stored as null
            assert entry["spearman"] is None
        else:
            assert entry["spearman"] == pytest.approx(rho, abs=1e-12)
        assert entry["mse"] == pytest.approx(np.mean((rows["true"] - rows["predicted"]) ** 2), rel=1e-12)
        assert len(entry["cv"]["spearman_folds"]) == 3


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


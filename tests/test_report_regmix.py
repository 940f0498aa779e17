"""The RegMix sections (regmix_megatron/report/regmix.py): a real fit and search rendered by ``report``; the validation
curves by phase on run directories written the way the trainer writes them."""

from __future__ import annotations

import base64
import json
import re

import numpy as np
import pandas as pd
import pytest

from regmix_megatron.cli import main
from regmix_megatron.report.page import build_report
from regmix_megatron.report.regmix import (
    curves_sections,
    labelled_run_dirs,
    phase_boundaries,
    phase_table_rows,
    validation_curve,
)

DOMAINS = ["code", "news", "web"]


@pytest.fixture(scope="module")
def pipeline_outputs(tmp_path_factory):
    """A real fit + search on a small synthetic sweep table (no mocks)."""
    tmp = tmp_path_factory.mktemp("report")
    rng = np.random.default_rng(0)
    n = 60
    w = rng.dirichlet(np.ones(3), size=n)
    frame = pd.DataFrame({"run_id": [f"r{i}" for i in range(n)]})
    for i, d in enumerate(DOMAINS):
        frame[f"weight/{d}"] = w[:, i]
    for i, d in enumerate(DOMAINS):
        frame[f"val_loss/{d}"] = 4 - 1.5 * w[:, i] + 0.3 * w[:, (i + 1) % 3] + 0.01 * rng.standard_normal(n)
    results = tmp / "results.csv"
    frame.to_csv(results, index=False)
    assert main(["fit", "--results", str(results), "--target", "val_loss/web", "--cv-folds", "3",
                 "--num-rounds", "50", "--learning-rate", "0.1", "--output-dir", str(tmp / "fit")]) == 0
    (tmp / "tokens.json").write_text('{"code": 1000, "news": 3000, "web": 6000}')
    assert main(["search", "--fit-dir", str(tmp / "fit"), "--tokens-per-domain", str(tmp / "tokens.json"),
                 "--num-candidates", "2000", "--top-k", "10", "--chunk-size", "1000",
                 "--output-dir", str(tmp / "search")]) == 0
    return tmp


def test_report_renders_all_plots(pipeline_outputs, tmp_path):
    out = tmp_path / "report.html"
    rc = main(["report", "--fit-dir", str(pipeline_outputs / "fit"), "--search-dir", str(pipeline_outputs / "search"),
               "--output", str(out), "--png-dir", str(tmp_path / "png")])
    assert rc == 0
    text = out.read_text()
    images = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', text)
    assert len(images) == 4
    for data in images:
        assert base64.b64decode(data)[:8] == b"\x89PNG\r\n\x1a\n"
    for title in ("Predicted vs true on held-out runs", "Optimized weights vs prior and baselines",
                  "Correlation of domain weight with loss", "Feature importance", "Regression metrics",
                  "Search result and baselines"):
        assert title in text
    assert "Spearman" in text and "target_only" in text
    assert sorted(p.name for p in (tmp_path / "png").iterdir()) == [  # outputs.json: the folder's list, last
        "feature_importance.png", "outputs.json", "predicted_vs_true.png", "weight_loss_heatmap.png", "weights.png"]
    assert "<script" not in text and "http" not in text.split("<body>")[1].split("generated")[0]


def test_report_needs_inputs(tmp_path):
    assert main(["report", "--output", str(tmp_path / "r.html")]) == 2


# ---- validation curves by phase -------------------------------------------------------------------------------
def write_run(path, losses_by_step, phases=None):
    path.mkdir(parents=True)
    rows = [{"step": s, "train_loss": 1.0} for s in range(1, 41)]
    for row in rows:
        if row["step"] in losses_by_step:
            row["val_loss"] = losses_by_step[row["step"]]
    (path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (path / "result.json").write_text(json.dumps({"status": "completed", "phases": phases}))
    return path


PHASES = [
    {"phase": 1, "fraction": 0.75, "start_sample": 0, "end_sample": 480, "start_step": 0, "end_step": 30,
     "num_samples": 480, "requested": {"a": 1.0, "b": 0.0}, "realized": {"a": 1.0, "b": 0.0},
     "samples": {"a": 480, "b": 0}},
    {"phase": 2, "fraction": 0.25, "start_sample": 480, "end_sample": 640, "start_step": 30, "end_step": 40,
     "num_samples": 160, "requested": {"a": 0.25, "b": 0.75}, "realized": {"a": 0.25, "b": 0.75},
     "samples": {"a": 40, "b": 120}},
]


def test_curves_boundaries_and_phase_table(tmp_path):
    losses = {s: {"a": 6 - s / 20, "b": 6 - s / 40} for s in (10, 20, 30, 40)}
    scheduled = write_run(tmp_path / "scheduled", losses, PHASES)
    static = write_run(tmp_path / "static", {s: {"a": v["a"], "b": v["b"] + 0.1} for s, v in losses.items()})
    assert validation_curve(scheduled) == [(s, losses[s]) for s in (10, 20, 30, 40)]
    result = json.loads((scheduled / "result.json").read_text())
    assert phase_boundaries(result["phases"]) == [30]
    rows = phase_table_rows(result["phases"])
    assert [(r["phase"], r["domain"]) for r in rows] == [("1 (steps 0..29)", "a"), ("2 (steps 30..39)", "a"),
                                                         ("2 (steps 30..39)", "b")]  # b has no weight in phase 1
    sections = curves_sections({"regmix": scheduled, "regmix_static": static}, highlight="b")
    (section,) = sections
    assert "step 30" in section.html and "Requested vs realized" in section.html
    assert section.images[0][0] == "phase_curves.png" and section.images[0][1][:4] == b"\x89PNG"
    page = build_report(sections, tmp_path / "report.html", title="t", png_dir=tmp_path / "png")
    assert (tmp_path / "png" / "phase_curves.png").is_file() and page.is_file()
    (one,) = curves_sections({"natural": static, "regmix": scheduled})  # a static run first: one phase
    assert "(step -)" in one.html and "Requested vs realized" not in one.html
    runs_json = {"runs": {"regmix": {"target": {"run_dir": str(scheduled)}}, "natural": {"target": None}}}
    assert labelled_run_dirs(runs_json, ["regmix", "regmix_static", "natural"]) == {"regmix": str(scheduled)}
    relative = {"runs": {"regmix": {"target": {"1234": {"run_dir": scheduled.name}, "1235": {"run_dir": "x"}}}}}
    assert labelled_run_dirs(relative, ["regmix"], root=scheduled.parent) == {"regmix": str(scheduled)}

"""The RegMix sections (regmix_megatron/report/regmix.py): a real fit and search rendered by ``report``."""

from __future__ import annotations

import base64
import re

import numpy as np
import pandas as pd
import pytest

from regmix_megatron.cli import main

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

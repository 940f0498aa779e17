"""The report in a real headless browser (Chromium from Debian's packages; installed here when missing and this
runs as root; skipped with the reason otherwise): it loads, every image renders, the answer (mixture, export
files, Megatron-LM flags, confidence) is on the first screen, and nothing overflows the page sideways."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from regmix_megatron.cli import main

from helpers.browser import ensure_chromium, measure
from sweep_fixtures import write_domains_json

DOMAINS = ("arxiv", "code", "web")


@pytest.fixture(scope="module")
def chromium():
    path = ensure_chromium()
    if path is None:
        pytest.skip("no /usr/bin/chromium and it could not be installed (apt-get install -y chromium, as root)")
    return path


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    """``report`` on a real fit and search (with export) of a small synthetic sweep table."""
    tmp = tmp_path_factory.mktemp("browser")
    rng = np.random.default_rng(1)
    n = 60
    w = rng.dirichlet(np.ones(len(DOMAINS)), size=n)
    frame = pd.DataFrame({"run_id": [f"r{i}" for i in range(n)]})
    for i, d in enumerate(DOMAINS):
        frame[f"weight/{d}"] = w[:, i]
    for i, d in enumerate(DOMAINS):
        frame[f"val_loss/{d}"] = 4 - 1.5 * w[:, i] + 0.3 * w[:, (i + 1) % 3] + 0.01 * rng.standard_normal(n)
    frame.to_csv(tmp / "results.csv", index=False)
    domains_json = write_domains_json(tmp / "data", DOMAINS)
    assert main(["fit", "--results", str(tmp / "results.csv"), "--target-average", "--num-folds", "3",
                 "--num-rounds", "50", "--learning-rate", "0.1", "--output-dir", str(tmp / "fit")]) == 0
    assert main(["search", "--fit-dir", str(tmp / "fit"), "--domains-json", str(domains_json),
                 "--num-candidates", "2000", "--top-k", "10", "--output-dir", str(tmp / "search")]) == 0
    out = tmp / "report.html"
    assert main(["report", "--fit-dir", str(tmp / "fit"), "--search-dir", str(tmp / "search"),
                 "--output", str(out)]) == 0
    return out


def test_the_report_renders_with_the_answer_on_the_first_screen(chromium, report):
    m = measure(report, chromium)
    assert m["images"] >= 4 and m["broken"] == 0, m
    assert m["answer_top"] is not None and m["answer_top"] < m["viewport_height"] * 0.5, m  # first half-screen
    for needle in ("arxiv", "per_split_data_args", "--per-split-data-args-path", "--full-validation", "Spearman"):
        assert needle in m["answer_text"], (needle, m["answer_text"][:1500])
    assert m["page_width"] <= m["viewport_width"], m  # wide tables scroll inside their box

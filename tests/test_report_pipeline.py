"""The pipeline's report (regmix_megatron/report/pipeline.py): the sweep table by target, the headline."""

from __future__ import annotations

import numpy as np

from regmix_megatron.mixture import Mixture
from regmix_megatron.report.pipeline import headline, numbers_for_log, sweep_frame, sweep_section
from regmix_megatron.results import make_table, write_table
from regmix_megatron.target import Target

DOMAINS = ("code", "legal")


def _results(tmp_path):
    rng = np.random.default_rng(0)
    rows = []
    for i in range(5):
        m = Mixture.from_array(DOMAINS, rng.dirichlet(np.ones(2)))
        rows.append({"run_id": f"run{i}", "mixture_hash": m.hash, "seed": 1, "weights": m.as_dict(),
                     "val_loss": {"code": 5.0 - i * 0.1, "legal": 4.0 + i * 0.3}})
    write_table(make_table(rows, DOMAINS), tmp_path / "results.csv")
    return tmp_path / "results.csv", rows


def test_sweep_rows_sorted_by_the_targets_value(tmp_path):
    path, rows = _results(tmp_path)
    for target in (Target.domain("code"), Target.average(), Target.weighted({"code": 0.9, "legal": 0.1})):
        frame = sweep_frame(path, target)
        expected = sorted(rows, key=lambda r: target.value(r["val_loss"]))
        assert frame["run_id"].tolist() == [r["run_id"] for r in expected]
        assert frame["target"].tolist() == [target.value(r["val_loss"]) for r in expected]
    html = sweep_section(path, Target.average()).html
    assert "target (average)" in html and "w code" in html and "loss legal" in html and "5 proxy runs" in html


def test_headline_and_log_numbers():
    evaluation = {"target": {"code": 0.5, "legal": 0.5},
                  "comparison": {"regmix_target_loss": 4.0, "regmix_beats": ["natural"],
                                 "baselines": {"natural": {"target_loss": 4.2}, "uniform": {"target_loss": 3.9}}},
                  "rank_invariance": {"spearman": 0.8, "num_mixtures": 4}}
    assert headline(evaluation) == ("Target: 0.5 code + 0.5 legal. RegMix target-scale loss 4.0000; it beats 1 of 2 "
                                    "baselines (natural). Rank invariance (Spearman, proxy vs target scale): 0.80 "
                                    "over 4 mixtures.")
    assert numbers_for_log(evaluation) == {"regmix": 4.0, "natural": 4.2, "uniform": 3.9, "rank_spearman": 0.8,
                                           "rank_num_mixtures": 4}

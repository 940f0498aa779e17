"""The pipeline's report (regmix_megatron/report/pipeline.py): the sweep table by target, the headline."""

from __future__ import annotations

import re

import numpy as np
import pytest

from regmix_megatron.mixtures.mixture import Mixture
from regmix_megatron.report.pipeline import headline, numbers_for_log, sweep_frame, sweep_section
from regmix_megatron.runs.results import make_table, write_table
from regmix_megatron.regression.target import Target

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
    from helpers.evaluation import CLEAR_WIN, runs
    from regmix_megatron.full_scale.evaluation import evaluate

    evaluation = evaluate("a", runs(CLEAR_WIN))
    assert headline(evaluation) == (
        "Target: a (test split). RegMix beats natural and uniform beyond seed noise (test documents not measured) "
        "and loses to no baseline: "
        "natural: better by 0.300 (36.7 sd); uniform: better by 0.200 (24.5 sd); best_domain: within noise "
        "(-0.005, 0.4 sd). Rank invariance: Spearman 1.00 over 5 mixtures (pass at 0.60).")
    numbers = numbers_for_log(evaluation)
    assert numbers["regmix"] == {"mean": pytest.approx(5.0), "sd": pytest.approx(0.01), "seeds": 3}
    assert numbers["verdicts"]["natural"] == "better by 0.300 (36.7 sd)" and numbers["aim_met"] is True
    assert "sweep:abcdef0123" not in numbers and numbers["rank_num_mixtures"] == 5
    noisy = dict(CLEAR_WIN, natural=({"x": 0.3, "y": 0.7}, [5.005, 5.015, 4.995], 6.2))
    line = headline(evaluate("a", runs(noisy)))
    assert "Aim not met: RegMix beats uniform beyond seed noise (test documents not measured); not natural:" in line
    assert "natural: within noise" in line and "loses to" not in line
    loses = dict(CLEAR_WIN, best_domain=({"x": 1.0}, [4.8], 6.2))  # a baseline better than RegMix beyond noise
    line = headline(evaluate("a", runs(loses)))
    assert ("Aim not met: RegMix beats natural and uniform beyond seed noise (test documents not measured); it loses "
            "to best_domain:") in line


def test_target_section_shows_every_seed_and_never_a_win_within_noise():
    from helpers.evaluation import CLEAR_WIN, runs
    from regmix_megatron.full_scale.evaluation import evaluate
    from regmix_megatron.report.pipeline import fit_choice_section, target_sections

    evaluation = evaluate("a", runs(CLEAR_WIN), fit={
        "regressor": "linear", "regressor_reason": "highest cross-validated Spearman (linear 0.810, lightgbm 0.500)",
        "cv": {"linear": {"spearman": 0.81, "fold_mean": 0.8, "fold_sd": 0.1, "folds": [0.7, 0.9]},
               "lightgbm": {"spearman": 0.5, "fold_mean": 0.45, "fold_sd": 0.2, "folds": [0.3, 0.6]}},
        "noise": {"sd": 0.02, "dof": 8, "num_mixtures": 4, "spread_sd": 0.2, "ceiling": 0.95}})
    (section,) = target_sections(evaluation)
    for needle in ("seed 1", "seed 3", "5.0100", "better by 0.300 (36.7 sd)", "within noise", "pooled"):
        assert needle in section.html
    fit = fit_choice_section(evaluation).html
    assert "<b>linear</b>" in fit and "0.95" in fit and "0.70, 0.90" in fit


def test_the_report_shows_each_verdicts_noise_parts_and_the_loss_by_source_never_a_win_within_noise():
    """Documents that disagree (helpers.evaluation): the seeds alone would call the 0.02 over natural a win; the
    report shows the verdict within noise with its parts, and which source each mixture wins."""
    from helpers.evaluation import DOCUMENTS_DISAGREE, SOURCES, document_losses, document_profiles, runs
    from regmix_megatron.full_scale.evaluation import evaluate
    from regmix_megatron.report.pipeline import target_sections

    spec = DOCUMENTS_DISAGREE
    evaluation = evaluate("a", runs(spec), documents=document_losses(spec, document_profiles()),
                          document_sources={"a": SOURCES})
    line = headline(evaluation)
    assert "beyond noise (seeds and test documents)" in line and "natural: within noise" in line
    assert "RegMix beats natural" not in line and "Aim not met" in line
    (section,) = target_sections(evaluation)
    assert "documents dominate" in section.html and "seed sd" in section.html and "document sd" in section.html
    assert "faq (20 docs)" in section.html and "chat (20 docs)" in section.html
    assert "a description, not a verdict" in section.html.lower()
    by = {lab: m.test_loss_by_source["a"] for lab, m in evaluation.mixtures.items()}
    assert min(by, key=lambda lab: by[lab]["faq"]) == "regmix" and min(by, key=lambda lab: by[lab]["chat"]) != "regmix"
    for label, won in (("regmix", "faq"), ("natural", "chat")):  # the row's last cell: the sources it wins
        assert re.search(rf"<td>{label}</td>(<td>[0-9.]+</td>){{2}}<td>{won} \(20 docs\)</td>", section.html)
    numbers = numbers_for_log(evaluation)
    assert numbers["verdict_sd"]["natural"]["dominant"] == "documents" and set(numbers["by_source"]) == set(spec)


def test_the_confirmation_round_is_a_table_of_what_it_measured_and_says_which_candidate_went_on():
    from helpers.evaluation import CLEAR_WIN, runs
    from regmix_megatron.full_scale.confirmation import CandidateRuns, Confirmation, decide
    from regmix_megatron.full_scale.evaluation import ConfirmationSummary, evaluate
    from regmix_megatron.report.pipeline import confirmation_section

    assert confirmation_section(evaluate("a", runs(CLEAR_WIN))) is None  # the round did not run: no section
    for losses, chosen, words in (
            ({"regmix": {1: 5.00, 2: 5.04}, "best_domain:code": {1: 4.60, 2: 4.62}}, "best_domain:code",
             "replaced the search's pick"),
            ({"regmix": {1: 5.00, 2: 5.04}, "best_domain:code": {1: 5.01, 2: 5.05}}, "regmix",
             "pick (<b>regmix</b>) stands")):
        decision = decide(losses, None, Target.domain("a"))
        record = Confirmation(Target.domain("a"), "valid", (1, 2), tuple(
            CandidateRuns(label, {"a": 1.0}, f"h{i}", {1: "r", 2: "s"}) for i, label in enumerate(losses)), decision)
        evaluation = evaluate("a", runs(CLEAR_WIN), confirmation=ConfirmationSummary.from_confirmation(record))
        html = confirmation_section(evaluation).html
        assert decision.chosen == chosen and words in html
        for needle in ("seed 1", "seed 2", "best_domain:code", f"{losses['best_domain:code'][2]:.4f}",
                       "combined sd", "valid split"):
            assert needle in html

"""The pipeline's evaluation (regmix_megatron/full_scale/evaluation.py): per-seed test losses, verdicts against
the pooled seed sd, rank invariance on the validation split, on constructed runs."""

from __future__ import annotations

import math

import pytest

from helpers.evaluation import CLEAR_WIN, runs
from regmix_megatron.errors import RegmixError
from regmix_megatron.full_scale.evaluation import evaluate, spread_indices
from regmix_megatron.regression.target import Target
from regmix_megatron.full_scale.verdict import verdict_lines


def test_per_seed_losses_verdicts_and_rank_invariance():
    evaluation = evaluate("a", runs(CLEAR_WIN), predicted={"regmix": 5.9}, rank_threshold=0.6)
    doc = evaluation.to_json_obj()  # evaluation.json's content
    m = doc["mixtures"]
    assert m["regmix"]["target_losses"] == {"1": 5.00, "2": 5.01, "3": 4.99}  # the test split
    assert m["regmix"]["valid_losses"] == {"1": 5.50, "2": 5.51, "3": 5.49}
    assert m["regmix"]["mixture"] == {"x": 0.6, "y": 0.4} and m["regmix"]["predicted_loss"] == 5.9
    assert m["regmix"]["mean"] == pytest.approx(5.0) and m["regmix"]["sd"] == pytest.approx(0.01)
    assert m["best_domain"]["sd"] is None and m["best_domain"]["num_seeds"] == 1
    assert doc["noise"]["sd"] == pytest.approx(0.01) and doc["noise"]["dof"] == 6  # 3 mixtures x 2
    comp = doc["comparison"]["baselines"]
    assert comp["natural"]["verdict"] == "better" and comp["natural"]["num_sd"] == pytest.approx(30.0)
    assert comp["uniform"]["text"] == "better by 0.200 (20.0 sd)"
    assert comp["best_domain"]["verdict"] == "within noise"  # 0.005 apart: 0.5 sd
    assert "sweep:abcdef0123" not in comp  # rank mixtures are not baselines
    assert doc["comparison"]["aim_met"] and doc["comparison"]["regmix_rank"] == 1
    rank = doc["rank_invariance"]
    assert rank["num_mixtures"] == 5 and rank["split"] == "valid"
    assert rank["spearman"] == pytest.approx(1.0) and rank["passed"]  # same order at both scales
    assert rank["chance_level"] == pytest.approx(0.9, abs=1e-9)  # n = 5: exact permutation quantile
    lines = verdict_lines(evaluation)
    assert lines[0] == "RegMix 5.0000 vs natural 5.3000: better by 0.300 (30.0 sd)"
    assert lines[-1].startswith("aim met")


def test_a_win_within_noise_is_never_claimed():
    noisy = dict(CLEAR_WIN)
    noisy["regmix"] = ({"x": 0.6, "y": 0.4}, [5.00, 5.40, 4.60], 6.0)  # sd 0.4: natural is 0.3 away
    noisy["natural"] = ({"x": 0.3, "y": 0.7}, [5.30, 5.70, 4.90], 6.2)
    evaluation = evaluate("a", runs(noisy))
    doc = evaluation.to_json_obj()
    comp = doc["comparison"]
    assert comp["baselines"]["natural"]["verdict"] == "within noise"
    assert comp["baselines"]["natural"]["paired_sd"] == pytest.approx(0.0, abs=1e-9)  # reported, not the unit
    assert not comp["aim_met"]
    assert verdict_lines(evaluation)[-1].startswith("aim not met: vs natural: within noise")
    # one seed everywhere: no noise measured, no win claimed
    single = {k: (v[0], v[1][:1], v[2]) for k, v in CLEAR_WIN.items()}
    doc = evaluate("a", runs(single)).to_json_obj()
    assert doc["noise"]["sd"] is None
    assert {c["verdict"] for c in doc["comparison"]["baselines"].values()} == {"noise not measured"}
    assert not doc["comparison"]["aim_met"]


def test_rank_invariance_fails_below_the_threshold_and_needs_three_mixtures():
    flipped = dict(CLEAR_WIN)
    flipped["regmix"] = ({"x": 0.6, "y": 0.4}, [5.00, 5.01, 4.99], 6.5)  # worst at proxy scale, best at target
    doc = evaluate("a", runs(flipped), rank_threshold=0.6).to_json_obj()
    assert doc["rank_invariance"]["spearman"] < 0.6 and not doc["rank_invariance"]["passed"]
    few = {k: CLEAR_WIN[k] for k in ("regmix", "natural")}
    assert evaluate("a", runs(few)).rank_invariance.spearman is None


def test_weighted_and_average_targets_and_errors():
    spec = {k: CLEAR_WIN[k] for k in ("regmix", "natural")}
    doc = evaluate(Target.weighted({"a": 0.75, "b": 0.25}), runs(spec)).to_json_obj()
    assert doc["target"] == {"a": 0.75, "b": 0.25}
    assert doc["mixtures"]["regmix"]["target_losses"]["1"] == pytest.approx(0.75 * 5.0 + 0.25 * 9.0)
    avg = evaluate("average", runs(spec)).to_json_obj()
    assert avg["mixtures"]["natural"]["target_losses"]["2"] == pytest.approx((5.31 + 9.0) / 2)
    with pytest.raises(RegmixError, match=r"no validation loss for target domain 'c'"):
        evaluate("c", runs(spec))
    with pytest.raises(RegmixError, match="regmix"):
        evaluate("a", runs({"natural": CLEAR_WIN["natural"]}))
    broken = runs(spec)
    del broken["regmix"]["target"]["1"]["result"]["split_loss"]
    with pytest.raises(RegmixError, match="no test losses"):
        evaluate("a", broken)


def test_spread_indices_cover_the_range():
    values = [5.0, 1.0, 3.0, 4.0, 2.0]
    assert spread_indices(values, 2) == [1, 0]  # best and worst
    assert spread_indices(values, 3) == [1, 2, 0]
    assert sorted(spread_indices(values, 9)) == [0, 1, 2, 3, 4]
    assert spread_indices(values, 0) == []
    assert math.isfinite(spread_indices([1.0], 1)[0])


def test_evaluation_json_is_read_back_typed_as_it_was_written(tmp_path):
    from regmix_megatron.full_scale.evaluation import read_evaluation, write_evaluation

    fit = {"regressor": "linear", "regressor_reason": "set in the config", "cv": {"linear": {"spearman": 0.8}},
           "noise": {"sd": 0.02, "ceiling": 0.9}}
    for evaluation in (evaluate("a", runs(CLEAR_WIN), predicted={"regmix": 5.9}),
                       evaluate(Target.weighted({"a": 0.75, "b": 0.25}), runs(CLEAR_WIN), fit=fit)):
        path = write_evaluation(tmp_path / "evaluation.json", evaluation)
        read = read_evaluation(tmp_path)
        assert read == evaluation and read.comparison.baselines["natural"].verdict == "better"
        write_evaluation(tmp_path / "again.json", read)
        assert (tmp_path / "again.json").read_bytes() == path.read_bytes()


def test_a_damaged_evaluation_or_run_record_is_refused_naming_the_field(tmp_path):
    import json

    from regmix_megatron.full_scale.evaluation import read_evaluation

    doc = evaluate("a", runs(CLEAR_WIN)).to_json_obj()
    doc["mixtures"]["natural"]["target_losses"]["2"] = "5.31"
    (tmp_path / "evaluation.json").write_text(json.dumps(doc))
    with pytest.raises(RegmixError, match=r"evaluation\.json: field 'mixtures\.natural\.target_losses\.2' must be a "
                                          r"number, not str"):
        read_evaluation(tmp_path)
    doc["format"] = "regmix-megatron/evaluation/v1"
    (tmp_path / "evaluation.json").write_text(json.dumps(doc))
    with pytest.raises(RegmixError, match=r"field 'format' must be one of \['regmix-megatron/evaluation/v2'\]"):
        read_evaluation(tmp_path)
    broken = runs(CLEAR_WIN)
    broken["uniform"]["target"]["2"]["result"]["split_loss"] = {"test": [5.21]}
    with pytest.raises(RegmixError, match=r"runs\.json: runs\.uniform\.target\.2\.result: field 'split_loss\.test' "
                                          "must be a mapping"):
        evaluate("a", broken)


def test_the_confirmation_section_round_trips_and_an_older_file_without_it_still_reads(tmp_path):
    import json

    from regmix_megatron.full_scale.confirmation import CandidateRuns, Confirmation, decide
    from regmix_megatron.full_scale.evaluation import ConfirmationSummary, read_evaluation, write_evaluation

    losses = {"regmix": {1: 5.00, 2: 5.04}, "top1": {1: 5.01, 2: 5.03}, "best_sweep:r1": {1: 4.70, 2: 4.72}}
    decision = decide(losses, None, Target.domain("a"))
    record = Confirmation(Target.domain("a"), "valid", (1, 2), tuple(
        CandidateRuns(label, {"a": 1.0}, f"h{i}", {1: f"r{i}1", 2: f"r{i}2"}) for i, label in enumerate(losses)),
        decision)
    summary = ConfirmationSummary.from_confirmation(record)
    assert summary.chosen == "best_sweep:r1" and summary.replaced and summary.split == "valid"
    rows = {c.label: c for c in summary.candidates}
    assert rows["top1"].mean == pytest.approx(5.02) and rows["top1"].sd == pytest.approx(math.sqrt(2) * 0.01)
    assert rows["regmix"].num_sd is None and rows["best_sweep:r1"].better_than_pick
    assert rows["best_sweep:r1"].num_sd == pytest.approx((5.02 - 4.71) / rows["best_sweep:r1"].combined_sd)
    evaluation = evaluate("a", runs(CLEAR_WIN), confirmation=summary)
    write_evaluation(tmp_path / "evaluation.json", evaluation)
    assert read_evaluation(tmp_path) == evaluation
    doc = evaluation.to_json_obj()
    assert doc["confirmation"]["chosen"] == "best_sweep:r1"
    assert doc["confirmation"]["candidates"][0]["losses"] == {"1": 5.00, "2": 5.04}
    del doc["confirmation"]  # written before the round existed
    (tmp_path / "evaluation.json").write_text(json.dumps(doc))
    assert read_evaluation(tmp_path).confirmation is None
    assert evaluate("a", runs(CLEAR_WIN)).to_json_obj()["confirmation"] is None

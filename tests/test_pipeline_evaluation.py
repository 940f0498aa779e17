"""The pipeline's evaluation (regmix_megatron/pipeline/evaluation.py): target comparison and rank invariance."""

from __future__ import annotations

import pytest

from regmix_megatron.errors import RegmixError


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


def test_evaluation_of_a_weighted_target():
    from regmix_megatron.pipeline.evaluation import evaluate
    from regmix_megatron.target import Target

    target = Target.weighted({"a": 0.75, "b": 0.25})
    runs = {"regmix": _result("r", a=3.0, b=5.0), "natural": _result("n", a=3.2, b=4.0)}
    doc = evaluate(target, runs, runs)
    assert doc["target"] == {"a": 0.75, "b": 0.25}
    assert doc["comparison"]["regmix_target_loss"] == 0.75 * 3.0 + 0.25 * 5.0
    assert doc["comparison"]["baselines"]["natural"]["target_loss"] == 0.75 * 3.2 + 0.25 * 4.0
    assert doc["comparison"]["regmix_beats"] == []
    with pytest.raises(RegmixError, match=r"run r: no validation loss for target domain\(s\) \['c'\]"):
        evaluate(Target.weighted({"a": 1, "c": 1}), runs, runs)

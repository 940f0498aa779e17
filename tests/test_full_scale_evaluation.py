"""The pipeline's evaluation (regmix_megatron/full_scale/evaluation.py): per-seed test losses, verdicts against
the sd of each difference (seeds and test documents), losses by source, rank invariance on the validation split,
on constructed runs."""

from __future__ import annotations

import math

import numpy as np
import pytest

from helpers.evaluation import (CLEAR_WIN, DOCUMENTS_DISAGREE, SOURCES, document_losses, document_profiles,
                                runs)
from regmix_megatron.errors import DataError, RegmixError
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
    unit = 0.01 * math.sqrt(2 / 3)  # the sd of a difference of two 3-seed means
    assert comp["natural"]["verdict"] == "better" and comp["natural"]["num_sd"] == pytest.approx(0.3 / unit)
    assert comp["uniform"]["text"] == "better by 0.200 (24.5 sd)"
    assert comp["best_domain"]["verdict"] == "within noise"  # 0.005 apart, one seed: 0.4 sd
    assert "sweep:abcdef0123" not in comp  # rank mixtures are not baselines
    assert doc["comparison"]["aim_met"] and doc["comparison"]["regmix_rank"] == 1
    rank = doc["rank_invariance"]
    assert rank["num_mixtures"] == 5 and rank["split"] == "valid"
    assert rank["spearman"] == pytest.approx(1.0) and rank["passed"]  # same order at both scales
    assert rank["chance_level"] == pytest.approx(0.9, abs=1e-9)  # n = 5: exact permutation quantile
    lines = verdict_lines(evaluation)
    assert lines[0] == ("RegMix 5.0000 vs natural 5.3000: better by 0.300 (36.7 sd); sd 0.0082 from seeds only "
                        "(documents not measured)")
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
    good_target = doc["target"]
    doc["target"] = {"a": -1.0}  # a target the tool cannot have written: the file and the field, not a bare error
    (tmp_path / "evaluation.json").write_text(json.dumps(doc))
    with pytest.raises(DataError, match=r"evaluation\.json: field 'target': target\.a=-1\.0 .*run the pipeline's "
                                        r"evaluate stage again"):
        read_evaluation(tmp_path)
    doc["target"] = good_target
    doc["format"] = "regmix-megatron/evaluation/v1"
    (tmp_path / "evaluation.json").write_text(json.dumps(doc))
    with pytest.raises(RegmixError, match=r"field 'format' must be one of \['regmix-megatron/evaluation/v2'\]"):
        read_evaluation(tmp_path)
    broken = runs(CLEAR_WIN)
    broken["uniform"]["target"]["2"]["result"]["split_loss"] = {"test": [5.21]}
    with pytest.raises(RegmixError, match=r"runs\.json: runs\.uniform\.target\.2\.result: field 'split_loss\.test' "
                                          "must be a mapping"):
        evaluate("a", broken)


def test_documents_that_disagree_turn_a_win_beyond_the_seeds_into_noise():
    """Seed noise is tiny (pooled sd 0.001) and RegMix is 0.02 better than natural on average, but it is much
    better on the FAQ and much worse on the chats: another draw of 40 documents could reverse it. Seeds alone call
    it a win; the paired document bootstrap says within noise, and that the documents dominate. The 0.3 win over
    uniform survives both."""
    spec, profiles = DOCUMENTS_DISAGREE, document_profiles()
    seeds_only = evaluate("a", runs(spec))
    assert seeds_only.comparison.baselines["natural"].verdict == "better"  # 0.02 / (0.001 sqrt(2/3)) = 24 sd
    evaluation = evaluate("a", runs(spec), documents=document_losses(spec, profiles),
                          document_sources={"a": SOURCES})
    natural = evaluation.comparison.baselines["natural"]
    assert natural.verdict == "within noise" and natural.difference == pytest.approx(-0.02)
    d = profiles["regmix"] - profiles["natural"]  # per-document differences (equal lengths)
    expected = np.std(d, ddof=0) / math.sqrt(len(d))  # the bootstrap's sd of their mean
    doc = natural.to_json()
    assert doc["document_sd"] == pytest.approx(expected, rel=0.1)
    assert doc["seed_sd"] == pytest.approx(0.001 * math.sqrt(2 / 3))
    assert doc["combined_sd"] == pytest.approx(math.hypot(doc["seed_sd"], doc["document_sd"]))
    assert doc["dominant"] == "documents" and natural.num_sd < 2
    uniform = evaluation.comparison.baselines["uniform"]
    assert uniform.verdict == "better" and uniform.noise.document_sd == pytest.approx(doc["document_sd"])
    assert not evaluation.comparison.aim_met  # natural is not beaten beyond noise
    lines = verdict_lines(evaluation)
    assert lines[0].startswith("RegMix 5.0000 vs natural 5.0200: within noise (-0.020, ")
    assert "documents dominate" in lines[0] and "aim not met: vs natural: within noise" in lines[-1]


def test_runs_without_document_losses_still_evaluate_and_say_documents_not_measured():
    spec = DOCUMENTS_DISAGREE
    documents = document_losses(spec, document_profiles())
    documents["natural"][1] = None  # one seed trained before document_losses.json existed
    evaluation = evaluate("a", runs(spec), documents=documents, document_sources={"a": SOURCES})
    natural = evaluation.comparison.baselines["natural"]
    assert natural.noise.document_sd is None and natural.verdict == "better"  # the seeds alone, as before
    assert natural.to_json()["dominant"] == "unmeasured"
    assert verdict_lines(evaluation)[0].endswith("from seeds only (documents not measured)")
    assert evaluation.comparison.baselines["uniform"].noise.document_sd is not None
    assert evaluation.mixtures["natural"].test_loss_by_source == {}
    none = evaluate("a", runs(spec))
    assert none.documents.domains == {} and all(c.noise.document_sd is None for c in none.comparison.baselines.values())


def test_the_target_loss_by_source_shows_which_part_of_the_target_each_mixture_wins():
    spec, profiles = DOCUMENTS_DISAGREE, document_profiles()
    documents = document_losses(spec, profiles)
    evaluation = evaluate("a", runs(spec), documents=documents, document_sources={"a": SOURCES})
    faq = np.array([s == "faq" for s in SOURCES])
    for label, m in evaluation.mixtures.items():
        per_seed = [r.splits["test"]["a"] for r in documents[label]]
        for source, mask in (("faq", faq), ("chat", ~faq)):
            want = np.mean([x.loss_sum[mask].sum() / x.num_tokens[mask].sum() for x in per_seed])
            assert m.test_loss_by_source["a"][source] == pytest.approx(want, rel=1e-12)
    by = {lab: m.test_loss_by_source["a"] for lab, m in evaluation.mixtures.items()}
    assert by["regmix"]["faq"] < by["natural"]["faq"] and by["regmix"]["chat"] > by["natural"]["chat"]
    shares = evaluation.documents.domains["a"]
    assert (shares.num_documents, shares.num_tokens) == (40, 4000)
    assert {s: (v.num_documents, v.num_tokens) for s, v in shares.sources.items()} == {"chat": (20, 2000),
                                                                                       "faq": (20, 2000)}
    with pytest.raises(RegmixError, match=r"'a': 40 documents scored but the split has 39 \(domains.json\)"):
        evaluate("a", runs(spec), documents=documents, document_sources={"a": SOURCES[:-1]})


def test_when_only_the_first_documents_of_the_split_are_scored_their_sources_are_the_first_ones():
    """The evaluator records the documents up to the last one holding a scored token (a split evaluated on its
    first tokens): the by-source breakdown reads the sources of those documents, in split order."""
    spec, profiles = DOCUMENTS_DISAGREE, document_profiles()
    first = {lab: p[:25] for lab, p in profiles.items()}  # 20 FAQ documents, then 5 chats, of a 40-document split
    evaluation = evaluate("a", runs(spec), documents=document_losses(spec, first), document_sources={"a": SOURCES})
    shares = evaluation.documents.domains["a"].sources
    assert {s: v.num_documents for s, v in shares.items()} == {"chat": 5, "faq": 20}
    chat = evaluation.mixtures["natural"].test_loss_by_source["a"]["chat"]
    assert chat == pytest.approx(np.mean(first["natural"][20:]) - first["natural"].mean() + 5.020, rel=1e-12)


def test_documents_and_parts_round_trip_and_an_older_evaluation_json_still_reads(tmp_path):
    import json

    from regmix_megatron.full_scale.evaluation import read_evaluation, write_evaluation

    spec = DOCUMENTS_DISAGREE
    evaluation = evaluate("a", runs(spec), documents=document_losses(spec, document_profiles()),
                          document_sources={"a": SOURCES}, predicted={"regmix": 5.1, "natural": 5.2})
    path = write_evaluation(tmp_path / "evaluation.json", evaluation)
    assert read_evaluation(path) == evaluation
    old = json.loads(path.read_text())  # as written before documents were measured
    del old["documents"]
    for m in old["mixtures"].values():
        del m["test_loss_by_source"]
    for c in old["comparison"]["baselines"].values():
        for key in ("seed_sd", "document_sd", "combined_sd", "dominant"):
            del c[key]
    (tmp_path / "old.json").write_text(json.dumps(old))
    read = read_evaluation(tmp_path / "old.json")
    assert read.documents is None and read.mixtures["regmix"].test_loss_by_source == {}
    assert read.comparison.baselines["natural"].noise is None
    assert read.comparison.baselines["natural"].verdict == "within noise"  # the verdict as it was written
    assert verdict_lines(read)[0].startswith("RegMix 5.0000 vs natural 5.0200: within noise")


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

"""The confirmation round's choices (regmix_megatron/full_scale/confirmation.py) on constructed losses."""

from __future__ import annotations

import numpy as np
import pytest

from regmix_megatron.errors import DataError
from regmix_megatron.full_scale.confirmation import choose_candidates, decide
from regmix_megatron.mixtures.mixture import Mixture
from regmix_megatron.regression.target import Target
from regmix_megatron.runs.document_losses import DocumentLosses

DOMAINS = ["code", "legal", "math"]


def mix(*weights) -> Mixture:
    return Mixture.from_array(DOMAINS, weights)


def test_candidates_are_the_pick_top1_and_the_best_measured_sweep_entries_distinct_by_hash():
    pick, top1 = mix(0.5, 0.2, 0.3), mix(0.6, 0.1, 0.3)
    sweep = [mix(1, 0, 0), mix(0, 1, 0), mix(0, 0, 1), mix(0.2, 0.4, 0.4), mix(0.5, 0.2, 0.3), mix(0.1, 0.1, 0.8)]
    values = [5.0, 4.9, 5.3, 4.7, 4.6, 4.8]
    single = [True, True, True, False, False, False]
    ids = [f"r{i}" for i in range(6)]
    got = choose_candidates(pick, top1, sweep, values, single, ids, num_domains=2, num_sweep=2)
    # the best sampled sweep entry (r4) is the pick itself: left out, so the next best is not promoted in its place
    assert list(got) == ["regmix", "top1", "best_domain:legal", "best_domain:code", "best_sweep:r3"]
    assert got["best_domain:legal"] is sweep[1] and got["best_sweep:r3"] is sweep[3]
    assert list(choose_candidates(pick, pick, sweep, values, single, ids, num_domains=1, num_sweep=0)) == \
        ["regmix", "best_domain:legal"]  # a top-1 equal to the pick is the pick
    with pytest.raises(ValueError, match="differ in length"):
        choose_candidates(pick, None, sweep, values[:-1], single, ids)


def test_the_pick_stands_unless_a_candidate_is_better_beyond_noise():
    within = {"regmix": {1: 5.00, 2: 5.02, 3: 4.98}, "top1": {1: 4.99, 2: 5.01, 3: 4.97},
              "best_sweep:r1": {1: 5.10, 2: 5.12, 3: 5.08}}
    d = decide(within, None, Target.domain("qa"))
    assert d.chosen == "regmix" and "the pick stands" in d.reason
    assert d.pooled_seed_sd == pytest.approx(0.02) and d.seed_dof == 6
    top1 = next(o for o in d.outcomes if o.label == "top1")
    assert top1.difference == pytest.approx(0.01) and not top1.better_than_pick
    assert top1.noise["seed_sd"] == pytest.approx(0.02 * np.sqrt(2 / 3)) and top1.noise["document_sd"] is None
    clear = {**within, "best_domain:code": {1: 4.80, 2: 4.82, 3: 4.78}, "best_sweep:r2": {1: 4.85, 2: 4.87, 3: 4.83}}
    d = decide(clear, None, Target.domain("qa"))
    assert d.chosen == "best_domain:code"  # the lowest measured mean among all, not merely the first winner
    assert {o.label for o in d.outcomes if o.better_than_pick} == {"best_domain:code", "best_sweep:r2"}
    assert "becomes the pick" in d.reason and d.to_json()["chosen"] == "best_domain:code"


def _docs(per_doc, seed_shift):
    n = per_doc.size
    return {"qa": DocumentLosses(loss_sum=(per_doc + seed_shift) * 100, num_tokens=np.full(n, 100))}


def test_document_noise_can_turn_a_seed_only_win_into_within_noise():
    """A candidate that is much better on a few documents and worse on the rest: by the seeds alone it wins, but
    another draw of documents could reverse it, and the combined sd says so."""
    rng = np.random.default_rng(0)
    n = 40
    base = 5 + rng.normal(0, 0.3, n)
    specialist = base + np.where(rng.random(n) < 0.2, -0.8, 0.15)  # better on ~8 documents, worse on the others
    shifts = {1: -0.001, 2: 0.001}
    losses = {"regmix": {s: float((base + d).mean()) for s, d in shifts.items()},
              "best_domain:code": {s: float((specialist + d).mean()) for s, d in shifts.items()}}
    documents = {"regmix": [_docs(base, d) for d in shifts.values()],
                 "best_domain:code": [_docs(specialist, d) for d in shifts.values()]}
    by_seeds = decide(losses, None, Target.domain("qa"))
    with_docs = decide(losses, documents, Target.domain("qa"), num_draws=2000)
    cand = [o for o in with_docs.outcomes if o.label != "regmix"][0]
    assert losses["best_domain:code"][1] < losses["regmix"][1]  # it is better on these documents
    assert by_seeds.chosen == "best_domain:code"
    assert with_docs.chosen == "regmix" and cand.noise["dominant"] == "documents"


def test_every_candidate_needs_two_seeds_and_the_pick_must_be_measured():
    with pytest.raises(DataError, match="fewer than 2 seeds"):
        decide({"regmix": {1: 5.0, 2: 5.1}, "top1": {1: 4.0}}, None, Target.domain("qa"))
    with pytest.raises(DataError, match="no measured losses of 'regmix'"):
        decide({"top1": {1: 4.0, 2: 4.1}}, None, Target.domain("qa"))


def _record(tmp_path):
    from regmix_megatron.full_scale.confirmation import CandidateRuns, Confirmation

    losses = {"regmix": {1: 5.00, 2: 5.02}, "best_domain:code": {1: 4.80, 2: 4.83}}
    decision = decide(losses, None, Target.domain("qa"))
    candidates = (CandidateRuns("regmix", mix(0.5, 0.2, 0.3).as_dict(), mix(0.5, 0.2, 0.3).hash,
                                {1: "confirm/proxy-scale/runs/a", 2: "confirm/proxy-scale/runs/b"}),
                  CandidateRuns("best_domain:code", mix(1, 0, 0).as_dict(), mix(1, 0, 0).hash,
                                {1: "sweep/runs/c", 2: "confirm/proxy-scale/runs/d"}))
    return Confirmation(Target.domain("qa"), "valid", (1, 2), candidates, decision)


def test_confirmation_json_is_read_back_typed_as_it_was_written(tmp_path):
    from regmix_megatron.full_scale.confirmation import read_confirmation, write_confirmation

    record = _record(tmp_path)
    path = write_confirmation(tmp_path / "confirmation.json", record)
    read = read_confirmation(tmp_path)
    assert read == record and read.decision.replaced and read.chosen.run_dirs[1] == "sweep/runs/c"
    assert read.decision.outcome("best_domain:code").combined_sd == pytest.approx(
        read.decision.pooled_seed_sd * np.sqrt(2 / 2))
    write_confirmation(tmp_path / "again.json", read)
    assert (tmp_path / "again.json").read_bytes() == path.read_bytes()


def test_a_damaged_confirmation_json_is_refused_naming_the_field(tmp_path):
    import json

    from regmix_megatron.full_scale.confirmation import read_confirmation

    doc = _record(tmp_path).to_json_obj()
    doc["decision"]["candidates"][1]["losses"]["x"] = 4.9
    (tmp_path / "confirmation.json").write_text(json.dumps(doc))
    with pytest.raises(DataError, match=r"decision\.candidates.*key 'x' is not a seed"):
        read_confirmation(tmp_path)
    doc = _record(tmp_path).to_json_obj()
    doc["target"] = 3
    (tmp_path / "confirmation.json").write_text(json.dumps(doc))
    with pytest.raises(DataError, match=r"confirmation\.json: field 'target': target=3 is invalid.*confirm stage"):
        read_confirmation(tmp_path)
    doc = _record(tmp_path).to_json_obj()
    doc["decision"]["chosen"] = "top1"
    (tmp_path / "confirmation.json").write_text(json.dumps(doc))
    with pytest.raises(DataError, match=r"decision\.chosen.*'top1' is not among the candidates"):
        read_confirmation(tmp_path)

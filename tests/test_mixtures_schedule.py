"""The schedule value: validation with the fix named, files and hashes, phase boundaries, features."""

from __future__ import annotations

import json

import numpy as np
import pytest

from regmix_megatron.errors import DataError
from regmix_megatron.mixtures.mixture import Mixture
from regmix_megatron.mixtures.schedule import (
    Schedule,
    ScheduleError,
    feature_names,
    is_schedules_file,
    load_schedule,
    parse_feature_names,
    phase_starts,
    read_schedules,
    schedule_of,
    write_schedules,
)

MAIN = Mixture.from_dict({"code": 0.5, "legal": 0.3, "math": 0.2})
FINAL = Mixture.from_dict({"code": 0.1, "legal": 0.0, "math": 0.9})


def two_phase() -> Schedule:
    return Schedule.from_phases([(0.8, MAIN), (0.2, FINAL)])


def test_a_static_mixture_is_a_one_phase_schedule_with_its_hash():
    s = Schedule.from_mixture(MAIN)
    assert s.is_static and s.hash == MAIN.hash and s.overall() == MAIN
    assert schedule_of(MAIN) == s
    assert Schedule.from_obj(MAIN.to_json_obj()).hash == MAIN.hash  # a mixture file reads as one phase


def test_two_phases_overall_tokens_and_hash():
    s = two_phase()
    assert s.num_phases == 2 and s.fractions == (0.8, 0.2) and not s.is_static
    assert s.overall().as_dict() == pytest.approx({"code": 0.42, "legal": 0.24, "math": 0.34})
    assert s.tokens_per_domain(1000) == pytest.approx({"code": 420, "legal": 240, "math": 340})
    assert s.hash != MAIN.hash and s.hash != FINAL.hash
    swapped = Schedule.from_phases([(0.8, FINAL), (0.2, MAIN)])
    assert swapped.hash != s.hash  # order matters
    assert Schedule.from_phases([(0.7, MAIN), (0.3, FINAL)]).hash != s.hash  # so do the fractions


@pytest.mark.parametrize("phases, match", [
    ([(0.8, MAIN), (0.3, FINAL)], "sum to 1.1, not 1: .*make them sum to 1"),
    ([(1.0, MAIN), (0.0, FINAL)], "phase 2 fraction is 0.0: every phase needs a positive share"),
    ([(1.2, MAIN), (-0.2, FINAL)], "phase 2 fraction is -0.2"),
    ([(float("nan"), MAIN)], "phase 1 fraction is nan"),
    ([("a", MAIN)], "phase 1 fraction 'a' is not a number"),
    ([], "no phases"),
])
def test_invalid_fractions_are_refused_with_the_fix(phases, match):
    with pytest.raises(ScheduleError, match=match):
        Schedule.from_phases(phases)


def test_fractions_close_to_one_are_rescaled_exactly():
    s = Schedule.from_phases([(0.8000001, MAIN), (0.2, FINAL)])
    assert sum(s.fractions) == pytest.approx(1.0, abs=1e-15)
    assert s.fractions[0] == pytest.approx(0.8, abs=1e-6)


def test_phases_over_different_domains_get_zero_weights():
    other = Mixture.from_dict({"code": 1.0})
    s = Schedule.from_phases([(0.5, MAIN), (0.5, other)])
    assert s.domains == ("code", "legal", "math")
    assert s.mixtures[1].as_dict() == {"code": 1.0, "legal": 0.0, "math": 0.0}


def test_file_round_trip_keeps_the_hash(tmp_path):
    s = two_phase()
    for name in ("schedule.json", "schedule.yaml"):
        path = s.save(tmp_path / name)
        again = load_schedule(path)
        assert again == s and again.hash == s.hash
    obj = json.loads((tmp_path / "schedule.json").read_text())
    assert obj["format"] == "regmix-megatron/schedule/v1" and obj["hash"] == s.hash
    assert [p["fraction"] for p in obj["phases"]] == [0.8, 0.2]


def test_mixture_file_loads_as_one_phase(tmp_path):
    path = MAIN.save(tmp_path / "mixture.json")
    assert load_schedule(path) == Schedule.from_mixture(MAIN)


@pytest.mark.parametrize("edit, match", [
    (lambda o: o.update(hash="0" * 16), "stated hash 0000000000000000 does not match .*write the file again"),
    (lambda o: o["phases"][1].update(fraction=0.3), "sum to 1.1"),
    (lambda o: o["phases"][1].pop("weights"), "phase 2 must be a mapping with 'fraction'"),
    (lambda o: o["phases"][0].update(steps=3), r"phase 1 has unknown key\(s\) \['steps'\]"),
    (lambda o: o["phases"][0]["weights"].update(code=-1), "weight of 'code' is -1.0 < 0"),
    (lambda o: o.update(phases=[]), "'phases' must be a non-empty list"),
    (lambda o: o.update(format="other/v9"), "format 'other/v9' is not"),
])
def test_edited_files_are_refused_naming_the_fix(tmp_path, edit, match):
    obj = two_phase().to_json_obj()
    edit(obj)
    path = tmp_path / "schedule.json"
    path.write_text(json.dumps(obj))
    with pytest.raises(DataError, match=match):
        load_schedule(path)


def test_a_domain_listed_twice_in_a_phase_is_refused(tmp_path):
    path = tmp_path / "schedule.json"
    path.write_text('{"phases": [{"fraction": 1.0, "weights": {"code": 0.5, "code": 0.5}}]}')
    with pytest.raises(DataError, match="listed more than once"):
        load_schedule(path)


def test_jsonl_round_trip_and_duplicates(tmp_path):
    a, b = two_phase(), Schedule.from_phases([(0.5, MAIN), (0.5, FINAL)])
    path = write_schedules(tmp_path / "schedules.jsonl", [a, b])
    assert read_schedules(path) == [a, b]
    assert is_schedules_file(path)
    from regmix_megatron.mixtures.mixture import write_mixtures

    assert not is_schedules_file(write_mixtures(tmp_path / "mixtures.jsonl", [MAIN]))
    write_schedules(tmp_path / "twice.jsonl", [a, b, a])
    with pytest.raises(DataError, match="the same schedule as line 1"):
        read_schedules(tmp_path / "twice.jsonl")


@pytest.mark.parametrize("fractions, n, g, expected", [
    ((0.8, 0.2), 480, 16, [0, 384, 480]),  # 30 steps of 16: phase 2 starts at step 24
    ((0.5, 0.5), 30 * 16, 16, [0, 240, 480]),
    ((0.7, 0.3), 100, 16, [0, 70, 100]),  # 16 does not divide 100: boundaries on samples
    ((1.0,), 7, 1, [0, 7]),
    ((1 / 3, 1 / 3, 1 / 3), 9, 3, [0, 3, 6, 9]),
])
def test_phase_starts(fractions, n, g, expected):
    assert phase_starts(fractions, n, g) == expected


def test_a_phase_without_a_step_is_refused():
    with pytest.raises(ScheduleError, match="phase 2 .* gets no steps of a run of 10 steps: raise its fraction"):
        phase_starts((0.99, 0.01), 160, 16)


def test_features_round_trip_and_sum_to_one():
    s = two_phase()
    names = feature_names(s.domains, 2)
    assert names == ["p1/code", "p1/legal", "p1/math", "p2/code", "p2/legal", "p2/math"]
    assert parse_feature_names(names) == (2, ["code", "legal", "math"])
    assert parse_feature_names(["code", "legal"]) is None
    x = s.features()
    assert x.sum() == pytest.approx(1.0) and np.allclose(x[:3], 0.8 * MAIN.as_array())
    back = Schedule.from_features(s.fractions, s.domains, x)
    assert back.fractions == s.fractions
    for a, b in zip(back.mixtures, s.mixtures):
        assert np.allclose(a.as_array(), b.as_array(), rtol=0, atol=1e-15)
    assert feature_names(["a"], 12)[0] == "p01/a" and sorted(feature_names(["a"], 12)) == feature_names(["a"], 12)


def test_a_one_phase_schedule_reads_from_its_mixtures_files_and_has_its_weights_as_features(tmp_path):
    """One path: a mixture file and a mixtures JSONL read as one-phase schedules (read_trained: what a sweep trains,
    either JSONL), and a one-phase schedule's features are the weights, named by the domains."""
    from regmix_megatron.mixtures.mixture import write_mixtures
    from regmix_megatron.mixtures.schedule import read_trained

    one = Schedule.from_mixture(MAIN)
    assert one.overall() is MAIN and load_schedule(MAIN.save(tmp_path / "main.json")) == one
    write_mixtures(tmp_path / "m.jsonl", [MAIN, FINAL])
    assert not is_schedules_file(tmp_path / "m.jsonl")
    assert read_trained(tmp_path / "m.jsonl") == [one, Schedule.from_mixture(FINAL)]
    assert [s.hash for s in read_trained(tmp_path / "m.jsonl")] == [MAIN.hash, FINAL.hash]
    write_schedules(tmp_path / "two.jsonl", [two_phase()])
    assert read_trained(tmp_path / "two.jsonl") == [two_phase()]
    assert feature_names(["code", "legal", "math"], 1) == ["code", "legal", "math"]
    assert one.features().tolist() == list(MAIN.weights) and parse_feature_names(feature_names(["a"], 1)) is None
    assert parse_feature_names(["p1/a", "p1/b"]) == (1, ["a", "b"])  # an older one-phase table's names still parse

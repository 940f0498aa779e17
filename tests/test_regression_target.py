"""The optimization target (regmix_megatron/regression/target.py): parsing, canonical forms, columns and values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from regmix_megatron.errors import ConfigError, DataError
from regmix_megatron.regression.target import AVERAGE_COLUMN, WEIGHTED_COLUMN, Target


def test_three_forms_parse_and_round_trip_through_json():
    average, domain = Target.parse("average"), Target.parse("literature")
    weighted = Target.parse({"reference": 3, "qa": 7})
    assert (average.kind, domain.kind, weighted.kind) == ("average", "domain", "weighted")
    assert average.to_json() == "average" and domain.to_json() == "literature"
    assert weighted.to_json() == {"qa": 0.7, "reference": 0.3}
    assert list(weighted.to_json()) == ["qa", "reference"]  # canonical: domains sorted
    for t in (average, domain, weighted):
        assert Target.from_json(t.to_json()) == t
        assert Target.parse(t) is t
    assert hash(Target.parse({"qa": 0.7, "reference": 0.3})) == hash(weighted)


def test_weights_are_normalized_exactly():
    t = Target.weighted({"a": 1, "b": 1, "c": 1})
    weights = [w for _, w in t.weights]
    assert sum(weights) == 1.0  # exact, not approximately: the residual lands on one weight
    assert weights == pytest.approx([1 / 3] * 3, abs=1e-16)
    # the same mapping scaled gives the same target
    assert Target.weighted({"a": 5.0, "b": 5.0, "c": 5.0}) == t


def test_one_domain_mapping_is_that_domains_target():
    assert Target.parse({"qa": 2.5}) == Target.domain("qa")
    assert Target.parse({"qa": 2.5}).to_json() == "qa"


@pytest.mark.parametrize("value, needle", [
    ({"qa": 0}, r"target\.qa=0 is invalid: give a positive number"),
    ({"qa": -0.3, "b": 1}, r"target\.qa=-0\.3 is invalid"),
    ({"qa": float("nan"), "b": 1}, r"target\.qa=nan"),
    ({"qa": "lots", "b": 1}, r"target\.qa='lots'"),
    ({"qa": True, "b": 1}, r"target\.qa=True"),
    ({}, r"non-empty mapping"),
    ({"average": 1, "qa": 1}, r"'average' is the average target, not a domain"),
    ("", r"domain name '' is invalid"),
    (3, r"target=3 is invalid: use 'average', a domain name, or a mapping"),
])
def test_errors_name_the_field_and_the_fix(value, needle):
    with pytest.raises(ConfigError, match=needle):
        Target.parse(value)


def test_errors_name_the_field_given_by_the_caller():
    with pytest.raises(ConfigError, match=r"PipelineConfig\.target\.qa=0 is invalid"):
        Target.parse({"qa": 0, "b": 1}, where="PipelineConfig.target")


def test_label_column_and_needs():
    assert Target.average().label == "average" and Target.average().column == AVERAGE_COLUMN
    assert Target.domain("qa").label == "qa" and Target.domain("qa").column == "val_loss/qa"
    w = Target.weighted({"qa": 0.7, "reference": 0.3})
    assert w.label == "0.7 qa + 0.3 reference" and w.column == WEIGHTED_COLUMN
    assert Target.average().needs == () and Target.domain("qa").needs == ("qa",)
    assert w.needs == ("qa", "reference")
    assert Target.domain("qa").single_domain == "qa"
    assert w.single_domain is None and Target.average().single_domain is None
    assert Target.from_column("val_loss/qa") == Target.domain("qa")
    assert Target.from_column(AVERAGE_COLUMN) == Target.average()
    assert Target.from_column(WEIGHTED_COLUMN) is None and Target.from_column("train_loss") is None


def test_check_domains():
    Target.weighted({"qa": 1, "code": 1}).check_domains(["code", "qa", "web"])
    Target.average().check_domains(["code"])
    with pytest.raises(ConfigError, match=r"target=\{'code': 0\.5, 'math': 0\.5\} is invalid: \['math'\] not among"):
        Target.weighted({"code": 1, "math": 1}).check_domains(["code", "qa"])


def test_values_from_a_run():
    losses = {"a": 3.0, "b": 5.0, "c": 4.5}
    assert Target.average().value(losses) == 4.166666666666667
    assert Target.domain("b").value(losses) == 5.0
    assert Target.weighted({"a": 0.25, "b": 0.75}).value(losses) == 0.25 * 3.0 + 0.75 * 5.0
    # the mean over every evaluated domain present, whatever their order
    assert Target.average().value({"c": 4.5, "a": 3.0, "b": 5.0}) == Target.average().value(losses)
    assert math.isnan(Target.average().value({"a": 3.0, "b": math.inf}))
    with pytest.raises(DataError, match=r"run r1: no validation loss for target domain 'z'"):
        Target.domain("z").value(losses, where="run r1")
    with pytest.raises(DataError, match=r"target domain\(s\) \['z'\]"):
        Target.weighted({"a": 1, "z": 1}).value(losses)
    with pytest.raises(DataError, match="no per-domain validation loss"):
        Target.average().value({})


def test_table_values_equal_each_runs_value_exactly():
    """A run's target is the same float from its result.json and from the results table."""
    rng = np.random.default_rng(0)
    domains = [f"d{i}" for i in range(8)]
    table = {d: rng.uniform(3, 7, 200) for d in domains}
    table["d3"][5] = np.nan
    for target in (Target.average(), Target.domain("d2"), Target.weighted({"d1": 0.2, "d4": 0.5, "d7": 0.3})):
        values = target.values(table)
        assert values.shape == (200,)
        for i in (0, 5, 17, 199):
            run = {d: float(table[d][i]) for d in domains}
            expected = target.value(run)
            assert (values[i] == expected) or (math.isnan(values[i]) and math.isnan(expected))
    assert math.isnan(Target.average().values(table)[5])
    assert Target.domain("d2").values(table).tolist() == table["d2"].tolist()  # no arithmetic on one domain
    with pytest.raises(DataError, match=r"no validation loss column for target domain\(s\) \['x'\]"):
        Target.domain("x").values(table)

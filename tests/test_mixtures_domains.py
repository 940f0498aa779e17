"""The one check before a mixture or schedule trains (regmix_megatron/mixtures/domains.py): over exactly the
registry's training domains, never an evaluation-only one; a schedule checked phase by phase."""

from __future__ import annotations

import pytest

from regmix_megatron.data.manifest import DomainRegistry
from regmix_megatron.errors import DataError
from regmix_megatron.mixtures.domains import check_trainable
from regmix_megatron.mixtures.mixture import Mixture
from regmix_megatron.mixtures.schedule import Schedule

from test_data_manifest import make_registry


def _with_held_out() -> DomainRegistry:
    return make_registry({"books": 100, "code": 300, "qa": 600}).with_evaluation_only(["qa"])


def test_a_mixture_is_refused_for_weight_on_an_evaluation_only_domain():
    reg = _with_held_out()
    with pytest.raises(DataError, match=r"evaluation-only domain\(s\) \{'qa': 0.5\}.*never trained on"):
        check_trainable(reg, Mixture.from_dict({"books": 0.25, "code": 0.25, "qa": 0.5}), "m.json")
    with pytest.raises(DataError, match=r"\['qa'\] are evaluation-only"):
        reg.check_domains(("books", "code", "qa"), "model")
    kept = check_trainable(reg, Mixture.from_dict({"books": 0.25, "code": 0.75, "qa": 0.0}), "m.json")
    assert kept.domains == ("books", "code") and kept.as_array().tolist() == [0.25, 0.75]
    plain = Mixture.from_dict({"books": 0.25, "code": 0.75})
    assert check_trainable(reg, plain, "m.json") == plain and kept.hash == plain.hash
    with pytest.raises(DataError, match=r"missing \['code'\]"):
        check_trainable(reg, Mixture.from_dict({"books": 1.0}), "m.json")


def test_a_schedule_is_checked_phase_by_phase_and_one_phase_as_its_mixture():
    reg = _with_held_out()
    good = Mixture.from_dict({"books": 0.25, "code": 0.75, "qa": 0.0})
    bad = Mixture.from_dict({"books": 0.25, "code": 0.25, "qa": 0.5})
    with pytest.raises(DataError, match=r"s.json phase 2: gives weight to evaluation-only domain\(s\) \{'qa': 0.5\}"):
        check_trainable(reg, Schedule.from_phases([(0.5, good), (0.5, bad)]), "s.json")
    kept = check_trainable(reg, Schedule.from_phases([(0.5, good), (0.5, good)]), "s.json")
    assert kept.domains == ("books", "code") and kept.fractions == (0.5, 0.5)
    plain = Schedule.from_phases([(0.5, Mixture.from_dict({"books": 0.25, "code": 0.75})),
                                  (0.5, Mixture.from_dict({"books": 0.5, "code": 0.5}))])
    assert check_trainable(reg, plain, "s.json") is plain  # nothing to drop: the value itself
    # one phase: the same errors, and the same value, as its mixture
    with pytest.raises(DataError, match=r"^s.json: gives weight"):
        check_trainable(reg, Schedule.from_mixture(bad), "s.json")
    one = check_trainable(reg, Schedule.from_mixture(good), "s.json")
    assert one.hash == check_trainable(reg, good, "s.json").hash and one.mixtures == (check_trainable(reg, good, "x"),)

"""The Mixture value type and every bad input of issue 3 item 6 (each a clear error naming field and fix)."""

import json
import math

import numpy as np
import pytest

from regmix_megatron.errors import ConfigError, DataError, RegmixError
from regmix_megatron.manifest import Domain, DomainRegistry, PrefixInfo, TokenizerInfo
from regmix_megatron.mixture import Mixture, MixtureError
from regmix_megatron.sampling import SamplerConfig, domain_caps, sample_mixtures


def make_registry(tokens: dict[str, int]) -> DomainRegistry:
    domains = tuple(
        Domain(name=n, splits={"train": (PrefixInfo(f"/data/{n}/train_text_document", 1, 1, t),)})
        for n, t in tokens.items()
    )
    tok = TokenizerInfo(type="sentencepiece", model="/data/tok.model", sha256="0" * 64, vocab_size=512, eod_id=2)
    return DomainRegistry(domains=domains, tokenizer=tok)


def test_canonical_order_hash_and_exact_sum():
    a = Mixture.from_dict({"web": 0.5, "code": 0.3, "books": 0.2})
    b = Mixture.from_dict({"books": 0.2, "web": 0.5, "code": 0.3})
    assert a.domains == ("books", "code", "web")
    assert a == b and a.hash == b.hash and len(a.hash) == 16
    assert sum(a.weights) == 1.0
    assert Mixture.from_dict({"web": 0.5, "code": 0.3, "books": 0.2001}).hash != a.hash
    c = Mixture.from_array(["x", "y", "z"], [1.0, 1.0, 1.0])
    assert math.fsum(c.weights) == pytest.approx(1.0, abs=1e-15) and np.sum(c.as_array()) == 1.0


@pytest.mark.parametrize("suffix", [".json", ".yaml"])
def test_file_round_trip_is_exact(tmp_path, suffix):
    rng = np.random.default_rng(7)
    w = rng.dirichlet(np.ones(6))
    w[2] = 0.0
    m = Mixture.from_array([f"d{i}" for i in range(6)], w)
    path = m.save(tmp_path / f"m{suffix}")
    back = Mixture.load(path)
    assert back == m and back.hash == m.hash and back.weights == m.weights
    assert back.nonzero().keys() == {d for d, x in m.as_dict().items() if x > 0}


def test_plain_mapping_file_and_tolerance(tmp_path):
    p = tmp_path / "m.json"
    p.write_text(json.dumps({"a": 0.3334, "b": 0.3333, "c": 0.3333}))
    m = Mixture.load(p)  # within the 1e-3 tolerance: renormalized exactly
    assert sum(m.weights) == 1.0
    assert m.as_array(["a", "b", "c", "extra"])[3] == 0.0
    assert m.restrict(["a", "b", "c", "extra"]).as_dict()["extra"] == 0.0


@pytest.mark.parametrize("weights, needle", [
    ({"a": -0.1, "b": 1.1}, "< 0"),
    ({"a": float("nan"), "b": 1.0}, "finite"),
    ({"a": float("inf"), "b": 1.0}, "finite"),
    ({"a": 0.0, "b": 0.0}, "all weights are zero"),
    ({"a": 0.5, "b": 0.3}, "sum to 0.8"),
    ({"a": 0.9, "b": 0.9}, "sum to 1.8"),
    ({"a": "x", "b": 1.0}, "not a number"),
    ({}, "non-empty"),
    ({"": 1.0}, "non-empty string"),
])
def test_bad_weights_raise_naming_the_problem(weights, needle):
    with pytest.raises(MixtureError, match=needle):
        Mixture.from_dict(weights)


def test_bad_weights_in_files_name_the_file(tmp_path):
    p = tmp_path / "bad.json"
    p.write_text(json.dumps({"weights": {"a": 0.7, "b": 0.7}}))
    with pytest.raises(MixtureError, match=r"bad\.json.*fix the weights"):
        Mixture.load(p)


def test_duplicate_domains_are_refused(tmp_path):
    with pytest.raises(MixtureError, match="duplicate domain"):
        Mixture.from_array(["a", "a", "b"], [0.2, 0.3, 0.5])
    with pytest.raises(MixtureError, match="duplicate domain"):
        Mixture(("a", "a"), (0.5, 0.5))
    p = tmp_path / "dup.json"
    p.write_text('{"a": 0.5, "a": 0.5, "b": 0.5}')  # json keeps the last "a" silently: must be refused
    with pytest.raises(MixtureError, match=r"\['a'\] listed more than once"):
        Mixture.load(p)
    y = tmp_path / "dup.yaml"
    y.write_text("weights:\n  a: 0.5\n  b: 0.25\n  b: 0.25\n")
    with pytest.raises(MixtureError, match=r"\['b'\] listed more than once"):
        Mixture.load(y)


def test_unknown_and_missing_domains_are_refused():
    reg = make_registry({"books": 100, "code": 200, "web": 700})
    with pytest.raises(DataError, match=r"unknown \['wiki'\], missing \[\]"):
        reg.check_domains(("books", "code", "web", "wiki"), "m.json")
    with pytest.raises(DataError, match=r"unknown \[\], missing \['web'\].*zero weights are allowed"):
        reg.check_domains(("books", "code"), "m.json")
    with pytest.raises(MixtureError, match="not in"):
        Mixture.from_dict({"books": 0.5, "wiki": 0.5}).as_array(reg.names)


def test_cap_below_min_weight_is_refused():
    tokens = np.array([10_000_000, 1_000_000, 1_000])  # last domain: prior ~9e-5
    with pytest.raises(ConfigError, match=r"cap of domain '#2'.*below min_weight=0.0002.*raise cap_multiplier"):
        domain_caps(tokens, SamplerConfig(cap_multiplier=1.0))
    with pytest.raises(ConfigError, match=r"cap of domain 'tiny'.*max_epochs.*raise max_epochs or lower target_tokens"):
        domain_caps(tokens, SamplerConfig(cap_multiplier=None, max_epochs=1.0, target_tokens=10_000_000),
                    domains=["big", "mid", "tiny"])
    with pytest.raises(ConfigError, match=r"min_weights\['web'\]=1e-05.*0 or >= min_weight"):
        SamplerConfig(min_weights={"web": 1e-5})


def test_target_budget_no_mixture_can_meet_is_refused():
    tokens = np.array([600, 300, 100])
    with pytest.raises(ConfigError, match=r"target_tokens=2000 is more than max_epochs=1.5 x the 1000.*"
                                          r"use target_tokens <= 1500 or raise max_epochs"):
        sample_mixtures(tokens, SamplerConfig(max_epochs=1.5, target_tokens=2000, cap_multiplier=None))
    with pytest.raises(ConfigError, match=r"sampler\.target_tokens=None.*give target_tokens too"):
        SamplerConfig(max_epochs=2.0)
    with pytest.raises(ConfigError, match=r"min_weights sum to 1.2 > 1"):
        domain_caps(tokens, SamplerConfig(min_weights={"a": 0.6, "b": 0.6}), domains=["a", "b", "c"])
    with pytest.raises(ConfigError, match=r"caps sum to .* < 1"):
        domain_caps(tokens, SamplerConfig(cap_multiplier=0.9))


def test_errors_are_value_errors():
    assert issubclass(MixtureError, RegmixError) and issubclass(RegmixError, ValueError)


def test_reading_back_keeps_exact_weights_and_hash():
    """Weights that sum to 1 only within float rounding are not rescaled on a round trip (hash is stable)."""
    rng = np.random.default_rng(7)
    names = [f"d{i}" for i in range(9)]
    for _ in range(500):
        raw = rng.dirichlet(np.full(9, 0.3))
        m = Mixture.from_array(names, raw)
        again = Mixture.from_dict(m.as_dict())
        assert again.weights == m.weights
        assert again.hash == m.hash

"""The Mixture value type and its files (regmix_megatron/mixtures/mixture.py): canonical form, hash, JSON/YAML, JSONL;
every bad input a clear error naming field and fix."""

import hashlib
import json
import math

import numpy as np
import pytest

from regmix_megatron.errors import DataError, RegmixError
from regmix_megatron.mixtures.mixture import (
    Mixture,
    MixtureError,
    iter_mixture_lines,
    read_mixture_at,
    read_mixtures,
    write_mixtures,
)


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
    with pytest.raises(MixtureError, match=r"bad\.json.*fix the weights, or pass --renormalize") as exc:
        Mixture.load(p)
    assert "--normalize" not in str(exc.value)  # no such flag exists


def test_duplicate_domains_are_refused(tmp_path):
    with pytest.raises(MixtureError, match="duplicate domain"):
        Mixture.from_array(["a", "a", "b"], [0.2, 0.3, 0.5])
    with pytest.raises(MixtureError, match="duplicate domain"):
        Mixture(("a", "a"), (0.5, 0.5))
    p = tmp_path / "dup.json"
    p.write_text('{"a": 0.5, "a": 0.5, "b": 0.5}')  # json keeps the last "a" silently: must be refused
    with pytest.raises(DataError, match=r"\['a'\] listed more than once"):  # by the one strict reader
        Mixture.load(p)
    y = tmp_path / "dup.yaml"
    y.write_text("weights:\n  a: 0.5\n  b: 0.25\n  b: 0.25\n")
    with pytest.raises(DataError, match=r"\['b'\] listed more than once in one mapping \(lines 3 and 4\)"):
        Mixture.load(y)


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


def test_hash_is_sha256_of_the_documented_canonical_json():
    """Mixture hashes are ids users have on disk: the definition must not drift."""
    m = Mixture.from_dict({"b": 0.75, "a": 0.25})
    text = '{"domains":["a","b"],"weights":["0.25","0.75"]}'
    assert m.canonical_json() == text
    assert m.hash == hashlib.sha256(text.encode()).hexdigest()[:16]


def test_jsonl_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    mixtures = [Mixture.from_array(["a", "b", "c"], rng.dirichlet(np.ones(3))) for _ in range(5)]
    path = write_mixtures(tmp_path / "m.jsonl", mixtures)
    lines = path.read_text().splitlines()
    assert [json.loads(line) for line in lines] == [m.to_json_obj() for m in mixtures]
    assert read_mixtures(path) == mixtures
    assert read_mixture_at(path, 3) == mixtures[3]
    assert [n for n, _ in iter_mixture_lines(path)] == [1, 2, 3, 4, 5]
    # blank lines are skipped; a plain mapping per line is read too
    (tmp_path / "plain.jsonl").write_text('{"a": 0.5, "b": 0.5}\n\n{"a": 1, "b": 0}\n')
    assert [m.as_dict() for m in read_mixtures(tmp_path / "plain.jsonl")] == [{"a": 0.5, "b": 0.5},
                                                                             {"a": 1.0, "b": 0.0}]
    assert read_mixture_at(tmp_path / "plain.jsonl", 1).as_dict() == {"a": 1.0, "b": 0.0}


def test_jsonl_errors_name_the_line(tmp_path):
    good = json.dumps(Mixture.from_dict({"a": 0.5, "b": 0.5}).to_json_obj())
    p = tmp_path / "m.jsonl"
    cases = [
        (good + "\n" + good + "\n", r"m.jsonl:2: the same mixture as line 1"),
        (good + "\n" + json.dumps({"hash": "0123456789abcdef", "weights": {"a": 1.0}}) + "\n",
         r"m.jsonl:2: stated hash 0123456789abcdef does not match the weights"),
        (good + "\n{oops\n", r"m.jsonl:2: invalid JSON"),
        ('{"weights": {"a": 0.5, "a": 0.25, "b": 0.25}}\n', r"m.jsonl:1: domain\(s\) \['a'\] listed more than once"),
        ("[0.5, 0.5]\n", r"m.jsonl:1: expected a JSON object"),
        ("\n", r"no mixtures in the file"),
    ]
    for text, needle in cases:
        p.write_text(text)
        with pytest.raises(DataError, match=needle):
            read_mixtures(p)
    p.write_text(good + "\n")
    with pytest.raises(DataError, match=r"has no mixture 1 \(0-based\); it holds 1 mixtures"):
        read_mixture_at(p, 1)
    with pytest.raises(DataError, match="mixtures file not found"):
        read_mixtures(tmp_path / "nope.jsonl")

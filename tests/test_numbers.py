"""The one number parser (regmix_megatron/numbers.py): flags and config values accept 1e6 and 1M alike."""

import argparse

import pytest

from regmix_megatron.commands.numbers import count, number
from regmix_megatron.numbers import parse_count, parse_number


def test_counts_accept_plain_scientific_and_suffixed_forms():
    assert [parse_count(t) for t in ("1000000", "1_000_000", "1e6", "1M", "1m", "1.5M", " 50k ", "25B", "2G", "3T")
            ] == [10**6, 10**6, 10**6, 10**6, 10**6, 1_500_000, 50_000, 25 * 10**9, 2 * 10**9, 3 * 10**12]
    assert parse_count(7) == 7 and parse_count(2.0) == 2


@pytest.mark.parametrize("bad", ["2.5", "lots", "12X", "", "1e400", "1M5", True])
def test_counts_refuse_fractions_words_and_infinities(bad):
    with pytest.raises(ValueError):
        parse_count(bad)


def test_numbers_and_argparse_types():
    assert parse_number("2e-4") == 2e-4 and parse_number("0.5") == 0.5 and parse_number("1k") == 1000.0
    assert count("1M") == 10**6 and number("2e-4") == 2e-4
    with pytest.raises(argparse.ArgumentTypeError, match="e.g. 1000000, 1e6, 1M"):
        count("1.5")
    parser = argparse.ArgumentParser()
    parser.add_argument("--num-candidates", type=count)
    assert parser.parse_args(["--num-candidates", "1M"]).num_candidates == parser.parse_args(
        ["--num-candidates", "1e6"]).num_candidates == 10**6

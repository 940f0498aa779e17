"""The sampler's CLI flags (regmix_megatron/commands/sampler_flags.py): token counts, 'none', overrides, errors."""

from __future__ import annotations

import argparse

import pytest

from regmix_megatron.commands.sampler_flags import (
    UNSET,
    add_cap_arguments,
    flag_error,
    given_overrides,
    optional_float,
    token_count,
)
from regmix_megatron.errors import ConfigError
from regmix_megatron.mixtures.sampler_config import SamplerConfig


def test_token_counts_and_optional_numbers():
    assert [token_count(t) for t in ("1000000", "1e9", "25B", "300M", "50k", " 2t ")] == [
        1_000_000, 1_000_000_000, 25_000_000_000, 300_000_000, 50_000, 2_000_000_000_000]
    assert optional_float("none") is None and optional_float("OFF") is None and optional_float("2.5") == 2.5
    for bad in ("lots", "12X", ""):
        with pytest.raises(argparse.ArgumentTypeError):
            token_count(bad)
    with pytest.raises(argparse.ArgumentTypeError, match="not a number"):
        optional_float("big")


def test_only_flags_given_are_overrides():
    parser = argparse.ArgumentParser()
    add_cap_arguments(parser)
    fields = ("max_epochs", "target_tokens", "cap_multiplier", "temperature", "min_weight")
    assert given_overrides(parser.parse_args([]), fields) == {}
    args = parser.parse_args(["--cap-multiplier", "none", "--target-tokens", "3M", "--max-epochs", "2"])
    assert args.temperature is None and parser.parse_args([]).cap_multiplier is UNSET
    assert given_overrides(args, fields) == {"cap_multiplier": None, "target_tokens": 3_000_000, "max_epochs": 2.0}


def test_errors_name_the_flag():
    with pytest.raises(ConfigError) as exc:
        SamplerConfig(temperature=99)
    assert flag_error(exc.value).startswith("--temperature (sampler.temperature)=99 is invalid")

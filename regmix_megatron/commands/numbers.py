"""argparse types over :mod:`regmix_megatron.numbers` (``--num-candidates 1M``, ``--target-tokens 25B``)."""

from __future__ import annotations

import argparse

from ..numbers import parse_count, parse_number


def count(text: str) -> int:
    """A whole number: 1000000, 1e6, 1M, 25B."""
    try:
        return parse_count(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{exc} (e.g. 1000000, 1e6, 1M)") from None


def number(text: str) -> float:
    """A number: 0.5, 2e-4, 1M."""
    try:
        return parse_number(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None

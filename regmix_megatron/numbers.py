"""The one parser of numbers a user types, in flags and in config files: ``1000000``, ``1_000_000``, ``1e6``,
``1M``, ``25B``, ``50k``, ``1.5T`` (suffixes k, M, B/G, T; any case). YAML reads ``1e6`` as a string, so configs
go through here too (``configs.load_config``). Pure: the standard library."""

from __future__ import annotations

import math
import re

SUFFIXES = {"": 1, "k": 1e3, "m": 1e6, "b": 1e9, "g": 1e9, "t": 1e12}
_PATTERN = re.compile(r"\s*([-+]?(?:\d[\d_]*\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*([kKmMbBgGtT]?)\s*")


def parse_number(value) -> float:
    """A finite number from an int/float or text like ``2e-4``, ``1e6``, ``1.5M``; ValueError otherwise."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a number")
    if isinstance(value, (int, float)):
        x = float(value)
    else:
        m = _PATTERN.fullmatch(str(value))
        if not m:
            raise ValueError(f"{value!r} is not a number (e.g. 1000000, 1e6, 1M, 25B)")
        x = float(m.group(1).replace("_", "")) * SUFFIXES[m.group(2).lower()]
    if not math.isfinite(x):
        raise ValueError(f"{value!r} is not a finite number")
    return x


def parse_count(value) -> int:
    """A whole number (a count: candidates, tokens, samples) from an int or text like ``1e6``, ``1M``, ``25B``;
    ValueError for fractions such as ``2.5``."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    x = parse_number(value)
    if not float(x).is_integer():
        raise ValueError(f"{value!r} is not a whole number")
    return int(x)

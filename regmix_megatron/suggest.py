"""'Did you mean ...?' for a mistyped subcommand, flag, config key or name (pure: the standard library)."""

from __future__ import annotations

import difflib
from typing import Iterable


def close_matches(word: str, choices: Iterable[str], n: int = 3) -> list[str]:
    """The choices closest to ``word`` (case-insensitive, ``-``/``_`` alike), best first."""
    norm = {c.lower().replace("-", "_"): c for c in choices}
    found = difflib.get_close_matches(word.lower().replace("-", "_"), list(norm), n=n, cutoff=0.6)
    return [norm[f] for f in found]


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """``"; did you mean 'x'?"`` (or ``'x' or 'y'``), or ``""`` when nothing is close."""
    found = close_matches(word, choices)
    if not found:
        return ""
    return "; did you mean " + " or ".join(repr(f) for f in found) + "?"

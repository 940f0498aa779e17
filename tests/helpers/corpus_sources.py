"""Checks on documents' sources shared by the corpus, preprocessing and manifest tests."""

from __future__ import annotations

from collections import Counter
from typing import Sequence


def max_prefix_deviation(sources: Sequence[str]) -> float:
    """The largest ``|count of s in the first m - m * share of s|`` over every prefix ``m`` and source ``s``."""
    totals = Counter(sources)
    seen: Counter = Counter()
    worst = 0.0
    for m, source in enumerate(sources, start=1):
        seen[source] += 1
        worst = max(worst, max(abs(seen[s] - m * totals[s] / len(sources)) for s in totals))
    return worst


def assert_prefixes_stratified(sources: Sequence[str], tolerance: float = 1.0) -> None:
    deviation = max_prefix_deviation(sources)
    assert deviation <= tolerance, (deviation, Counter(sources))

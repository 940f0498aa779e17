"""Checks on documents' sources shared by the corpus, preprocessing and manifest tests."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Sequence

import yaml

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "corpus"


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


def fixture_texts(domain: str) -> list[str]:
    return [json.loads(line)["text"] for split in ("train", "valid", "test")
            for line in (FIXTURE / domain / f"{split}.jsonl").read_text(encoding="utf-8").splitlines()]


def populate_offline_cache(cache: Path) -> None:
    """Unpacked package trees for the legal and changelogs domains, made of fixture text, so that
    ``build_corpus(cache, domains="legal,changelogs")`` runs without network (the fetchers reuse them)."""
    lic = cache / "sources/pypi/licensedcode-data-32.1.0-wheel/licensedcode/data/licenses"
    lic.mkdir(parents=True)
    for i, text in enumerate(fixture_texts("legal")):
        front = yaml.safe_dump({"key": f"lic-{i}", "name": f"Licence {i}", "category": "Permissive"})
        (lic / f"lic-{i}.LICENSE").write_text(f"---\n{front}---\n{text}\n")
    log = cache / "sources/debian/glibc-doc_2.36-9+deb12u14/usr/share/doc/glibc-doc"
    log.mkdir(parents=True)
    (log / "ChangeLog.1").write_text("\n\n".join(fixture_texts("changelogs")) + "\n")

"""How a domain's documents are split into train / valid / test, by one of two rules chosen when it is built.

**Training domains** (:func:`split_by_hash`): a document's split depends only on its text (``hash_fraction``
below ``valid_fraction`` -> valid, below ``valid_fraction + test_fraction`` -> test, else train), so the same
text lands in the same split whatever else is in the corpus. Files keep the extraction order.

**Evaluation-only domains** (:func:`split_for_evaluation`): nothing trains on them, so nearly all documents are
evaluated. Within each source (the package a document came from), documents are put in text-hash order and
dealt to valid, test and train in the proportions :data:`EVAL_ONLY_FRACTIONS` (49% / 49% / 2%) by
:func:`deal`, so every source holds its share of every split to within one document, and no source changes
another's split. The 2% train remainder keeps the corpus contract that every domain has three non-empty split
files (the readers, ``preprocess`` and the pipeline rely on it, and ``evaluate --split train`` still has
documents nothing trains on); a domain too small to give train a document by that rule gives it one
(:func:`split_for_evaluation`). Each split file is then ordered by :func:`interleave_by_source`, so that any
prefix of it (the evaluator scores the first N tokens of a split in file order) holds every source within one
document of its share of the prefix.
"""

from __future__ import annotations

from typing import Sequence

from ..manifest import SPLITS
from .documents import Document, assign_split, hash_fraction

#: split -> fraction of each source's documents, for an evaluation-only domain
EVAL_ONLY_FRACTIONS = {"valid": 0.49, "test": 0.49, "train": 0.02}
#: bump when split_for_evaluation / interleave_by_source change what they output (part of the settings hash)
EVAL_ONLY_SPLIT_VERSION = 1


def eval_only_split_settings() -> dict:
    """What identifies the evaluation-only split rule in a domain's settings hash."""
    return {"rule": "evaluation-only", "stratified_by": "source", "fractions": dict(EVAL_ONLY_FRACTIONS),
            "version": EVAL_ONLY_SPLIT_VERSION}


def split_by_hash(documents: Sequence[Document], valid_fraction: float,
                  test_fraction: float) -> dict[str, list[Document]]:
    """Assign each document to train/valid/test by its text hash; if a split came out empty (a small
    domain), move the train document(s) with the smallest hash fraction into it, deterministically."""
    by_split: dict[str, list[Document]] = {s: [] for s in SPLITS}
    for doc in documents:
        by_split[assign_split(doc.text, valid_fraction, test_fraction)].append(doc)
    for split in ("valid", "test"):
        if not by_split[split] and len(by_split["train"]) >= 3:
            victim = min(by_split["train"], key=lambda d: hash_fraction(d.text))
            by_split["train"] = [d for d in by_split["train"] if d is not victim]
            by_split[split].append(victim)
    return by_split


def hash_order(documents: Sequence[Document]) -> list[Document]:
    """Documents sorted by text hash (ties, i.e. equal texts, by text)."""
    return sorted(documents, key=lambda d: (hash_fraction(d.text), d.text))


def deal(num_items: int, shares: dict[str, float], capacity: dict[str, int] | None = None) -> list[str]:
    """The bin of each of ``num_items`` items in turn, so that after every item each bin's count is within
    ``1 - 1/(2k - 2)`` of ``share * items dealt`` (``k`` bins; ``shares`` sum to 1). Tijdeman's rule for the
    chairman assignment problem (1980): among the bins at least ``1/(2k - 2)`` below their share, the one whose
    next item falls due first (smallest ``(count + 1 - 1/(2k - 2)) / share``; ties in ``shares`` order). A bin
    at its ``capacity`` takes no more."""
    slack = 1 / (2 * len(shares) - 2) if len(shares) > 1 else 0.0
    counts = dict.fromkeys(shares, 0)
    out = []
    for k in range(1, num_items + 1):
        open_bins = [b for b in shares if shares[b] > 0 and (capacity is None or counts[b] < capacity[b])]
        behind = [b for b in open_bins if shares[b] * k - counts[b] >= slack - 1e-12] or open_bins
        chosen = min(behind, key=lambda b: (counts[b] + 1 - slack) / shares[b])
        counts[chosen] += 1
        out.append(chosen)
    return out


def by_source(documents: Sequence[Document]) -> dict[str, list[Document]]:
    """Documents grouped by source, sources in name order, each group in text-hash order."""
    groups: dict[str, list[Document]] = {}
    for doc in documents:
        groups.setdefault(doc.source, []).append(doc)
    return {name: hash_order(groups[name]) for name in sorted(groups)}


def interleave_by_source(documents: Sequence[Document]) -> list[Document]:
    """The documents with sources interleaved in proportion (:func:`deal` with each source's share of the
    documents; ties by source name), each source's documents in text-hash order: every prefix of ``m``
    documents holds each source ``s`` within one document of ``m * n_s / n``."""
    groups = by_source(documents)
    sizes = {name: len(docs) for name, docs in groups.items()}
    order = deal(len(documents), {name: n / len(documents) for name, n in sizes.items()}, capacity=sizes)
    taken = dict.fromkeys(groups, 0)
    out: list[Document] = []
    for name in order:
        out.append(groups[name][taken[name]])
        taken[name] += 1
    return out


def split_for_evaluation(documents: Sequence[Document]) -> dict[str, list[Document]]:
    """The evaluation-only split (module docstring): each source dealt 49/49/2 in text-hash order, each split
    interleaved by source. When train would be empty (every source under ~50 documents) it takes the last
    document dealt of the largest source (ties by name), so the domain keeps three non-empty splits."""
    by_split: dict[str, list[Document]] = {s: [] for s in SPLITS}
    groups = by_source(documents)
    for docs in groups.values():
        for doc, split in zip(docs, deal(len(docs), EVAL_ONLY_FRACTIONS)):
            by_split[split].append(doc)
    if not by_split["train"] and len(documents) >= 3:
        largest = min(groups, key=lambda s: (-len(groups[s]), s))
        moved = groups[largest][-1]
        for split in ("valid", "test"):
            by_split[split] = [d for d in by_split[split] if d is not moved]
        by_split["train"].append(moved)
    return {split: interleave_by_source(docs) for split, docs in by_split.items()}

"""corpus/splits.py: the evaluation-only split (stratified by source, interleaved) and the training split."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from regmix_megatron.corpus.build import CorpusSettings, domain_settings, settings_hash, split_documents
from regmix_megatron.corpus.documents import Document, assign_split
from regmix_megatron.corpus.splits import EVAL_ONLY_FRACTIONS, deal, interleave_by_source, split_for_evaluation
from regmix_megatron.manifest import SPLITS

from helpers.corpus_sources import assert_prefixes_stratified, max_prefix_deviation


def constructed_domain(sizes: dict[str, int], seed: int = 0) -> list[Document]:
    """Documents of several sources with distinct texts, in a shuffled extraction order."""
    rng = random.Random(seed)
    docs = [Document(f"{source} document {k}: " + " ".join(rng.choice("abcdefgh") * 3 for _ in range(40)), source)
            for source, n in sizes.items() for k in range(n)]
    rng.shuffle(docs)
    return docs


SIZES = {"faq": 301, "fortunes": 977, "dialogues": 64, "manual": 17, "tiny": 2}


def test_each_source_holds_its_share_of_every_split_within_one_document():
    docs = constructed_domain(SIZES)
    by_split = split_for_evaluation(docs)
    assert sorted(d.text for s in SPLITS for d in by_split[s]) == sorted(d.text for d in docs)
    for source, n in SIZES.items():
        for split, fraction in EVAL_ONLY_FRACTIONS.items():
            count = sum(d.source == source for d in by_split[split])
            assert abs(count - fraction * n) < 1, (source, split, count, fraction * n)
    assert len(by_split["valid"]) >= 0.48 * len(docs) and len(by_split["test"]) >= 0.48 * len(docs)
    assert 0 < len(by_split["train"]) <= 0.03 * len(docs)


def test_the_split_is_deterministic_and_no_source_moves_another():
    docs = constructed_domain(SIZES)
    first = split_for_evaluation(docs)
    again = split_for_evaluation(constructed_domain(SIZES, seed=0)[::-1])  # another extraction order
    assert {s: [d.text for d in first[s]] for s in SPLITS} == {s: [d.text for d in again[s]] for s in SPLITS}
    without = split_for_evaluation([d for d in docs if d.source != "fortunes"])
    for split in SPLITS:  # dropping a source leaves every other document in its split
        assert {d.text for d in without[split]} == {d.text for d in first[split] if d.source != "fortunes"}


def test_every_prefix_of_an_evaluation_split_is_stratified_by_source():
    by_split = split_for_evaluation(constructed_domain(SIZES))
    for split in ("valid", "test"):
        sources = [d.source for d in by_split[split]]
        assert_prefixes_stratified(sources, tolerance=1.0)
        first_100 = Counter(sources[:100])
        assert first_100["fortunes"] == pytest.approx(100 * 977 / 1361, abs=1)
    # the extraction order (sources in blocks) would fail the same check
    blocks = sorted(constructed_domain(SIZES), key=lambda d: d.source)
    assert max_prefix_deviation([d.source for d in blocks]) > 50


def test_interleaving_keeps_each_source_in_hash_order_and_every_document():
    docs = constructed_domain({"a": 7, "b": 3, "c": 1})
    out = interleave_by_source(docs)
    assert sorted(d.text for d in out) == sorted(d.text for d in docs)
    assert_prefixes_stratified([d.source for d in out], tolerance=1.0)


def test_deal_keeps_every_count_within_one_of_its_share():
    for n in (1, 2, 3, 49, 50, 51, 997):
        counts = Counter()
        for k, split in enumerate(deal(n, EVAL_ONLY_FRACTIONS), start=1):
            counts[split] += 1
            assert all(abs(counts[s] - f * k) < 1 for s, f in EVAL_ONLY_FRACTIONS.items()), (n, k, counts)
    rng = random.Random(7)  # many sources of very unequal sizes: the bound 1 - 1/(2k - 2) holds for each
    for _ in range(60):
        sizes = {f"s{i}": rng.randint(1, rng.choice([3, 30, 400])) for i in range(rng.randint(2, 9))}
        order = deal(sum(sizes.values()), {s: n / sum(sizes.values()) for s, n in sizes.items()}, capacity=sizes)
        assert Counter(order) == sizes
        assert max_prefix_deviation(order) <= 1 - 1 / (2 * len(sizes) - 2) + 1e-9, sizes


def test_a_small_domain_still_gets_three_nonempty_splits():
    by_split = split_for_evaluation(constructed_domain({"x": 5, "y": 4}))
    assert all(by_split[s] for s in SPLITS) and sum(len(v) for v in by_split.values()) == 9


def test_training_domains_keep_the_hash_split_files_and_settings_hash():
    docs = constructed_domain(SIZES)
    settings = CorpusSettings()
    by_split = split_documents(docs, settings)  # training domain: by text hash, extraction order
    for split in SPLITS:
        assert by_split[split] == [d for d in docs if assign_split(d.text, 0.02, 0.02) == split]
    # the rule enters the settings hash only for an evaluation-only domain: a training domain's hash (and so
    # every cache built before the rule) is unchanged, and switching roles rebuilds the domain
    plain = domain_settings("legal", settings)
    assert "split_rule" not in plain and settings_hash(plain) == settings_hash(domain_settings("legal", settings,
                                                                                               False))
    assert settings_hash(domain_settings("qa", settings, True)) != settings_hash(domain_settings("qa", settings))

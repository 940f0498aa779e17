"""Exact counts and tokens of .idx/.bin pairs read without megatron (``read_index``, ``last_tokens``,
``max_token_id`` of regmix_megatron/data/index_files.py), against megatron-core's own reader."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from megatron.core.datasets.indexed_dataset import IndexedDataset

from regmix_megatron.data.index_files import last_tokens, max_token_id, read_index, token_dtype
from regmix_megatron.data.manifest import DomainRegistry
from regmix_megatron.errors import DataError


def test_counts_equal_megatron_cores_reader(indexed_fixture):
    registry = DomainRegistry.load(indexed_fixture.domains_json)
    for domain in registry.domains:
        for split, (info,) in domain.splits.items():
            counts = read_index(info.path)
            ds = IndexedDataset(info.path)
            assert counts.num_sequences == len(ds.sequence_lengths) == info.num_sequences
            assert counts.num_documents == len(ds.document_indices) - 1 == info.num_documents
            assert counts.num_tokens == int(ds.sequence_lengths.astype(np.int64).sum()) == info.num_tokens
            assert counts.dtype == np.dtype(ds.index.dtype).name == "uint16"
            tokens = np.concatenate([ds[i] for i in range(len(ds))])
            assert max_token_id(info.path, counts.dtype) == int(tokens.max()) < indexed_fixture.vocab_size
            assert max_token_id(info.path, counts.dtype, 10) == int(tokens[:10].max())
            assert last_tokens(info.path, counts.dtype, 3) == [int(ds[i][-1]) for i in range(min(3, len(ds)))]
    assert token_dtype(65499) is np.uint16 and token_dtype(65500) is np.int32


def test_a_prefix_beside_megatrons_index_cache_still_reads(indexed_fixture, tmp_path):
    """megatron-core writes its sample-index cache into ``<prefix>/cache/`` when no cache path is given: a directory
    named exactly like the prefix. The pair is still what the prefix names."""
    src = DomainRegistry.load(indexed_fixture.domains_json).get("code").prefixes("valid")[0].path
    prefix = tmp_path / "p"
    for ext in (".bin", ".idx"):
        shutil.copy(src + ext, str(prefix) + ext)
    expected = read_index(prefix)
    (prefix / "cache" / "GPTDataset_indices").mkdir(parents=True)
    assert read_index(prefix) == expected


def test_broken_pairs_are_refused_by_name(indexed_fixture, tmp_path):
    src = DomainRegistry.load(indexed_fixture.domains_json).get("code").prefixes("valid")[0].path
    prefix = tmp_path / "p"
    shutil.copy(src + ".idx", str(prefix) + ".idx")
    with pytest.raises(DataError, match=r"p\.bin: missing"):
        read_index(prefix)
    shutil.copy(src + ".bin", str(prefix) + ".bin")
    read_index(prefix)
    with open(str(prefix) + ".bin", "ab") as fh:
        fh.write(b"\0\0")
    with pytest.raises(DataError, match="inconsistent"):
        read_index(prefix)
    (tmp_path / "p.idx").write_bytes(b"not an index at all, but long enough to read a header")
    with pytest.raises(DataError, match="not a Megatron index"):
        read_index(prefix)
    data = open(src + ".idx", "rb").read()
    (tmp_path / "p.idx").write_bytes(data[:40])
    with pytest.raises(DataError, match="truncated"):
        read_index(prefix)
    (tmp_path / "d.idx").mkdir()
    with pytest.raises(DataError, match=r"d\.idx is a directory"):
        read_index(tmp_path / "d")
    with pytest.raises(DataError, match=r"is a directory: give the prefix of a \.bin/\.idx pair.*e\.g\. .*/p"):
        read_index(tmp_path)

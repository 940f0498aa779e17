"""The cheap integrity check of Megatron .bin/.idx pairs (regmix_megatron/data/index_files.py), on the real fixture:
it agrees with megatron-core's own reader on sound files and names the file and the fix on damaged ones."""

from __future__ import annotations

import json
import shutil
import struct
from pathlib import Path

import pytest

from regmix_megatron.errors import DataError
from regmix_megatron.data.index_files import HEADER_BYTES, check_prefix
from regmix_megatron.data.manifest import DomainRegistry

from helpers.indexed_files import write_pair


@pytest.fixture()
def data(tmp_path, indexed_fixture) -> Path:
    """A private copy of the preprocessed corpus fixture (its domains.json)."""
    out = tmp_path / "data"
    shutil.copytree(indexed_fixture.output_dir, out)
    return out / "domains.json"


def test_counts_match_megatrons_reader_on_every_fixture_prefix(indexed_fixture):
    from regmix_megatron.megatron.indexed import read_counts

    registry = DomainRegistry.load(indexed_fixture.domains_json)
    assert registry.verify_files() == sum(len(p) for d in registry.domains for p in d.splits.values()) > 0
    for d in registry.domains:
        for prefixes in d.splits.values():
            for p in prefixes:
                ours, megatron = check_prefix(p.path), read_counts(p.path)
                assert (ours.num_documents, ours.num_sequences, ours.num_tokens) == \
                       (megatron.num_documents, megatron.num_sequences, megatron.num_tokens) == \
                       (p.num_documents, p.num_sequences, p.num_tokens)


def _prefix(domains_json: Path, domain: str = "code", split: str = "train") -> str:
    registry = DomainRegistry.load(domains_json)
    return registry.get(domain).prefixes(split)[0].path


@pytest.mark.parametrize("damage, message", [
    (lambda p: Path(p + ".bin").write_bytes(Path(p + ".bin").read_bytes()[:-2]), r"\.bin: \d+ bytes, but .* the \.bin is truncated"),
    (lambda p: Path(p + ".bin").write_bytes(Path(p + ".bin").read_bytes() + b"\0\0"), r"longer than its index"),
    (lambda p: Path(p + ".bin").unlink(), r"\.bin is missing"),
    (lambda p: Path(p + ".idx").write_bytes(b"JUNK" + Path(p + ".idx").read_bytes()[4:]), r"\.idx: not a Megatron index"),
    (lambda p: Path(p + ".idx").write_bytes(Path(p + ".idx").read_bytes()[:20]), r"shorter than the 34-byte header"),
    (lambda p: Path(p + ".idx").write_bytes(Path(p + ".idx").read_bytes()[:-8]), r"\.idx: \d+ bytes, but its header promises"),
    (lambda p: _patch(p + ".idx", 9, struct.pack("<Q", 7)), r"corrupt header \(version 7"),
    (lambda p: _patch(p + ".idx", 17, struct.pack("<B", 99)), r"token type code 99"),
])
def test_a_damaged_pair_is_named_with_the_fix(data, damage, message):
    prefix = _prefix(data)
    damage(prefix)
    with pytest.raises(DataError, match=message) as err:
        check_prefix(prefix)
    assert "rerun preprocessing" in str(err.value)
    registry = DomainRegistry.load(data)
    num_pairs = sum(len(prefixes) for d in registry.domains for prefixes in d.splits.values())
    with pytest.raises(DataError, match=f"1 of {num_pairs} indexed datasets fail the integrity check") as err:
        registry.verify_files()
    assert prefix in str(err.value)


def _patch(path: str, offset: int, data: bytes) -> None:
    with open(path, "r+b") as fh:
        fh.seek(offset)
        fh.write(data)


@pytest.mark.parametrize("field", ["num_tokens", "num_documents", "num_sequences"])
def test_an_edited_count_in_domains_json_is_refused(data, field):
    obj = json.loads(data.read_text())
    obj["domains"][2]["splits"]["valid"][0][field] += 1
    data.write_text(json.dumps(obj))
    with pytest.raises(DataError, match=r"records \(documents, sequences, tokens\) = .* but its \.idx holds "
                                        r".*domains\.json was edited"):
        DomainRegistry.load(data).verify_files()


def test_the_check_reads_a_fixed_number_of_bytes_whatever_the_size(tmp_path, monkeypatch):
    """Header + four numbers: the bytes read do not grow with the data (no full read)."""
    import regmix_megatron.data.index_files as index_files

    read_sizes = []
    real_open = open

    class Counting:
        def __init__(self, fh):
            self.fh = fh

        def read(self, n=-1):
            data = self.fh.read(n)
            read_sizes.append(len(data))
            return data

        def __getattr__(self, name):
            return getattr(self.fh, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.fh.close()

    monkeypatch.setattr(index_files, "open", lambda *a, **k: Counting(real_open(*a, **k)), raising=False)
    totals = []
    for num_documents in (3, 3000):
        read_sizes.clear()
        write_pair(tmp_path / f"p{num_documents}", num_documents, num_documents * 50)
        counts = check_prefix(tmp_path / f"p{num_documents}")
        assert counts.num_tokens == num_documents * 50 and counts.num_documents == num_documents
        totals.append(sum(read_sizes))
    assert totals[0] == totals[1] == HEADER_BYTES + 4 + 8 + 8 + 8

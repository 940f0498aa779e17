"""Reading a corpus directory (regmix_megatron/data/corpus_reader.py): domains, splits, documents, bad lines."""

from __future__ import annotations

import pytest

from conftest import FIXTURE_CORPUS
from regmix_megatron.data.corpus_reader import discover_corpus, iter_documents, parse_line
from regmix_megatron.errors import DataError, RegmixError


def test_discovers_every_domain_and_split_of_the_fixture():
    found = discover_corpus(FIXTURE_CORPUS)
    assert list(found) == sorted(found) and {"code", "legal", "literature", "math"} <= set(found)
    for files in found.values():
        assert set(files) == {"train", "valid", "test"}
    only = discover_corpus(FIXTURE_CORPUS, splits=("valid",), domains=["math", "code"])
    assert list(only) == ["code", "math"] and set(only["code"]) == {"valid"}
    with pytest.raises(RegmixError, match=r"--domains: \['nope'\] not found"):
        discover_corpus(FIXTURE_CORPUS, domains=["nope"])


def test_documents_and_bad_lines(tmp_path):
    path = tmp_path / "train.jsonl"
    path.write_bytes(b'{"text": "one"}\n\n{"text": 2}\n{"text": "three"}\nnot json\n')
    with pytest.raises(DataError, match=r"train.jsonl:3: 'text' is int, not a string"):
        list(iter_documents(path))
    skipped: list[str] = []
    docs = list(iter_documents(path, skip_bad=True, skipped=skipped))
    assert [(n, d["text"]) for n, d in docs] == [(1, "one"), (4, "three")] and len(skipped) == 2
    with pytest.raises(DataError, match=r"f:7: invalid UTF-8 \(byte 0xff at column 11\)"):
        parse_line(b'{"text": "\xff"}', "f", 7)
    with pytest.raises(DataError, match=r"f:1: no key 'body'"):
        parse_line(b'{"text": "x"}', "f", 1, ("body",))


def test_empty_or_misnamed_domains_are_refused(tmp_path):
    (tmp_path / "good").mkdir()
    (tmp_path / "good" / "train.jsonl").write_text('{"text": "x"}\n')
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "train.jsonl").write_text("\n")
    with pytest.raises(DataError, match="empty domain split"):
        discover_corpus(tmp_path)
    (tmp_path / "empty" / "train.jsonl").unlink()
    with pytest.raises(DataError, match="empty domain"):
        discover_corpus(tmp_path)
    (tmp_path / "empty").rmdir()
    (tmp_path / "bad name").mkdir()
    (tmp_path / "bad name" / "train.jsonl").write_text('{"text": "x"}\n')
    with pytest.raises(DataError, match="must be letters, digits"):
        discover_corpus(tmp_path)

"""corpus/user_domain.py: ``regmix-megatron corpus add`` end to end on small constructed inputs."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from regmix_megatron.corpus import writer
from regmix_megatron.corpus.documents import assign_split
from regmix_megatron.corpus.splits import EVAL_ONLY_FRACTIONS
from regmix_megatron.corpus.user_domain import add_domain
from regmix_megatron.errors import ConfigError, DataError
from regmix_megatron.manifest import SPLITS

from helpers.cli import run_cli
from helpers.corpus_sources import assert_prefixes_stratified

WORDS = "river stone lantern meadow copper orchard whistle harbour velvet cinder".split()


def paragraph(seed: int, num_words: int = 45) -> str:
    return " ".join(WORDS[(seed * 7 + k * (seed % 5 + 1)) % len(WORDS)] + str(seed % 97) for k in range(num_words))


def make_inputs(root: Path) -> Path:
    """Two text files (one source each) and a JSONL file whose lines name two sources (one line names none)."""
    texts = root / "my_texts"
    (texts / "letters").mkdir(parents=True)
    (texts / "essays.txt").write_text("\n\n".join(paragraph(i) for i in range(60)), encoding="utf-8")
    (texts / "letters" / "1901.md").write_text("\n\n".join(paragraph(1000 + i) for i in range(25)), encoding="utf-8")
    lines = [{"text": paragraph(2000 + i), "source": "forum" if i % 3 else "mail"} for i in range(90)]
    lines.append({"text": paragraph(3000) + " unsigned"})
    (texts / "posts.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines), encoding="utf-8")
    (texts / "notes.bin").write_bytes(b"\x00")  # not text: ignored in a directory
    return texts


def read_split(corpus: Path, name: str, split: str) -> list[dict]:
    return [json.loads(line) for line in (corpus / name / f"{split}.jsonl").read_text().splitlines()]


def test_corpus_add_eval_only_end_to_end(tmp_path):
    texts = make_inputs(tmp_path)
    proc = run_cli("corpus", "add", "mytexts", "--input", str(texts), "--eval-only", "--cache-dir",
                   str(tmp_path / "cache"), "--max-doc-chars", "1000")
    assert "added evaluation-only domain mytexts" in proc.stdout
    corpus = tmp_path / "cache" / "corpus"
    entry = writer.read_manifest(corpus)["domains"]["mytexts"]
    assert entry["evaluation_only"] and writer.is_domain_complete(corpus, "mytexts", entry["settings_hash"])
    lines = {split: read_split(corpus, "mytexts", split) for split in SPLITS}
    sources = Counter(line["source"] for split in SPLITS for line in lines[split])
    # a source per file, a JSONL line's own source first, the file's for a line naming none
    assert set(sources) == {"essays.txt", "letters/1901.md", "forum", "mail", "posts.jsonl"}
    assert sources["posts.jsonl"] == 1 and sources["forum"] == 60 and sources["mail"] == 30
    for source, total in sources.items():
        for split, fraction in EVAL_ONLY_FRACTIONS.items():
            count = sum(line["source"] == source for line in lines[split])
            assert abs(count - fraction * total) < 1, (source, split, count, total)
    for split in ("valid", "test"):
        assert_prefixes_stratified([line["source"] for line in lines[split]])
        recorded = {s: c["num_documents"] for s, c in entry["splits"][split]["sources"].items()}
        assert recorded == dict(Counter(line["source"] for line in lines[split]))
    assert all(200 <= len(line["text"]) <= 1000 for split in SPLITS for line in lines[split])
    assert "mytexts" in run_cli("corpus", "info", "--cache-dir", str(tmp_path / "cache")).stdout

    mtimes = {p: p.stat().st_mtime_ns for p in (corpus / "mytexts").iterdir()}
    again = run_cli("corpus", "add", "mytexts", "--input", str(texts), "--eval-only", "--cache-dir",
                    str(tmp_path / "cache"), "--max-doc-chars", "1000")
    assert "reused" in again.stdout and mtimes == {p: p.stat().st_mtime_ns for p in (corpus / "mytexts").iterdir()}
    (texts / "essays.txt").write_text("\n\n".join(paragraph(i) for i in range(61)), encoding="utf-8")
    entry2, reused = add_domain(corpus, "mytexts", [texts], eval_only=True)  # content changed: rebuilt
    assert not reused and entry2["settings_hash"] != entry["settings_hash"]


def test_corpus_add_training_domain_splits_by_text_hash(tmp_path):
    texts = make_inputs(tmp_path)
    entry, reused = add_domain(tmp_path / "corpus", "mine", [texts / "essays.txt", texts / "posts.jsonl"])
    assert not reused and "evaluation_only" not in entry
    moved = [(split, line["text"]) for split in SPLITS for line in read_split(tmp_path / "corpus", "mine", split)
             if assign_split(line["text"], 0.02, 0.02) != split]
    assert len(moved) <= 2 and all(split != "train" for split, _ in moved)  # only to fill an empty valid/test
    train = read_split(tmp_path / "corpus", "mine", "train")
    assert len(train) > 0.8 * entry["num_documents"]  # a training domain keeps ~96% for training
    assert all(line["source"] for line in train)
    eval_only, _ = add_domain(tmp_path / "corpus", "mine", [texts / "essays.txt", texts / "posts.jsonl"],
                              eval_only=True)
    assert eval_only["settings_hash"] != entry["settings_hash"]  # switching the role rewrites the domain


def test_corpus_add_errors_name_the_argument_and_the_fix(tmp_path):
    texts = make_inputs(tmp_path)
    proc = run_cli("corpus", "add", "qa", "--input", str(texts), "--corpus-dir", str(tmp_path / "c"), check=False)
    assert proc.returncode == 2 and "error:" in proc.stderr and "built-in domain" in proc.stderr
    assert "Traceback" not in proc.stderr
    with pytest.raises(DataError, match=r"--input .*missing: no such file or directory"):
        add_domain(tmp_path / "c", "mine", [tmp_path / "missing"])
    with pytest.raises(DataError, match=r"--input .*notes.bin: not a text"):
        add_domain(tmp_path / "c", "mine", [texts / "notes.bin"])
    with pytest.raises(ConfigError, match="letters, digits"):
        add_domain(tmp_path / "c", "my texts", [texts])
    (tmp_path / "bad.jsonl").write_text('{"text": "fine"}\n{"txt": 1}\n')
    with pytest.raises(DataError, match=r"bad.jsonl:2: no key 'text'.*fix or remove the line$"):
        add_domain(tmp_path / "c", "mine", [tmp_path / "bad.jsonl"])
    (tmp_path / "short.txt").write_text(paragraph(1))
    with pytest.raises(DataError, match=r"domain mine: 1 documents .* leave train/test empty; add text"):
        add_domain(tmp_path / "c", "mine", [tmp_path / "short.txt"], eval_only=True)
    assert not writer.is_domain_complete(tmp_path / "c", "mine")

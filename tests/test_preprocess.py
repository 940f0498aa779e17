"""JSONL -> Megatron .bin/.idx + domains.json: exact counts, determinism over workers, round trips, bad input."""

import importlib.util
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from regmix_megatron.cli import main as cli_main
from regmix_megatron.errors import DataError, RegmixError
from regmix_megatron.manifest import DomainRegistry
from regmix_megatron.corpus_reader import iter_documents
from regmix_megatron.preprocess import preprocess_corpus, preprocess_jsonl
from regmix_megatron.tokenizer import EOS_ID, TokenizerTrainConfig, load_processor, train_tokenizer

from conftest import FIXTURE_CORPUS

REPO = Path(__file__).resolve().parents[1]


def _indexed(prefix):
    from megatron.core.datasets.indexed_dataset import IndexedDataset

    return IndexedDataset(str(prefix))


def _small_corpus(root: Path, domains=("code", "speeches"), num_lines: int = 4) -> Path:
    """The first ``num_lines`` documents of each split of some fixture domains (real text)."""
    for domain in domains:
        (root / domain).mkdir(parents=True)
        for split in ("train", "valid", "test"):
            lines = (FIXTURE_CORPUS / domain / f"{split}.jsonl").read_bytes().splitlines(keepends=True)
            (root / domain / f"{split}.jsonl").write_bytes(b"".join(lines[:num_lines]))
    return root


def _files(directory: Path) -> list[str]:
    return sorted(str(p.relative_to(directory)) for p in directory.rglob("*") if p.is_file())


def _assert_nothing_complete(out: Path, prefixes=()):
    """No domains.json, no temp files, and none of ``prefixes`` has a .bin or .idx."""
    if not out.exists():
        return
    names = _files(out)
    assert "domains.json" not in names
    assert not [n for n in names if ".tmp-" in n], names
    for prefix in prefixes:
        assert not Path(f"{prefix}.idx").exists() and not Path(f"{prefix}.bin").exists()


# ---- the shared fixture -------------------------------------------------------------------------------------
def test_domains_json_counts_equal_idx_sums(indexed_fixture):
    registry = DomainRegistry.load(indexed_fixture.domains_json)
    assert registry.names == ("changelogs", "code", "legal", "literature", "math", "reference", "speeches",
                              "techdocs")
    assert registry.tokenizer.eod_id == EOS_ID and registry.tokenizer.vocab_size == indexed_fixture.vocab_size
    for domain in registry.domains:
        assert set(domain.splits) == {"train", "valid", "test"}
        for split, prefixes in domain.splits.items():
            (info,) = prefixes
            ds = _indexed(info.path)  # megatron-core's own reader
            assert ds.index.dtype == np.uint16
            assert info.num_tokens == int(ds.sequence_lengths.astype(np.int64).sum()) > 0
            assert info.num_documents == len(ds.document_indices) - 1 == len(ds)
            jsonl = indexed_fixture.corpus_dir / domain.name / f"{split}.jsonl"
            assert info.num_documents == sum(1 for _ in iter_documents(jsonl))
            assert info.num_sequences == len(ds.sequence_lengths) == info.num_documents  # no sentence split
            assert ds[0][-1] == EOS_ID and ds[len(ds) - 1][-1] == EOS_ID  # EOD appended by default


def test_documents_detokenize_to_the_jsonl_text(indexed_fixture):
    sp = load_processor(indexed_fixture.tokenizer_model)
    registry = DomainRegistry.load(indexed_fixture.domains_json)
    for domain in registry.domains:
        ds = _indexed(domain.prefixes("valid")[0].path)
        texts = [doc["text"] for _, doc in iter_documents(indexed_fixture.corpus_dir / domain.name / "valid.jsonl")]
        for i in (0, len(texts) - 1):
            ids = ds[i].tolist()
            assert ids[-1] == EOS_ID and EOS_ID not in ids[:-1]
            assert sp.decode(ids[:-1]) == texts[i]


def test_one_and_two_workers_write_identical_bytes(indexed_fixture, tmp_path):
    out = tmp_path / "w2"
    manifest = preprocess_corpus(FIXTURE_CORPUS, out, indexed_fixture.tokenizer_model, workers=2,
                                 domains=["code", "literature", "math"])
    for domain in ("code", "literature", "math"):
        for split in ("train", "valid", "test"):
            for ext in (".bin", ".idx"):
                name = f"{domain}/{split}_text_document{ext}"
                assert (out / name).read_bytes() == (indexed_fixture.output_dir / name).read_bytes(), name
    two = DomainRegistry.load(manifest)
    one = DomainRegistry.load(indexed_fixture.domains_json)
    assert [one.get(d).num_tokens(s) for d in two.names for s in ("train", "valid")] == \
           [two.get(d).num_tokens(s) for d in two.names for s in ("train", "valid")]


def test_reuse_with_other_roles_rewrites_only_the_roles(indexed_fixture, tmp_path):
    out = tmp_path / "copy"
    shutil.copytree(indexed_fixture.output_dir, out)
    idx_before = {p.name: p.read_bytes() for p in (out / "qa").glob("*.idx")}
    preprocess_corpus(FIXTURE_CORPUS, out, indexed_fixture.tokenizer_model, workers=1, reuse=True, eval_only=[])
    registry = DomainRegistry.load(out)
    assert registry.eval_only_names == () and "qa" in registry.names
    assert {p.name: p.read_bytes() for p in (out / "qa").glob("*.idx")} == idx_before
    preprocess_corpus(FIXTURE_CORPUS, out, indexed_fixture.tokenizer_model, workers=1, reuse=True,
                      eval_only=["qa", "math"])
    registry = DomainRegistry.load(out)
    assert registry.eval_only_names == ("math", "qa") and "qa" not in registry.names
    with pytest.raises(RegmixError, match="not among the preprocessed domains"):
        preprocess_corpus(FIXTURE_CORPUS, out, indexed_fixture.tokenizer_model, workers=1, reuse=True,
                          eval_only=["nope"])


def test_eval_only_domain_is_tokenized_and_marked(indexed_fixture):
    registry = DomainRegistry.load(indexed_fixture.domains_json)
    assert registry.eval_only_names == ("qa",)
    assert "qa" in registry.all_names and "qa" not in registry.names
    qa = registry.get("qa")
    assert all(qa.num_tokens(s) > 0 for s in ("valid", "test"))
    assert len(registry.tokens_per_domain()) == len(registry.names) == len(registry.all_names) - 1


def test_reuse_returns_the_complete_manifest(indexed_fixture, tmp_path):
    out = tmp_path / "copy"
    shutil.copytree(indexed_fixture.output_dir, out)
    before = (out / "domains.json").read_bytes()
    assert preprocess_corpus(FIXTURE_CORPUS, out, indexed_fixture.tokenizer_model, workers=1, reuse=True,
                             eval_only=["qa"]) == out / "domains.json"
    assert (out / "domains.json").read_bytes() == before
    with pytest.raises(RegmixError, match="--overwrite"):  # without reuse an existing prefix is an error
        preprocess_corpus(FIXTURE_CORPUS, out, indexed_fixture.tokenizer_model, workers=1)


# ---- single files, Megatron-style --------------------------------------------------------------------------
def test_split_sentences_keeps_text_and_adds_sequences(indexed_fixture, tmp_path):
    sp = load_processor(indexed_fixture.tokenizer_model)
    src = tmp_path / "docs.jsonl"
    texts = [doc["text"][:3000] for domain in ("speeches", "literature", "code")
             for _, doc in list(iter_documents(FIXTURE_CORPUS / domain / "valid.jsonl"))[:2]]
    src.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts), encoding="utf-8")
    report = preprocess_jsonl(src, tmp_path / "out", indexed_fixture.tokenizer_model, workers=1,
                              split_sentences=True, append_eod=True)
    prefix = report.prefixes["text"]
    assert prefix.endswith("out_text_sentence")
    ds = _indexed(prefix)
    assert report.num_documents["text"] == 6 and report.num_sequences["text"] > 6 * 3
    for d, text in enumerate(texts):
        first, last = ds.document_indices[d], ds.document_indices[d + 1]
        ids = np.concatenate([ds[i] for i in range(first, last)]).tolist()
        assert ids[-1] == EOS_ID
        assert sp.decode(ids[:-1]) == text  # sentence splitting never alters text (code included)


def test_several_json_keys_give_one_prefix_each(indexed_fixture, tmp_path):
    src = tmp_path / "pairs.jsonl"
    docs = [doc["text"] for _, doc in iter_documents(FIXTURE_CORPUS / "legal" / "valid.jsonl")][:4]
    src.write_text("".join(json.dumps({"title": t[:40], "text": t}) + "\n" for t in docs), encoding="utf-8")
    tool = _load_tool("preprocess_data")
    assert tool.main(["--input", str(src), "--output-prefix", str(tmp_path / "p"), "--tokenizer-model",
                      str(indexed_fixture.tokenizer_model), "--workers", "1", "--json-keys", "text", "title"]) == 0
    for key, cut in (("text", None), ("title", 40)):
        ds = _indexed(tmp_path / f"p_{key}_document")
        assert len(ds) == 4
        sp = load_processor(indexed_fixture.tokenizer_model)
        assert sp.decode(ds[0].tolist()) == docs[0][:cut]  # no --append-eod: no EOD, as in Megatron


def _load_tool(name: str):
    spec = importlib.util.spec_from_file_location(name, REPO / "tools" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ---- bad input ----------------------------------------------------------------------------------------------
BAD_LINES = {
    "malformed JSON": (b'{"text": "unterminated\n', r"docs\.jsonl:3: malformed JSON"),
    "missing key": (b'{"body": "no text key"}\n', r"docs\.jsonl:3: no key 'text'.*--json-keys"),
    "invalid UTF-8": (b'{"text": "caf\xe9"}\n', r"docs\.jsonl:3: invalid UTF-8.*iconv"),
    "not a string": (b'{"text": 42}\n', r"docs\.jsonl:3: 'text' is int"),
}


@pytest.mark.parametrize("case", sorted(BAD_LINES))
def test_bad_line_names_file_and_line_and_leaves_nothing(indexed_fixture, tmp_path, case):
    bad, message = BAD_LINES[case]
    good = [json.dumps({"text": f"Document number {i}."}).encode() + b"\n" for i in range(4)]
    src = tmp_path / "docs.jsonl"
    src.write_bytes(good[0] + b"\n" + bad + good[1] + good[2])  # line 2 is blank (ignored), line 3 is bad
    with pytest.raises(DataError, match=message) as err:
        preprocess_jsonl(src, tmp_path / "out" / "docs", indexed_fixture.tokenizer_model, workers=1)
    assert "--skip-bad" in str(err.value)
    _assert_nothing_complete(tmp_path / "out", [tmp_path / "out" / "docs_text_document"])
    report = preprocess_jsonl(src, tmp_path / "out" / "docs", indexed_fixture.tokenizer_model, workers=1,
                              skip_bad=True)
    assert (report.num_bad_lines, report.num_documents["text"], report.num_lines) == (1, 3, 4)
    assert report.bad_lines[0].startswith(f"{src}:3:")


def test_bad_line_in_a_corpus_leaves_no_manifest(indexed_fixture, tmp_path):
    corpus = _small_corpus(tmp_path / "corpus")
    with open(corpus / "speeches" / "test.jsonl", "ab") as fh:  # the last file processed
        fh.write(b'{"text": "ok"}\n{"text": broken}\n')
    out = tmp_path / "out"
    with pytest.raises(DataError, match=r"speeches/test\.jsonl:6: malformed JSON"):
        preprocess_corpus(corpus, out, indexed_fixture.tokenizer_model, workers=2)
    _assert_nothing_complete(out, [out / "speeches" / "test_text_document"])
    # the CLI reports it with exit code 2 and the same message; --skip-bad finishes and counts
    args = ["preprocess", "--input", str(corpus), "--output-dir", str(tmp_path / "cli"), "--tokenizer-model",
            str(indexed_fixture.tokenizer_model), "--workers", "1"]
    assert cli_main(args) == 2
    assert cli_main(args + ["--skip-bad", "--overwrite"]) == 0
    registry = DomainRegistry.load(tmp_path / "cli")
    assert registry.get("speeches").num_documents("test") == 5


def test_empty_domain_is_refused(indexed_fixture, tmp_path):
    corpus = _small_corpus(tmp_path / "corpus")
    (corpus / "empty").mkdir()
    with pytest.raises(DataError, match=r"empty.*empty domain"):
        preprocess_corpus(corpus, tmp_path / "out", indexed_fixture.tokenizer_model, workers=1)
    shutil.rmtree(corpus / "empty")
    (corpus / "code" / "valid.jsonl").write_text("\n\n")
    with pytest.raises(DataError, match=r"code/valid\.jsonl: empty domain split"):
        preprocess_corpus(corpus, tmp_path / "out", indexed_fixture.tokenizer_model, workers=1)
    (corpus / "code" / "valid.jsonl").write_text('{"text": ""}\n')  # only empty documents
    with pytest.raises(DataError, match=r"code/valid\.jsonl: no documents"):
        preprocess_corpus(corpus, tmp_path / "out", indexed_fixture.tokenizer_model, workers=1)
    _assert_nothing_complete(tmp_path / "out", [tmp_path / "out" / "code" / "valid_text_document"])


def test_existing_output_is_kept_without_overwrite(indexed_fixture, tmp_path):
    corpus = _small_corpus(tmp_path / "corpus")
    out = tmp_path / "out"
    manifest = preprocess_corpus(corpus, out, indexed_fixture.tokenizer_model, workers=1)
    before = {n: (out / n).read_bytes() for n in _files(out)}
    with pytest.raises(RegmixError, match=r"train_text_document exists.*--overwrite"):
        preprocess_corpus(corpus, out, indexed_fixture.tokenizer_model, workers=1)
    assert {n: (out / n).read_bytes() for n in _files(out)} == before
    src = corpus / "code" / "train.jsonl"
    preprocess_jsonl(src, tmp_path / "single", indexed_fixture.tokenizer_model)
    with pytest.raises(RegmixError, match=r"single_text_document exists.*--overwrite"):
        preprocess_jsonl(src, tmp_path / "single", indexed_fixture.tokenizer_model)
    assert preprocess_corpus(corpus, out, indexed_fixture.tokenizer_model, workers=1, overwrite=True) == manifest
    assert {n: (out / n).read_bytes() for n in _files(out)} == before


def test_tokenizer_not_matching_the_manifest_is_refused(indexed_fixture, tmp_path, capsys):
    corpus = _small_corpus(tmp_path / "corpus")
    out = tmp_path / "out"
    preprocess_corpus(corpus, out, indexed_fixture.tokenizer_model, workers=1)
    other = train_tokenizer(corpus, tmp_path / "other", TokenizerTrainConfig(vocab_size=400,
                                                                           sample_bytes_per_domain=5000))
    with pytest.raises(DataError, match=r"domains\.json was built with tokenizer.*--tokenizer-model"):
        preprocess_corpus(corpus, out, other, workers=1, reuse=True)
    assert cli_main(["preprocess", "--input", str(corpus), "--output-dir", str(out), "--tokenizer-model",
                     str(other), "--workers", "1"]) == 2
    assert "--tokenizer-model" in capsys.readouterr().err
    # --overwrite rebuilds everything with the new tokenizer
    preprocess_corpus(corpus, out, other, workers=1, overwrite=True)
    assert DomainRegistry.load(out).tokenizer.vocab_size == 400


def test_cli_flag_errors(indexed_fixture, tmp_path, capsys):
    corpus = _small_corpus(tmp_path / "corpus", domains=("code",), num_lines=2)
    model = str(indexed_fixture.tokenizer_model)
    assert cli_main(["preprocess", "--input", str(corpus), "--output-prefix", str(tmp_path / "p"),
                     "--tokenizer-model", model]) == 2
    assert "--output-dir" in capsys.readouterr().err
    assert cli_main(["preprocess", "--input", str(tmp_path / "nope"), "--output-dir", str(tmp_path / "o"),
                     "--tokenizer-model", model]) == 2
    assert "--input" in capsys.readouterr().err
    assert cli_main(["preprocess", "--input", str(corpus), "--output-dir", str(tmp_path / "o"),
                     "--tokenizer-model", str(tmp_path / "none.model")]) == 2
    assert "--tokenizer-model" in capsys.readouterr().err
    assert cli_main(["preprocess", "--input", str(corpus), "--output-dir", str(tmp_path / "o"),
                     "--tokenizer-model", model, "--workers", "0"]) == 2
    assert "--workers 0" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_megatron_style_tool_on_a_corpus_directory(indexed_fixture, tmp_path):
    corpus = _small_corpus(tmp_path / "corpus", domains=("math",), num_lines=2)
    out = tmp_path / "out"
    tool = _load_tool("preprocess_data")
    args = ["--input", str(corpus), "--output-prefix", str(out), "--tokenizer-model",
            str(indexed_fixture.tokenizer_model), "--workers", "1"]
    assert tool.main(args) == 0  # without --append-eod, as in Megatron-LM: no EOD tokens
    registry = DomainRegistry.load(out / "domains.json")
    ds = _indexed(registry.get("math").prefixes("train")[0].path)
    assert EOS_ID not in ds[0].tolist()
    assert tool.main(args) == 2  # outputs exist
    assert tool.main(args + ["--overwrite", "--append-eod"]) == 0
    ds = _indexed(registry.get("math").prefixes("train")[0].path)  # keep it alive: items are views of its mmap
    assert ds[0][-1] == EOS_ID
    assert tool.main(args[:4] + ["--tokenizer-model", str(tmp_path / "other.model"), "--workers", "1"]) == 2


# ---- sources of the documents (domains.json) ---------------------------------------------------------------
def _document_tokens(prefix) -> list[int]:
    """Tokens of each document of an indexed dataset, read back from its .idx."""
    ds = _indexed(prefix)
    bounds = ds.document_indices
    return [int(ds.sequence_lengths[bounds[d]:bounds[d + 1]].sum()) for d in range(len(bounds) - 1)]


def test_domains_json_records_each_documents_source_in_bin_order(indexed_fixture):
    registry = DomainRegistry.load(indexed_fixture.domains_json)
    qa = registry.get("qa")
    for split in ("train", "valid", "test"):
        lines = [json.loads(line) for line in (FIXTURE_CORPUS / "qa" / f"{split}.jsonl").read_text().splitlines()]
        sources = qa.document_sources(split)
        assert sources == [line["source"] for line in lines]
        (prefix,) = qa.prefixes(split)
        tokens = _document_tokens(prefix.path)
        assert len(tokens) == len(sources) == qa.num_documents(split)
        for name, count in qa.sources(split).items():  # exact tokens per source, from the .idx
            assert count.num_documents == sources.count(name)
            assert count.num_tokens == sum(t for t, s in zip(tokens, sources) if s == name)
        assert sum(c.num_tokens for c in qa.sources(split).values()) == qa.num_tokens(split)
    # training domains' lines name no source: unknown, nothing recorded
    assert registry.get("code").sources("valid") is None and registry.get("code").document_sources("test") is None


def test_sources_count_empty_documents_sentences_and_unnamed_lines_and_skip_bad_lines(indexed_fixture, tmp_path):
    texts = [doc["text"][:1500] for _, doc in list(iter_documents(FIXTURE_CORPUS / "speeches" / "train.jsonl"))[:3]]
    lines = [json.dumps({"text": texts[0], "source": "a"}), json.dumps({"text": "", "source": "b"}),  # no tokens
             "{not json", json.dumps({"text": texts[1]}),  # bad line (skipped), then a line naming no source
             json.dumps({"text": texts[2], "source": "a"}), json.dumps({"text": texts[1], "source": 7})]
    corpus = _small_corpus(tmp_path / "corpus", domains=("code",))
    (corpus / "mixed").mkdir()
    for split in ("train", "valid", "test"):
        (corpus / "mixed" / f"{split}.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    domains_json = preprocess_corpus(corpus, tmp_path / "out", indexed_fixture.tokenizer_model, workers=2,
                                     skip_bad=True, split_sentences=True)
    mixed = DomainRegistry.load(domains_json).get("mixed")
    assert mixed.document_sources("valid") == ["a", "b", "(unknown)", "a", "(unknown)"]
    tokens = _document_tokens(mixed.prefixes("valid")[0].path)
    assert len(tokens) == 5 and tokens[1] == 0  # the empty document is a document of no tokens
    assert {n: (c.num_documents, c.num_tokens) for n, c in mixed.sources("valid").items()} == {
        "(unknown)": (2, tokens[2] + tokens[4]), "a": (2, tokens[0] + tokens[3]), "b": (1, 0)}

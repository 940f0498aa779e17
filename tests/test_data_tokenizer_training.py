"""Tokenizer training, metadata, megatron-core loading, round trips, Punkt sentence splitting."""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from regmix_megatron.cli import main as cli_main
from regmix_megatron.errors import DataError, RegmixError
from regmix_megatron.fileio import sha256_file
from regmix_megatron.data.corpus_reader import iter_documents
from regmix_megatron.data.tokenizer_training import (
    EOS_ID,
    INFO_FILE,
    METADATA_FILE,
    PAD_ID,
    TokenizerTrainConfig,
    adopt_tokenizer,
    identify,
    load_processor,
    megatron_metadata,
    sample_corpus,
    train_tokenizer,
)

from conftest import FIXTURE_CORPUS, FIXTURE_VOCAB_SIZE

REPO = Path(__file__).resolve().parents[1]


def _load_tool(name: str):
    spec = importlib.util.spec_from_file_location(name, REPO / "tools" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _texts(domain: str, split: str = "valid", limit: int = 4) -> list[str]:
    docs = [doc["text"] for _, doc in iter_documents(FIXTURE_CORPUS / domain / f"{split}.jsonl")]
    return docs[:limit]


def test_trained_tokenizer_files_and_special_ids(fixture_tokenizer):
    directory = fixture_tokenizer.parent
    assert json.loads((directory / METADATA_FILE).read_text()) == megatron_metadata()
    info = json.loads((directory / INFO_FILE).read_text())
    assert info["special_ids"] == {"unk": 0, "bos": 1, "eos": EOS_ID, "pad": PAD_ID, "eod": EOS_ID}
    assert info["sha256"] == sha256_file(fixture_tokenizer)
    assert info["vocab_size"] == FIXTURE_VOCAB_SIZE
    taken = info["training"]["bytes_per_domain"]
    assert len(taken) == 8 and len(set(taken.values())) == 1  # equal bytes from every fixture domain
    sp = load_processor(fixture_tokenizer)
    assert [sp.id_to_piece(i) for i in range(4)] == ["<unk>", "<s>", "</s>", "<pad>"]
    assert sp.piece_to_id("<0x0A>") > 3  # byte fallback pieces exist


def test_identity_is_the_one_megatron_types_record(fixture_tokenizer):
    """``identify`` (a SentencePiece model) gives the identity ``identify_spec`` gives for the same model named as
    GPTSentencePieceTokenizer, plus its special ids; ``domains.json`` records both alike."""
    from regmix_megatron.data.manifest import TokenizerInfo
    from regmix_megatron.data.tokenizer_types import TokenizerSpec, identify_spec

    ident = identify(fixture_tokenizer.parent)
    general = identify_spec(TokenizerSpec("GPTSentencePieceTokenizer", str(fixture_tokenizer)))
    assert (ident.bos_id, ident.unk_id, ident.pad_id, ident.eod_id) == (1, 0, PAD_ID, EOS_ID)
    assert TokenizerInfo.from_identity(ident) == TokenizerInfo.from_identity(general)
    assert TokenizerInfo.from_identity(ident).spec.megatron_flags() == \
        ["--tokenizer-type", "GPTSentencePieceTokenizer", "--tokenizer-model", str(fixture_tokenizer.resolve())]


def test_sample_is_balanced_and_seeded():
    cfg = TokenizerTrainConfig(vocab_size=500, sample_bytes_per_domain=20_000, seed=3)
    lines, taken = sample_corpus(FIXTURE_CORPUS, cfg)
    assert set(taken) == {"changelogs", "code", "legal", "literature", "math", "qa", "reference", "speeches",
                          "techdocs"}  # every domain of the corpus (the pipeline passes its training domains)
    assert set(taken.values()) == {20_000}
    assert all("\n" not in ln and ln.strip() for ln in lines)
    again, _ = sample_corpus(FIXTURE_CORPUS, cfg)
    other, _ = sample_corpus(FIXTURE_CORPUS, TokenizerTrainConfig(vocab_size=500, sample_bytes_per_domain=20_000,
                                                                  seed=4))
    assert again == lines and other != lines


def test_training_is_deterministic(tmp_path):
    cfg = TokenizerTrainConfig(vocab_size=500, sample_bytes_per_domain=15_000, seed=0)
    a = train_tokenizer(FIXTURE_CORPUS, tmp_path / "a", cfg, domains=["code", "literature"])
    b = train_tokenizer(FIXTURE_CORPUS, tmp_path / "b", cfg, domains=["code", "literature"])
    assert a.read_bytes() == b.read_bytes()
    with pytest.raises(RegmixError, match="--overwrite"):
        train_tokenizer(FIXTURE_CORPUS, tmp_path / "a", cfg, domains=["code", "literature"])


@pytest.mark.parametrize("domain", ["code", "math", "literature", "changelogs", "reference"])
def test_detokenize_round_trip_through_megatron_tokenizer(fixture_tokenizer, domain):
    from regmix_megatron.megatron.tokenizer_adapter import load_tokenizer

    tok = load_tokenizer(fixture_tokenizer)
    sp = load_processor(fixture_tokenizer)
    for text in _texts(domain) + ["  indented\n\tcode\r\n  trailing  ", "naïve ünïcödé — 你好 🙂 \x00"]:
        ids = tok.tokenize(text)
        assert ids == sp.encode(text)  # what preprocessing writes is what Megatron's tokenizer produces
        assert tok.detokenize(ids) == text


def test_load_tokenizer_is_usable_by_gpt_dataset_config(fixture_tokenizer):
    from megatron.core.datasets.gpt_dataset import GPTDatasetConfig
    from megatron.core.tokenizers import MegatronTokenizerBase

    from regmix_megatron.megatron.tokenizer_adapter import load_tokenizer

    tok = load_tokenizer(fixture_tokenizer.parent)  # the directory works too
    assert isinstance(tok, MegatronTokenizerBase)
    assert (tok.eod, tok.pad, tok.bos, tok.vocab_size) == (EOS_ID, PAD_ID, 1, FIXTURE_VOCAB_SIZE)
    assert tok.unique_identifiers["tokenizer_path"] == str(fixture_tokenizer.resolve())
    config = GPTDatasetConfig(random_seed=1, sequence_length=32, blend=None, blend_per_split=[None, None, None],
                              split="1,0,0", tokenizer=tok, reset_position_ids=False, reset_attention_mask=False,
                              eod_mask_loss=False, mid_level_dataset_surplus=0.005)
    assert config.token_dtype_code == 8  # uint16, as preprocessing writes for this vocab


def test_load_tokenizer_refuses_a_different_model(fixture_tokenizer, tmp_path):
    from regmix_megatron.megatron.tokenizer_adapter import load_tokenizer

    with pytest.raises(DataError, match="sha256"):
        load_tokenizer(fixture_tokenizer, expected_sha256="0" * 64)
    with pytest.raises(RegmixError, match="no such SentencePiece model"):
        load_tokenizer(tmp_path / "missing.model")
    bad = tmp_path / "bad.model"
    bad.write_bytes(b"not a model")
    with pytest.raises(DataError, match="not a SentencePiece model"):
        identify(bad)


def test_adopt_existing_model_writes_metadata_only(fixture_tokenizer, tmp_path):
    from regmix_megatron.megatron.tokenizer_adapter import load_tokenizer

    model = adopt_tokenizer(fixture_tokenizer, tmp_path / "adopted")
    assert model.read_bytes() == fixture_tokenizer.read_bytes()
    info = json.loads((model.parent / INFO_FILE).read_text())
    assert info["training"] == {"adopted_from": str(fixture_tokenizer.resolve())}
    assert load_tokenizer(model).eod == EOS_ID
    # the tool script does the same with Megatron-style flags
    assert _load_tool("train_tokenizer").main(["--tokenizer-model", str(fixture_tokenizer),
                                               "--output-dir", str(tmp_path / "tool")]) == 0
    assert (tmp_path / "tool" / METADATA_FILE).is_file()


def test_cli_train_and_flag_errors(tmp_path, capsys):
    out = tmp_path / "tok"
    args = ["tokenizer", "train", "--input", str(FIXTURE_CORPUS), "--output-dir", str(out), "--vocab-size", "400",
            "--sample-bytes-per-domain", "8000", "--domains", "code,speeches"]
    assert cli_main(args) == 0
    assert identify(out).vocab_size == 400
    assert cli_main(args) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert cli_main(args[:-6] + ["--vocab-size", "100", "--output-dir", str(tmp_path / "x")]) == 2
    assert "--vocab-size 100" in capsys.readouterr().err
    assert cli_main(["tokenizer", "train", "--output-dir", str(tmp_path / "y")]) == 2
    assert "--input" in capsys.readouterr().err
    assert cli_main(["tokenizer", "info", "--tokenizer-model", str(out)]) == 0
    assert json.loads(capsys.readouterr().out)["eod_id"] == EOS_ID


# ---- Punkt sentence splitting -------------------------------------------------------------------------------
def test_shipped_punkt_model_splits_prose_and_never_alters_text():
    from regmix_megatron.data.sentences import load_splitter, split_pieces

    splitter = load_splitter()
    pieces = split_pieces(splitter, "Mr. Darcy arrived. He was late, e.g. by an hour!  Then he left.\n")
    assert pieces == ["Mr. Darcy arrived.", " He was late, e.g. by an hour!", "  Then he left.\n"]
    for domain in ("literature", "speeches", "code", "math"):
        for text in _texts(domain, "train", 5):
            parts = split_pieces(splitter, text)
            assert "".join(parts) == text
            assert all(parts)
    assert split_pieces(splitter, "") == []


def test_punkt_params_save_load_round_trip(tmp_path):
    from regmix_megatron.data.sentences import load_punkt_params, save_punkt, train_punkt

    params = train_punkt(_texts("speeches", "train", 6))
    save_punkt(params, tmp_path / "p")
    loaded = load_punkt_params(tmp_path / "p")
    assert loaded.abbrev_types == params.abbrev_types
    assert loaded.collocations == params.collocations
    assert loaded.sent_starters == params.sent_starters
    assert dict(loaded.ortho_context) == dict(params.ortho_context)
    with pytest.raises(DataError, match="build_punkt.py"):
        load_punkt_params(tmp_path / "missing")
    # the rebuild tool writes a loadable model from a corpus directory
    tool = _load_tool("build_punkt")
    assert tool.main(["--corpus-dir", str(FIXTURE_CORPUS), "--domains", "speeches,legal", "--bytes-per-domain",
                      "20000", "--output-dir", str(tmp_path / "built")]) == 0
    assert load_punkt_params(tmp_path / "built").ortho_context
    assert np.all([(tmp_path / "built" / f).is_file() for f in ("abbrev_types.txt", "ortho_context.tab")])


def test_bad_corpus_line_names_file_and_line(tmp_path):
    corpus = tmp_path / "corpus"
    for domain in ("code", "speeches"):
        (corpus / domain).mkdir(parents=True)
        lines = (FIXTURE_CORPUS / domain / "train.jsonl").read_bytes().splitlines(keepends=True)[:3]
        (corpus / domain / "train.jsonl").write_bytes(b"".join(lines))
    with open(corpus / "code" / "train.jsonl", "ab") as fh:
        fh.write(b'{"text": "caf\xe9"}\n')
    with pytest.raises(DataError, match=r"code/train\.jsonl:4: invalid UTF-8"):
        train_tokenizer(corpus, tmp_path / "tok", TokenizerTrainConfig(vocab_size=400, sample_bytes_per_domain=5000))
    assert not (tmp_path / "tok" / "tokenizer.model").exists()
    model = train_tokenizer(corpus, tmp_path / "tok", TokenizerTrainConfig(vocab_size=400,
                                                                          sample_bytes_per_domain=5000), skip_bad=True)
    assert identify(model).vocab_size == 400

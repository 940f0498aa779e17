"""Tokenizer types of Megatron-LM (regmix_megatron/data/tokenizer_types.py and the edge's megatron/tokenizer.py).

The ids are checked here against independent references that need no Megatron-LM checkout (the byte-for-byte
comparison with Megatron-LM's own preprocessing is in test_megatron_lm.py): GPT-2 BPE is lossless byte-level
BPE (decode(encode(text)) == text) with GPT-2's EOD; HuggingFace ids are transformers' own
``convert_tokens_to_ids(tokenize(text))``; tiktoken ids decode back to the text.
"""

from __future__ import annotations

import json

import pytest

from regmix_megatron.errors import DataError, RegmixError
from regmix_megatron.data.tokenizer_types import (
    GPT2BPE,
    TokenizerSpec,
    identify_spec,
    identity_sha256,
    load_text_tokenizer,
)

from helpers.tokenizer_files import fixture_texts

TEXTS = fixture_texts("valid")[:6] + ["", "  x  ", "héllo wörld 日本語 🙂\r\n\ttab", "don't <|endoftext|> </s> <s>"]


def gpt2_spec(files, **kw) -> TokenizerSpec:
    return TokenizerSpec(tokenizer_type="GPT2BPETokenizer", vocab_file=str(files[0]), merge_file=str(files[1]), **kw)


def test_gpt2_bpe_is_lossless_with_gpt2s_eod(gpt2_tokenizer_files):
    tok = load_text_tokenizer(gpt2_spec(gpt2_tokenizer_files))
    vocab = json.loads(gpt2_tokenizer_files[0].read_text())
    assert tok.eod == vocab["<|endoftext|>"] and tok.vocab_size == len(vocab) == 1000
    ids = tok.encode_batch(TEXTS)
    assert [tok.decode(i) for i in ids] == TEXTS
    assert ids[TEXTS.index("")] == [] and all(0 <= t < 1000 for i in ids for t in i)
    # the text "<|endoftext|>" is not the EOD token: Megatron's GPT-2 tokenizer has no special tokens
    assert tok.eod not in ids[-1]


def test_gpt2_merges_are_read_as_megatron_reads_them(tmp_path, gpt2_tokenizer_files):
    vocab, merges = gpt2_tokenizer_files
    lines = merges.read_text().split("\n")
    assert lines[0].startswith("#version")
    headerless = tmp_path / "merges.txt"  # Megatron-LM's GPT-2 tokenizer skips line 1 whatever it holds
    headerless.write_text("\n".join(lines[1:]))
    full = GPT2BPE(str(vocab), str(merges)).encode_batch(TEXTS)
    without_first_merge = GPT2BPE(str(vocab), str(headerless)).encode_batch(TEXTS)
    assert full != without_first_merge
    no_eod = tmp_path / "vocab.json"
    no_eod.write_text(json.dumps({k: v for k, v in json.loads(vocab.read_text()).items() if k != "<|endoftext|>"}))
    with pytest.raises(DataError, match="<\\|endoftext\\|>"):
        GPT2BPE(str(no_eod), str(merges))


def test_huggingface_ids_are_transformers_own(hf_tokenizer_dir):
    from transformers import AutoTokenizer

    tok = load_text_tokenizer(TokenizerSpec(tokenizer_type="HuggingFaceTokenizer",
                                            tokenizer_model=str(hf_tokenizer_dir)))
    ref = AutoTokenizer.from_pretrained(str(hf_tokenizer_dir), use_fast=False)
    assert tok.eod == ref.convert_tokens_to_ids("</s>") and tok.vocab_size == len(ref)
    assert tok.encode_batch(TEXTS) == [ref.convert_tokens_to_ids(ref.tokenize(t)) for t in TEXTS]
    # the tokenizer's own specials in the text stay specials (Megatron's default wrapper does the same)
    assert tok.eod in tok.encode_batch(["a </s> b"])[0]


def test_tiktoken_ids_decode_back(tiktoken_vocab):
    path, vocab_size = tiktoken_vocab
    spec = TokenizerSpec(tokenizer_type="TikTokenizer", tokenizer_model=str(path), vocab_size=vocab_size)
    tok = load_text_tokenizer(spec)
    assert tok.eod == 2 and tok.vocab_size == vocab_size  # "</s>" is Megatron's third special token
    plain = TEXTS[:-1]
    for text, ids in zip(plain, tok.encode_batch(plain)):
        assert all(1000 <= t < vocab_size for t in ids)  # ranks shifted past the 1000 special tokens
        assert b"".join(tok.tokenizer._tokenizer.tokenizer.decode_single_token_bytes(t) for t in ids) == \
            text.encode("utf-8")
    legacy = load_text_tokenizer(TokenizerSpec(tokenizer_type="TikTokenizer", tokenizer_model=str(path),
                                               vocab_size=vocab_size, tiktoken_pattern="v2", legacy_tokenizer=True))
    assert tok.eod in tok.encode_batch(["a </s>"])[0] and legacy.eod not in legacy.encode_batch(["a </s>"])[0]


def test_sentencepiece_types_agree_and_legacy_llama2_adds_bos(indexed_fixture):
    from regmix_megatron.data.tokenizer_training import BOS_ID, EOS_ID

    model = str(indexed_fixture.tokenizer_model)
    ids = [load_text_tokenizer(TokenizerSpec(tokenizer_type=t, tokenizer_model=model)).encode_batch(TEXTS)
           for t in ("SentencePieceTokenizer", "GPTSentencePieceTokenizer", "Llama2Tokenizer")]
    assert ids[0] == ids[1] == ids[2]
    legacy = load_text_tokenizer(TokenizerSpec(tokenizer_type="Llama2Tokenizer", tokenizer_model=model,
                                               legacy_tokenizer=True))
    plain = load_text_tokenizer(TokenizerSpec(tokenizer_model=model)).encode_batch(["abc"])[0]
    assert legacy.encode_batch(["abc"])[0] == [BOS_ID, *plain] and legacy.eod == EOS_ID


def test_spec_checks_name_the_flag(tmp_path, gpt2_tokenizer_files, hf_tokenizer_dir):
    cases = [
        (TokenizerSpec(tokenizer_type="GPT2BPETokenizer", vocab_file=str(gpt2_tokenizer_files[0])), "--merge-file"),
        (TokenizerSpec(tokenizer_type="HuggingFaceTokenizer"), "--tokenizer-model"),
        (TokenizerSpec(tokenizer_type="BertWordPieceCase", vocab_file="v.txt"), "not supported"),
        (TokenizerSpec(tokenizer_type="GPT2BPETokenizr"), "did you mean 'GPT2BPETokenizer'"),
        (TokenizerSpec(tokenizer_type="HuggingFaceTokenizer", tokenizer_model="gpt2"), "no such file"),
        (TokenizerSpec(tokenizer_type="HuggingFaceTokenizer",
                       tokenizer_model=str(hf_tokenizer_dir / "tokenizer.json")), "local tokenizer directory"),
        (gpt2_spec((tmp_path, gpt2_tokenizer_files[1])), "is a directory"),
        (TokenizerSpec(tokenizer_type="SentencePieceTokenizer", tokenizer_model=str(tmp_path),
                       legacy_tokenizer=True), "legacy"),
    ]
    for spec, needle in cases:
        with pytest.raises(RegmixError, match=needle):
            spec.check()


def test_identity_covers_the_files_and_round_trips_through_json(tmp_path, gpt2_tokenizer_files, hf_tokenizer_dir):
    spec = gpt2_spec(gpt2_tokenizer_files)
    ident = identify_spec(spec)
    assert (ident.type, ident.vocab_size, ident.model) == ("gpt2-bpe", 1000, str(gpt2_tokenizer_files[0]))
    assert ident.sha256 == identity_sha256(spec) and len(ident.sha256) == 64
    changed = tmp_path / "merges.txt"
    changed.write_text(gpt2_tokenizer_files[1].read_text() + "\n")
    assert identity_sha256(gpt2_spec((gpt2_tokenizer_files[0], changed))) != ident.sha256
    back = TokenizerSpec.from_json(spec.to_json(base=tmp_path), base=tmp_path)
    assert back == spec.resolved()
    assert spec.megatron_flags()[-1] == "--legacy-tokenizer"  # Megatron-LM's default system fetches "gpt2"
    hf = TokenizerSpec(tokenizer_type="HuggingFaceTokenizer", tokenizer_model=str(hf_tokenizer_dir))
    assert set(hf.files()) == {"tokenizer_model/tokenizer.json", "tokenizer_model/tokenizer_config.json",
                               "tokenizer_model/special_tokens_map.json"}
    with pytest.raises(DataError, match="unknown key 'vocab'.*did you mean .*'vocab_file'"):
        TokenizerSpec.from_json({"type": "GPT2BPETokenizer", "vocab": "v.json"})


def test_the_dataset_tokenizer_of_each_type(gpt2_tokenizer_files, hf_tokenizer_dir):
    from regmix_megatron.megatron.tokenizer_adapter import load_spec_tokenizer

    gpt2 = load_spec_tokenizer(gpt2_spec(gpt2_tokenizer_files))
    assert (gpt2.eod, gpt2.vocab_size) == (0, 1000) and gpt2.unique_identifiers
    with pytest.raises(NotImplementedError):
        gpt2.pad  # noqa: B018  megatron-core then pads with -1
    hf = load_spec_tokenizer(TokenizerSpec(tokenizer_type="HuggingFaceTokenizer",
                                           tokenizer_model=str(hf_tokenizer_dir)))
    assert hf.eod == hf.tokenize("</s>")[0] and hf.pad == hf.tokenize("<pad>")[0]

"""Small tokenizers of every Megatron-LM type, trained here on the corpus fixture (nothing from a hub).

- GPT-2 BPE: a byte-level BPE trained with the ``tokenizers`` package, saved as GPT-2's ``vocab.json`` +
  ``merges.txt`` (``<|endoftext|>`` in the vocabulary, as GPT-2's).
- HuggingFace: another byte-level BPE with ``<s>``/``</s>``/``<pad>`` specials, saved by ``transformers``'
  ``PreTrainedTokenizerFast.save_pretrained`` (``tokenizer.json``, ``tokenizer_config.json``, ...).
- tiktoken: Megatron-LM's tiktoken vocabulary format (a JSON list of ``{rank, token_bytes, token_str}``; ranks
  0-255 the single bytes, then the merged tokens of the GPT-2 BPE in merge order).
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

from conftest import FIXTURE_CORPUS

TIKTOKEN_NUM_SPECIAL_TOKENS = 1000


def fixture_texts(split: str = "train") -> list[str]:
    texts = []
    for path in sorted(FIXTURE_CORPUS.glob(f"*/{split}.jsonl")):
        texts += [json.loads(line)["text"] for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return texts


def _byte_bpe(vocab_size: int, special_tokens: list[str]):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=special_tokens, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(fixture_texts(), trainer)
    return tok


def write_gpt2_files(directory: Path, vocab_size: int = 1000) -> tuple[Path, Path]:
    """``vocab.json`` and ``merges.txt`` of a GPT-2-style BPE trained on the fixture."""
    directory.mkdir(parents=True, exist_ok=True)
    tok = _byte_bpe(vocab_size, ["<|endoftext|>"])
    vocab_path, merges_path = tok.model.save(str(directory))
    return Path(vocab_path), Path(merges_path)


def write_hf_dir(directory: Path, vocab_size: int = 800) -> Path:
    """A HuggingFace tokenizer directory (fast tokenizer files) with bos/eos/pad tokens."""
    from transformers import PreTrainedTokenizerFast

    tok = _byte_bpe(vocab_size, ["<s>", "</s>", "<pad>"])
    hf = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>")
    hf.save_pretrained(str(directory))
    return directory


def _byte_decoder() -> dict[str, int]:
    """GPT-2's printable stand-ins for bytes, reversed (character -> byte)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {chr(c): b for b, c in zip(bs, cs)}


def write_tiktoken_vocab(path: Path, merges_txt: Path) -> tuple[Path, int]:
    """Megatron-LM's tiktoken JSON from a GPT-2 ``merges.txt``; returns the path and the ``--vocab-size`` to pass
    (entries + Megatron's 1000 special tokens)."""
    decode = _byte_decoder()
    ranks: list[bytes] = [bytes([i]) for i in range(256)]
    seen = set(ranks)
    for line in merges_txt.read_text(encoding="utf-8").split("\n")[1:]:
        parts = line.split()
        if len(parts) != 2:
            continue
        merged = bytes(decode[c] for c in parts[0] + parts[1])
        if merged not in seen:
            seen.add(merged)
            ranks.append(merged)
    vocab = [{"rank": i, "token_bytes": base64.b64encode(b).decode("ascii"),
              "token_str": b.decode("utf-8", errors="replace")} for i, b in enumerate(ranks)]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(vocab), encoding="utf-8")
    return path, len(vocab) + TIKTOKEN_NUM_SPECIAL_TOKENS


def make_team_data(root: Path, spec, domains: list[str] | None = None) -> Path:
    """The corpus fixture tokenized with ``spec`` (a ``TokenizerSpec``) as a team's existing Megatron prefixes,
    ``root/data/<domain>_<split>_text_document.{bin,idx}`` (EOD appended, Megatron-LM's naming and ids), and
    ``root/domains.yaml`` mapping them for ``domains import`` (tokenizer included). Returns the YAML's path."""
    import yaml

    from regmix_megatron.data.preprocess import EncodeOptions, Encoder, preprocess_file

    domains = domains or sorted(p.name for p in FIXTURE_CORPUS.iterdir() if (p / "train.jsonl").is_file())
    data = root / "data"
    mapping: dict = {}
    with Encoder(EncodeOptions(spec=spec, append_eod=True), workers=1) as encoder:
        for domain in domains:
            for split in ("train", "valid", "test"):
                prefix = data / f"{domain}_{split}"
                preprocess_file(FIXTURE_CORPUS / domain / f"{split}.jsonl", prefix, encoder)
                mapping.setdefault(domain, {})[split] = f"data/{prefix.name}_text_document"
    tokenizer = {k: (str(v) if not isinstance(v, (bool, int, list)) else v) for k, v in spec.to_json().items()}
    path = root / "domains.yaml"
    path.write_text(yaml.safe_dump({"tokenizer": tokenizer, "domains": mapping}, sort_keys=False), encoding="utf-8")
    return path

"""The project's tokenizer: a SentencePiece BPE trained on a domain-balanced sample of the corpus.

Files in a tokenizer directory (``regmix-megatron tokenizer train --output-dir DIR``):

- ``tokenizer.model``: the SentencePiece model.
- ``tokenizer_metadata.json``: what megatron-core's ``MegatronTokenizer.from_pretrained`` reads
  (``{"library": "sentencepiece", "model_type": "gpt", ...}``); it must sit in the model's directory.
- ``tokenizer_info.json``: ours: sha256, vocab size, special ids, and how the model was trained (or adopted).

Special ids of a model trained here (fixed, so every manifest and every Megatron run agrees)::

    unk 0 (<unk>), bos 1 (<s>), eos 2 (</s>) = EOD, pad 3 (<pad>)

End of document (EOD, appended by ``--append-eod``) is the SentencePiece ``eos`` id, which is what
megatron-core's SentencePiece tokenizer reports as ``eod``.

Training choices, all for a lossless round trip (code keeps its indentation and newlines): identity
normalization, no whitespace collapsing, no dummy prefix, byte fallback (any byte, e.g. ``\\n``, encodes),
digits split. ``detokenize(tokenize(text)) == text`` for any text.

This module is pure (sentencepiece, no megatron). ``regmix_megatron.megatron.tokenizer_adapter.load_tokenizer``
turns a tokenizer directory into the object Megatron's datasets want.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

from ..errors import DataError, RegmixError
from ..fileio import atomic_path, atomic_write_json, file_or_in_folder, read_json, sha256_file
from .tokenizer_types import (
    DEFAULT_TYPE,
    MODEL_FILE,
    SentencePieceIds,
    TokenizerIdentity,
    TokenizerSpec,
    load_processor,
)  # load_processor re-exported: its home is tokenizer_types

logger = logging.getLogger(__name__)

METADATA_FILE = "tokenizer_metadata.json"
"""File name megatron-core's ``MegatronTokenizer.from_pretrained`` looks for beside the model."""
INFO_FILE = "tokenizer_info.json"
INFO_FORMAT = "regmix-megatron/tokenizer/v1"

UNK_ID, BOS_ID, EOS_ID, PAD_ID = 0, 1, 2, 3
MIN_VOCAB_SIZE = 384
"""Byte fallback needs 256 byte pieces + 4 specials + the corpus' characters."""
MAX_SENTENCE_BYTES = 4096
"""SentencePiece skips training lines longer than its ``max_sentence_length``; we chunk lines to this."""


@dataclass(frozen=True)
class TokenizerTrainConfig:
    """How to train the BPE. Every field is recorded in ``tokenizer_info.json``."""

    vocab_size: int = 8000
    """Total pieces including specials and the 256 byte pieces."""
    sample_bytes_per_domain: int = 4_000_000
    """UTF-8 bytes drawn from each domain's train split (capped to the smallest domain so all are equal)."""
    seed: int = 1234
    """Order in which documents are drawn for the sample."""
    split: str = "train"
    num_threads: int = 2
    character_coverage: float = 0.9999

    def __post_init__(self) -> None:
        from ..configs import check

        check(self.vocab_size >= MIN_VOCAB_SIZE, "tokenizer", "vocab_size", self.vocab_size,
              f"use at least {MIN_VOCAB_SIZE} (256 byte pieces + specials + characters)")
        check(self.sample_bytes_per_domain > 0, "tokenizer", "sample_bytes_per_domain",
              self.sample_bytes_per_domain, "use a positive number of bytes, e.g. 4000000")
        check(self.num_threads >= 1, "tokenizer", "num_threads", self.num_threads, "use 1 or more")
        check(0.9 <= self.character_coverage <= 1.0, "tokenizer", "character_coverage",
              self.character_coverage, "use a value in [0.9, 1.0], e.g. 0.9999")


# ---- identity ---------------------------------------------------------------------------------------
def resolve_model_path(path: str | os.PathLike, flag: str = "--tokenizer-model") -> Path:
    """A ``.model`` file, or a tokenizer directory holding ``tokenizer.model``."""
    path = file_or_in_folder(path, MODEL_FILE)
    if not path.is_file():
        raise RegmixError(f"{flag} {path}: no such SentencePiece model; train one with "
                          "`regmix-megatron tokenizer train --input CORPUS_DIR --output-dir DIR`")
    return path.resolve()


def identify(model_path: str | os.PathLike) -> TokenizerIdentity:
    """Hash and special ids of a SentencePiece model (EOD = its ``eos`` id, as in megatron-core), named as
    Megatron-LM's ``--tokenizer-type GPTSentencePieceTokenizer``."""
    path = resolve_model_path(model_path)
    ids = SentencePieceIds(str(path))  # refuses a model without an eos piece
    spec = TokenizerSpec(tokenizer_type=DEFAULT_TYPE, tokenizer_model=str(path))
    return TokenizerIdentity(type=spec.family, model=str(path), sha256=sha256_file(path), vocab_size=ids.vocab_size,
                             eod_id=ids.eod, spec=spec, pad_id=ids.pad, bos_id=int(ids.sp.bos_id()),
                             unk_id=int(ids.sp.unk_id()))


def megatron_metadata() -> dict:
    """The metadata megatron-core's tokenizer loader reads (keys as ``MegatronTokenizer.write_metadata``).

    Only these keys: the loader sets every key as an attribute of the tokenizer object.
    """
    return {"library": "sentencepiece", "class_name": None, "class_path": None, "model_type": "gpt",
            "chat_template": None}


def write_metadata(model_path: str | os.PathLike, training: dict | None = None) -> Path:
    """Write ``tokenizer_metadata.json`` and ``tokenizer_info.json`` beside the model; return the info path."""
    ident = identify(model_path)
    directory = Path(ident.model).parent
    atomic_write_json(directory / METADATA_FILE, megatron_metadata())
    info = {
        "format": INFO_FORMAT,
        "model": Path(ident.model).name,
        "sha256": ident.sha256,
        "vocab_size": ident.vocab_size,
        "special_ids": {"unk": ident.unk_id, "bos": ident.bos_id, "eos": ident.eod_id, "pad": ident.pad_id,
                        "eod": ident.eod_id},
        "training": training,
    }
    return atomic_write_json(directory / INFO_FILE, info)


def read_info(model_path: str | os.PathLike) -> dict | None:
    """``tokenizer_info.json`` beside the model, or None."""
    path = resolve_model_path(model_path).parent / INFO_FILE
    return read_json(path) if path.is_file() else None


# ---- training ---------------------------------------------------------------------------------------
def sample_corpus(corpus_dir: str | os.PathLike, config: TokenizerTrainConfig,
                  domains: Sequence[str] | None = None, skip_bad: bool = False) -> tuple[list[str], dict[str, int]]:
    """Equal UTF-8 bytes from each domain's split, documents drawn in a seeded order.

    Returns the sampled lines (newline-free, each at most ``MAX_SENTENCE_BYTES`` bytes, the form
    SentencePiece trains on) and the bytes taken per domain.
    """
    import numpy as np

    from .corpus_reader import discover_corpus, iter_documents

    corpus = discover_corpus(corpus_dir, splits=(config.split,), domains=domains)
    texts_per_domain: dict[str, list[str]] = {}
    skipped: list[str] = []
    for name, files in corpus.items():
        texts_per_domain[name] = [doc["text"] for _, doc in
                                  iter_documents(files[config.split], skip_bad=skip_bad, skipped=skipped)]
    if skipped:
        logger.warning("skipped %d bad line(s) (--skip-bad); first: %s", len(skipped), skipped[0])
    empty = sorted(n for n, ts in texts_per_domain.items() if not any(ts))
    if empty:
        raise DataError(f"{corpus_dir}: domain(s) {empty} have no {config.split} text to sample; add documents "
                        "or leave them out with --domains")
    available = {n: sum(len(t.encode("utf-8")) for t in ts) for n, ts in texts_per_domain.items()}
    budget = min(config.sample_bytes_per_domain, min(available.values()))
    if budget < config.sample_bytes_per_domain:
        smallest = min(available, key=available.get)
        logger.info("sampling %d bytes per domain (the smallest domain, %r, has %d)", budget, smallest,
                    available[smallest])
    lines: list[str] = []
    taken: dict[str, int] = {}
    for d_index, (name, texts) in enumerate(sorted(texts_per_domain.items())):
        rng = np.random.default_rng([config.seed, d_index])
        num_bytes = 0
        for i in rng.permutation(len(texts)):
            if num_bytes >= budget:
                break
            data = texts[i].encode("utf-8")[: budget - num_bytes]
            text = data.decode("utf-8", errors="ignore")
            num_bytes += len(data)
            lines.extend(_training_lines(text))
        taken[name] = num_bytes
    return lines, taken


def _training_lines(text: str) -> list[str]:
    out = []
    for line in text.split("\n"):
        if not line.strip():
            continue
        data = line.encode("utf-8")
        while len(data) > MAX_SENTENCE_BYTES:
            cut = MAX_SENTENCE_BYTES
            while cut > 0 and (data[cut] & 0xC0) == 0x80:  # do not cut inside a UTF-8 character
                cut -= 1
            out.append(data[:cut].decode("utf-8"))
            data = data[cut:]
        out.append(data.decode("utf-8"))
    return out


def train_tokenizer(corpus_dir: str | os.PathLike, output_dir: str | os.PathLike,
                    config: TokenizerTrainConfig | None = None, domains: Sequence[str] | None = None,
                    overwrite: bool = False, skip_bad: bool = False) -> Path:
    """Train a SentencePiece BPE on a domain-balanced sample; write the model and both metadata files.

    Returns the path of ``<output_dir>/tokenizer.model``. Deterministic for a given corpus and config.
    """
    import sentencepiece as spm

    config = config or TokenizerTrainConfig()
    output_dir = Path(output_dir)
    model_path = output_dir / MODEL_FILE
    if model_path.exists() and not overwrite:
        raise RegmixError(f"{model_path} already exists; pass --overwrite to retrain, or use it with "
                          f"--tokenizer-model {model_path}")
    started = time.perf_counter()
    lines, taken = sample_corpus(corpus_dir, config, domains=domains, skip_bad=skip_bad)
    if not lines:
        raise DataError(f"{corpus_dir}: the {config.split} splits hold no text to train a tokenizer on")
    output_dir.mkdir(parents=True, exist_ok=True)
    if overwrite:  # never leave an old metadata file describing a model that is being replaced
        for name in (INFO_FILE, METADATA_FILE):
            (output_dir / name).unlink(missing_ok=True)
    model_bytes = io.BytesIO()
    try:
        # Lines are streamed and the model comes back in memory: no temp paths end up in the model's
        # trainer spec, so the same sample and config give a byte-identical model.
        spm.SentencePieceTrainer.Train(
            sentence_iterator=iter(lines), model_writer=model_bytes, model_type="bpe",
            vocab_size=config.vocab_size, character_coverage=config.character_coverage,
            byte_fallback=True, split_digits=True, allow_whitespace_only_pieces=True,
            remove_extra_whitespaces=False, add_dummy_prefix=False, normalization_rule_name="identity",
            max_sentence_length=MAX_SENTENCE_BYTES * 4, input_sentence_size=0, shuffle_input_sentence=False,
            unk_id=UNK_ID, bos_id=BOS_ID, eos_id=EOS_ID, pad_id=PAD_ID, unk_piece="<unk>",
            bos_piece="<s>", eos_piece="</s>", pad_piece="<pad>", hard_vocab_limit=True,
            num_threads=config.num_threads, minloglevel=2,
        )
    except RuntimeError as exc:
        raise DataError(f"SentencePiece training failed for vocab_size={config.vocab_size} on "
                        f"{sum(taken.values())} bytes: {exc}; lower --vocab-size or sample more bytes "
                        "(--sample-bytes-per-domain)") from None
    with atomic_path(model_path) as tmp_model:
        tmp_model.write_bytes(model_bytes.getvalue())
    training = {
        "corpus_dir": str(Path(corpus_dir).resolve()),
        "bytes_per_domain": taken,
        "sample_sha256": hashlib.sha256("\n".join(lines).encode("utf-8")).hexdigest(),
        "num_lines": len(lines),
        "config": asdict(config),
        "options": {"model_type": "bpe", "byte_fallback": True, "split_digits": True,
                    "normalization_rule_name": "identity", "add_dummy_prefix": False,
                    "remove_extra_whitespaces": False},
        "elapsed_s": round(time.perf_counter() - started, 3),
    }
    write_metadata(model_path, training=training)
    logger.info("trained %s (vocab %d) on %d bytes from %d domains in %.1f s", model_path, config.vocab_size,
                sum(taken.values()), len(taken), training["elapsed_s"])
    return model_path


def adopt_tokenizer(model_path: str | os.PathLike, output_dir: str | os.PathLike | None = None,
                    overwrite: bool = False) -> Path:
    """Use an existing SentencePiece ``.model``: write the metadata files beside it.

    With ``output_dir`` (other than the model's directory) the model is first copied to
    ``<output_dir>/tokenizer.model``, so the original directory is left untouched. Returns the model path.
    """
    source = resolve_model_path(model_path)
    identify(source)  # refuses files that are not usable models before anything is written
    if output_dir is not None and Path(output_dir).resolve() != source.parent:
        target = Path(output_dir) / MODEL_FILE
        if target.exists() and not overwrite and sha256_file(target) != sha256_file(source):
            raise RegmixError(f"{target} already exists and differs from {source}; pass --overwrite to replace "
                              "it or choose another --output-dir")
        for name in (INFO_FILE, METADATA_FILE):
            (Path(output_dir) / name).unlink(missing_ok=True)
        with atomic_path(target) as tmp:
            shutil.copyfile(source, tmp)
    else:
        target = source
    write_metadata(target, training={"adopted_from": str(source)})
    return target

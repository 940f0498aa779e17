"""Tokenizers through megatron-core's own classes: the ids of preprocessing, and the object datasets want.

- :class:`~regmix_megatron.megatron.text_ids.MegatronTextIds` (in ``text_ids.py``, which imports nothing of the
  core's tokenizer modules, so the core can call it without an import cycle): HuggingFace and tiktoken ids.
- :func:`load_tokenizer` / :func:`load_registry_tokenizer`: what ``GPTDatasetConfig.tokenizer`` expects
  (``eod``, ``pad``, ``vocab_size``, ``unique_identifiers``, ``tokenize``/``detokenize``). SentencePiece is
  megatron-core's ``GPTTokenizer`` built from ``tokenizer_metadata.json`` beside the model; HuggingFace and
  tiktoken are megatron-core's classes; GPT-2 BPE is :class:`GPT2DatasetTokenizer` (megatron-core's GPT-2 class
  downloads "gpt2" from the hub). Works on CPU.
"""

from __future__ import annotations

import logging
import os
from collections import OrderedDict
from pathlib import Path
from typing import Sequence

from ..data.tokenizer_training import METADATA_FILE, megatron_metadata, resolve_model_path
from ..data.tokenizer_types import GPT2BPE, TokenizerSpec, identity_sha256
from ..errors import DataError
from .text_ids import _from_pretrained

logger = logging.getLogger(__name__)

class GPT2DatasetTokenizer:
    """GPT-2 BPE for ``GPTDatasetConfig`` (megatron-core's own class for it needs the HuggingFace hub)."""

    def __init__(self, spec: TokenizerSpec) -> None:
        self.spec = spec
        self._bpe = GPT2BPE(spec.vocab_file, spec.merge_file)
        self.eod = self._bpe.eod
        self.vocab_size = self._bpe.vocab_size
        self.path = spec.vocab_file

    @property
    def pad(self) -> int:
        raise NotImplementedError("GPT-2 BPE has no padding token")  # megatron-core then pads with -1

    @property
    def unique_identifiers(self) -> OrderedDict:
        return OrderedDict(self_class=f"{type(self).__module__}.{type(self).__qualname__}",
                           vocab_file=str(self.spec.vocab_file), merge_file=str(self.spec.merge_file))

    def tokenize(self, text: str) -> list[int]:
        return self._bpe.encode_batch([text])[0]

    def detokenize(self, ids: Sequence[int]) -> str:
        return self._bpe.decode(ids)


def load_tokenizer(model_path: str | os.PathLike, expected_sha256: str | None = None):
    """megatron-core tokenizer for a SentencePiece ``.model`` file or a tokenizer directory.

    Uses ``tokenizer_metadata.json`` from the model's directory; without one (a bare ``.model``) the same
    metadata is passed in memory. ``expected_sha256`` (e.g. from ``domains.json``) guards against loading a
    different model than the one the data was tokenized with.
    """
    from megatron.core.tokenizers import MegatronTokenizer

    path = resolve_model_path(model_path)
    if expected_sha256 is not None:
        from ..fileio import sha256_file

        actual = sha256_file(path)
        if actual != expected_sha256:
            raise DataError(f"{path}: sha256 {actual[:12]}... differs from the tokenizer the data was built with "
                            f"({expected_sha256[:12]}...); use the tokenizer recorded in domains.json or "
                            "rerun preprocessing with this one")
    metadata_path = path.parent / METADATA_FILE
    if metadata_path.is_file():
        metadata: str | dict = str(metadata_path)
    else:
        logger.info("%s: no %s beside the model; using the sentencepiece/gpt defaults", path, METADATA_FILE)
        metadata = megatron_metadata()
    try:
        tokenizer = MegatronTokenizer.from_pretrained(tokenizer_path=str(path), metadata_path=metadata)
    except (AssertionError, KeyError, ValueError, AttributeError) as exc:
        raise DataError(f"{metadata_path}: megatron-core could not load the tokenizer ({type(exc).__name__}: "
                        f"{exc}); rewrite the metadata with `regmix-megatron tokenizer train "
                        f"--tokenizer-model {path}`") from None
    if tokenizer.eod is None or tokenizer.eod < 0:
        raise DataError(f"{path}: the model has no end-of-document (eos) piece; train one with "
                        "`regmix-megatron tokenizer train`")
    return tokenizer


def load_spec_tokenizer(spec: TokenizerSpec):
    """The dataset tokenizer of any supported type (SentencePiece through :func:`load_tokenizer`)."""
    spec = spec.check()
    if spec.family == "sentencepiece":
        return load_tokenizer(spec.tokenizer_model)
    if spec.family == "gpt2-bpe":
        return GPT2DatasetTokenizer(spec)
    return _from_pretrained(spec)


def load_registry_tokenizer(registry):
    """The tokenizer recorded in a ``DomainRegistry`` (``domains.json``), checked by sha256, vocabulary, EOD."""
    tok = registry.tokenizer
    spec = tok.spec
    if spec.family == "sentencepiece":
        tokenizer = load_tokenizer(Path(spec.tokenizer_model), expected_sha256=tok.sha256)
    else:
        actual = identity_sha256(spec.check())
        if actual != tok.sha256:
            raise DataError(f"{registry.path}: the tokenizer files {spec.paths()} have sha256 {actual[:12]}..., not "
                            f"the {tok.sha256[:12]}... the data was built with; restore those files or rebuild "
                            "domains.json with `regmix-megatron domains import`")
        tokenizer = load_spec_tokenizer(spec)
    if tokenizer.eod != tok.eod_id or tokenizer.vocab_size != tok.vocab_size:
        raise DataError(f"{registry.path}: tokenizer eod/vocab ({tokenizer.eod}, {tokenizer.vocab_size}) differ "
                        f"from the manifest ({tok.eod_id}, {tok.vocab_size}); rerun preprocessing")
    return tokenizer

"""Load our SentencePiece tokenizer through megatron-core's own tokenizer classes.

``load_tokenizer(path)`` returns megatron-core's ``GPTTokenizer`` (library ``sentencepiece``), built by
``MegatronTokenizer.from_pretrained`` from ``tokenizer_metadata.json`` beside the model. It is what
``GPTDatasetConfig.tokenizer`` expects: ``eod`` (the SentencePiece eos id), ``pad``, ``vocab_size``,
``unique_identifiers``, ``tokenize``/``detokenize``. Works on CPU.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from ..errors import DataError
from ..tokenizer import METADATA_FILE, megatron_metadata, resolve_model_path

logger = logging.getLogger(__name__)


def load_tokenizer(model_path: str | os.PathLike, expected_sha256: str | None = None):
    """megatron-core tokenizer for a ``.model`` file or a tokenizer directory.

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


def load_registry_tokenizer(registry):
    """The tokenizer recorded in a ``DomainRegistry`` (``domains.json``), checked by sha256."""
    tok = registry.tokenizer
    tokenizer = load_tokenizer(Path(tok.model), expected_sha256=tok.sha256)
    if tokenizer.eod != tok.eod_id or tokenizer.vocab_size != tok.vocab_size:
        raise DataError(f"{registry.path}: tokenizer eod/vocab ({tokenizer.eod}, {tokenizer.vocab_size}) differ "
                        f"from the manifest ({tok.eod_id}, {tok.vocab_size}); rerun preprocessing")
    return tokenizer

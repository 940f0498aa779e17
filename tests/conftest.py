"""Shared pytest fixtures (several engineers add here; add, don't rewrite)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FIXTURE_CORPUS = REPO / "tests" / "fixtures" / "corpus"


# ---- tokenizer + indexed datasets of the corpus fixture ---------------------------------------------------
@dataclass(frozen=True)
class IndexedFixture:
    """A tokenizer trained on the corpus fixture and the fixture preprocessed with it (built once per session)."""

    corpus_dir: Path
    """``tests/fixtures/corpus`` (read only)."""
    tokenizer_dir: Path
    """Holds ``tokenizer.model``, ``tokenizer_metadata.json``, ``tokenizer_info.json``."""
    tokenizer_model: Path
    output_dir: Path
    """``<domain>/<split>_text_document.{bin,idx}``."""
    domains_json: Path
    vocab_size: int


FIXTURE_VOCAB_SIZE = 1000


@pytest.fixture(scope="session")
def fixture_tokenizer(tmp_path_factory) -> Path:
    """A SentencePiece BPE (vocab 1000) trained on the corpus fixture's train splits; its ``.model`` path."""
    from regmix_megatron.tokenizer import TokenizerTrainConfig, train_tokenizer

    if not FIXTURE_CORPUS.is_dir():
        pytest.skip(f"corpus fixture {FIXTURE_CORPUS} missing (build it with tools/build_fixture.py)")
    out = tmp_path_factory.mktemp("tokenizer")
    return train_tokenizer(FIXTURE_CORPUS, out, TokenizerTrainConfig(vocab_size=FIXTURE_VOCAB_SIZE,
                                                                     sample_bytes_per_domain=60_000, seed=0))


@pytest.fixture(scope="session")
def indexed_fixture(tmp_path_factory, fixture_tokenizer) -> IndexedFixture:
    """The corpus fixture as Megatron indexed datasets + ``domains.json`` (EOD appended, 1 worker).

    Treat as read only: copy it to ``tmp_path`` before changing anything.
    """
    from regmix_megatron.preprocess import preprocess_corpus

    out = tmp_path_factory.mktemp("indexed")
    domains_json = preprocess_corpus(FIXTURE_CORPUS, out, fixture_tokenizer, workers=1)
    return IndexedFixture(corpus_dir=FIXTURE_CORPUS, tokenizer_dir=fixture_tokenizer.parent,
                          tokenizer_model=fixture_tokenizer, output_dir=out, domains_json=Path(domains_json),
                          vocab_size=FIXTURE_VOCAB_SIZE)

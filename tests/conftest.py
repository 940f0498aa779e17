"""Shared pytest fixtures (several engineers add here; add, don't rewrite).

How the tests are laid out (flat names that map one-to-one onto the package):

- ``regmix_megatron/<module>.py`` -> ``tests/test_<module>.py``; ``regmix_megatron/<pkg>/<module>.py`` ->
  ``tests/test_<pkg>_<module>.py`` (e.g. ``regression/fitting.py`` -> ``test_regression_fitting.py``,
  ``report/figures.py`` -> ``test_report_figures.py``). One test module per module that has logic.
- End-to-end tests of a whole subpackage: ``tests/test_<pkg>.py`` (``test_pipeline.py``, ``test_sweep.py``,
  ``test_regression.py`` on the published RegMix data, ``test_corpus.py``).
- A command's tests live with the module it runs (``search`` in ``test_search_outputs.py``, ``fit`` in
  ``test_regression_fitting.py``); ``commands/`` holds no domain logic.
- Across the package: ``test_imports.py`` (import direction, no cycles); ``test_examples.py`` (shipped files).
- Helpers shared by several test modules: ``tests/helpers/``; fixtures: here.
- Tests that train or run the pipeline end to end are marked ``@pytest.mark.slow`` (``pytest -m "not slow"``
  is the fast tier; ``make test`` runs everything).
"""

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
#: The fixture's held-out domain: evaluation-only in ``indexed_fixture`` (never trained on, not in the tokenizer's
#: sample), as ``qa`` is in the demo.
FIXTURE_EVAL_ONLY = ("qa",)
#: The fixture's training domains.
FIXTURE_TRAIN_DOMAINS = ("changelogs", "code", "legal", "literature", "math", "reference", "speeches", "techdocs")


@pytest.fixture(scope="session")
def fixture_tokenizer(tmp_path_factory) -> Path:
    """A SentencePiece BPE (vocab 1000) trained on the train splits of the corpus fixture's training domains (the
    evaluation-only ``qa`` left out, as the pipeline does); its ``.model`` path."""
    from regmix_megatron.data.tokenizer_training import TokenizerTrainConfig, train_tokenizer

    if not FIXTURE_CORPUS.is_dir():
        pytest.skip(f"corpus fixture {FIXTURE_CORPUS} missing (build it with tools/build_fixture.py)")
    out = tmp_path_factory.mktemp("tokenizer")
    return train_tokenizer(FIXTURE_CORPUS, out, TokenizerTrainConfig(vocab_size=FIXTURE_VOCAB_SIZE,
                                                                     sample_bytes_per_domain=60_000, seed=0),
                           domains=list(FIXTURE_TRAIN_DOMAINS))


@pytest.fixture(scope="session")
def indexed_fixture(tmp_path_factory, fixture_tokenizer) -> IndexedFixture:
    """The corpus fixture as Megatron indexed datasets + ``domains.json`` (EOD appended, 1 worker), with ``qa``
    evaluation-only (:data:`FIXTURE_EVAL_ONLY`).

    Treat as read only: copy it to ``tmp_path`` before changing anything.
    """
    from regmix_megatron.data.preprocess import preprocess_corpus

    out = tmp_path_factory.mktemp("indexed")
    domains_json = preprocess_corpus(FIXTURE_CORPUS, out, fixture_tokenizer, workers=1,
                                     eval_only=FIXTURE_EVAL_ONLY)
    return IndexedFixture(corpus_dir=FIXTURE_CORPUS, tokenizer_dir=fixture_tokenizer.parent,
                          tokenizer_model=fixture_tokenizer, output_dir=out, domains_json=Path(domains_json),
                          vocab_size=FIXTURE_VOCAB_SIZE)


# ---- tokenizers of every Megatron-LM type, and data already tokenized with them (issue 12) -------------------
@pytest.fixture(scope="session")
def gpt2_tokenizer_files(tmp_path_factory) -> tuple[Path, Path]:
    """GPT-2 ``vocab.json`` + ``merges.txt`` of a byte-level BPE (vocab 1000) trained on the corpus fixture."""
    from helpers.tokenizer_files import write_gpt2_files

    return write_gpt2_files(tmp_path_factory.mktemp("gpt2"))


@pytest.fixture(scope="session")
def hf_tokenizer_dir(tmp_path_factory) -> Path:
    """A HuggingFace tokenizer directory (fast tokenizer files; <s>, </s>, <pad>) trained on the corpus fixture."""
    from helpers.tokenizer_files import write_hf_dir

    return write_hf_dir(tmp_path_factory.mktemp("hf-tokenizer"))


@pytest.fixture(scope="session")
def tiktoken_vocab(tmp_path_factory, gpt2_tokenizer_files) -> tuple[Path, int]:
    """Megatron-LM's tiktoken vocabulary JSON (from the GPT-2 merges) and the ``--vocab-size`` it needs."""
    from helpers.tokenizer_files import write_tiktoken_vocab

    return write_tiktoken_vocab(tmp_path_factory.mktemp("tiktoken") / "vocab.json", gpt2_tokenizer_files[1])


def _team_data(tmp_path_factory, name: str, spec) -> Path:
    from helpers.tokenizer_files import make_team_data

    return make_team_data(tmp_path_factory.mktemp(name), spec)


@pytest.fixture(scope="session")
def gpt2_team_data(tmp_path_factory, gpt2_tokenizer_files) -> Path:
    """The corpus fixture as existing Megatron prefixes made with GPT-2 BPE; the ``domains.yaml`` that maps them."""
    from regmix_megatron.data.tokenizer_types import TokenizerSpec

    vocab, merges = gpt2_tokenizer_files
    return _team_data(tmp_path_factory, "team-gpt2", TokenizerSpec(tokenizer_type="GPT2BPETokenizer",
                                                                   vocab_file=str(vocab), merge_file=str(merges)))


@pytest.fixture(scope="session")
def hf_team_data(tmp_path_factory, hf_tokenizer_dir) -> Path:
    """The corpus fixture as existing Megatron prefixes made with a HuggingFace tokenizer; its ``domains.yaml``."""
    from regmix_megatron.data.tokenizer_types import TokenizerSpec

    return _team_data(tmp_path_factory, "team-hf", TokenizerSpec(tokenizer_type="HuggingFaceTokenizer",
                                                                 tokenizer_model=str(hf_tokenizer_dir)))

"""Sentence splitting with nltk's Punkt, using a model trained on our own corpus (shipped as package data).

NLTK's pretrained ``punkt``/``punkt_tab`` data cannot be downloaded here, so ``tools/build_punkt.py`` trains
a ``PunktTrainer`` on prose domains of the corpus and writes the parameters in the tab-separated
``punkt_tab`` layout (``collocations.tab``, ``sent_starters.txt``, ``abbrev_types.txt``,
``ortho_context.tab``) to ``regmix_megatron/data/punkt_en/``. No pickles.

Splitting never changes text: :func:`split_pieces` returns contiguous pieces whose concatenation is the
input, the whitespace between two sentences going to the start of the next piece. Code or tables that
Punkt splits oddly therefore only get extra sequence boundaries, never altered characters.
"""

from __future__ import annotations

import os
from collections import defaultdict
from pathlib import Path
from typing import Iterable

from ..errors import DataError
from ..fileio import atomic_write_text

DEFAULT_PUNKT_DIR = Path(__file__).resolve().parent / "punkt_en"
PUNKT_FILES = ("collocations.tab", "sent_starters.txt", "abbrev_types.txt", "ortho_context.tab")


def train_punkt(texts: Iterable[str]):
    """Punkt parameters learned (unsupervised) from ``texts``; returns ``nltk``'s ``PunktParameters``."""
    from nltk.tokenize.punkt import PunktTrainer

    trainer = PunktTrainer()
    trainer.INCLUDE_ALL_COLLOCS = False
    for text in texts:
        trainer.train(text, finalize=False)
    trainer.finalize_training()
    return trainer.get_params()


def save_punkt(params, directory: str | os.PathLike) -> Path:
    """Write ``params`` as punkt_tab files (sorted, so the same model gives the same bytes)."""
    directory = Path(directory)
    for word in list(params.abbrev_types) + list(params.sent_starters):
        if "\n" in word or "\t" in word:
            raise DataError(f"Punkt type {word!r} contains a tab or newline; cannot save it")
    atomic_write_text(directory / "collocations.tab",
                      "".join(f"{a}\t{b}\n" for a, b in sorted(params.collocations)))
    atomic_write_text(directory / "sent_starters.txt", "".join(f"{w}\n" for w in sorted(params.sent_starters)))
    atomic_write_text(directory / "abbrev_types.txt", "".join(f"{w}\n" for w in sorted(params.abbrev_types)))
    atomic_write_text(directory / "ortho_context.tab",
                      "".join(f"{w}\t{flags}\n" for w, flags in sorted(params.ortho_context.items())))
    return directory


def load_punkt_params(directory: str | os.PathLike | None = None):
    """Read punkt_tab files written by :func:`save_punkt` (or nltk's own punkt_tab layout)."""
    from nltk.tokenize.punkt import PunktParameters

    directory = Path(directory) if directory is not None else DEFAULT_PUNKT_DIR
    missing = [name for name in PUNKT_FILES if not (directory / name).is_file()]
    if missing:
        raise DataError(f"{directory}: Punkt model incomplete (missing {missing}); rebuild it with "
                        "`python tools/build_punkt.py --corpus-dir CORPUS_DIR`")

    def lines(name: str) -> list[str]:
        return [ln for ln in (directory / name).read_text(encoding="utf-8").split("\n") if ln]

    params = PunktParameters()
    params.collocations = {tuple(ln.split("\t")) for ln in lines("collocations.tab")}
    params.sent_starters = set(lines("sent_starters.txt"))
    params.abbrev_types = set(lines("abbrev_types.txt"))
    ortho = defaultdict(int)
    for ln in lines("ortho_context.tab"):
        word, _, flags = ln.rpartition("\t")
        ortho[word] = int(flags)
    params.ortho_context = ortho
    return params


def load_splitter(directory: str | os.PathLike | None = None):
    """A ``PunktSentenceTokenizer`` with our parameters."""
    from nltk.tokenize.punkt import PunktSentenceTokenizer

    return PunktSentenceTokenizer(load_punkt_params(directory))


def split_pieces(splitter, text: str) -> list[str]:
    """Split ``text`` into sentence pieces; ``"".join(result) == text`` always."""
    ends = [end for _, end in splitter.span_tokenize(text)]
    if len(ends) <= 1:
        return [text] if text else []
    bounds = [0] + ends[:-1] + [len(text)]
    return [text[a:b] for a, b in zip(bounds[:-1], bounds[1:]) if b > a]

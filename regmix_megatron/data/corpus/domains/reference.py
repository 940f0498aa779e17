"""Reference: dictionary and glossary entries (GCIDE, WordNet glosses, FOLDOC, the Jargon File),
consecutive entries grouped into documents of a few KB."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

from ..documents import Document, group_entries
from ..formats import iter_dictd_entries, read_text
from ..sources import debian

DESCRIPTION = "dictionary and encyclopedia-style entries (GCIDE, WordNet, FOLDOC, Jargon File)"
EXTRACTOR_VERSION = 1
PACKAGES = (
    debian("dict-gcide", "0.48.5+nmu2", "GPL-2+"),
    debian("wordnet-base", "1:3.0-37", "WordNet-3.0 (permissive)"),
    debian("dict-foldoc", "20230119-1", "GFDL-1.1+"),
    debian("dict-jargon", "4.4.7-3.1", "public domain"),
)
ENTRY_GROUP_CHARS = 4000
_POS = {"n": "noun", "v": "verb", "a": "adjective", "s": "adjective", "r": "adverb"}


def wordnet_entries(path: Path) -> Iterator[str]:
    """``word, word (noun): gloss`` for every synset line of a WordNet ``data.*`` file.

    Licence header lines start with two spaces; the gloss follows `` | ``.
    """
    for line in read_text(path).splitlines():
        if line.startswith("  ") or " | " not in line:
            continue
        fields, gloss = line.split(" | ", 1)
        parts = fields.split()
        num_words = int(parts[3], 16)
        words = [parts[4 + 2 * i].replace("_", " ") for i in range(num_words)]
        words = [w[:w.index("(")] if w.endswith(")") and "(" in w else w for w in words]
        yield f"{', '.join(words)} ({_POS.get(parts[2], parts[2])}): {gloss.strip()}"


def extract(fetched) -> Iterator[Document]:
    for name, stem in (("dict-gcide", "gcide"), ("dict-foldoc", "foldoc"), ("dict-jargon", "jargon")):
        base = fetched[name].root / "usr/share/dictd"
        entries = (text for _word, text in iter_dictd_entries(base / f"{stem}.index", base / f"{stem}.dict.dz"))
        for group in group_entries(entries, ENTRY_GROUP_CHARS):
            yield Document(group, name)
    base = fetched["wordnet-base"].root / "usr/share/wordnet"
    for pos in ("noun", "verb", "adj", "adv"):
        for group in group_entries(wordnet_entries(base / f"data.{pos}"), ENTRY_GROUP_CHARS, sep="\n"):
            yield Document(group, "wordnet-base")

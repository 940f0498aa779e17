"""Legal: the full texts of ~2000 software licences and exceptions from ScanCode's licence database."""

from __future__ import annotations

from typing import Iterator

from ..documents import Document
from ..formats import read_text, split_front_matter
from ..sources import pypi

DESCRIPTION = "software licence texts (ScanCode licensedcode data)"
EXTRACTOR_VERSION = 1
PACKAGES = (pypi("licensedcode-data", "32.1.0", "CC-BY-4.0", kind="wheel"),)


def licence_text(raw: str) -> str:
    """A ``.LICENSE`` file's text without its YAML front matter."""
    return split_front_matter(raw)[1].strip()


def extract(fetched) -> Iterator[Document]:
    for path in sorted(fetched["licensedcode-data"].root.glob("licensedcode/data/licenses/*.LICENSE")):
        text = licence_text(read_text(path))
        if text:
            yield Document(text, "licensedcode-data")

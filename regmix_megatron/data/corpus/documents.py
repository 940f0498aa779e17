"""Documents: cleaning, chunking at paragraph boundaries, grouping short entries, deterministic splits.

A document's split depends only on its text: ``u = sha256(text)`` read as a fraction in [0, 1);
``u < valid_fraction`` -> valid, ``u < valid_fraction + test_fraction`` -> test, else train. The same text
lands in the same split whatever else is in the corpus, so capping a domain or adding a source never moves a
document between splits.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Iterable, Iterator


_PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n")
_OVERSTRIKE = re.compile(r"[^\x08\n]\x08")  # "_\bU" / "U\bU" (underline/bold in fortunes, old man output)
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f]")  # C0 controls except \t \n \f \r

#: bump when clean_text/chunk_text change what they output (part of every domain's settings hash)
CLEANING_VERSION = 2


@dataclass(frozen=True)
class Document:
    """One document: its text and the package it came from (``source`` is the package name)."""

    text: str
    source: str

    @property
    def num_bytes(self) -> int:
        return len(self.text.encode("utf-8"))


def clean_text(text: str) -> str:
    """Normalise newlines, resolve backspace overstrikes, drop other control characters (form feeds stay:
    they are page breaks in source code), drop trailing spaces, squeeze runs of 3+ blank lines, strip the ends."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = _CONTROL.sub("", _OVERSTRIKE.sub("", text))
    text = re.sub(r"[ \t]+\n", "\n", text)
    text = re.sub(r"\n{4,}", "\n\n\n", text)
    return text.strip()


def hash_fraction(text: str) -> float:
    """sha256 of the UTF-8 text, its first 8 bytes read as a fraction in [0, 1)."""
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def assign_split(text: str, valid_fraction: float, test_fraction: float) -> str:
    u = hash_fraction(text)
    if u < valid_fraction:
        return "valid"
    if u < valid_fraction + test_fraction:
        return "test"
    return "train"


def _hard_split(piece: str, max_chars: int) -> Iterator[str]:
    """Split one over-long paragraph: at line ends first, at spaces next, at ``max_chars`` last."""
    if len(piece) <= max_chars:
        yield piece
        return
    lines = piece.split("\n")
    if len(lines) > 1:
        yield from _pack(lines, max_chars, "\n")
        return
    words = piece.split(" ")
    if len(words) > 1:
        yield from _pack(words, max_chars, " ")
        return
    for start in range(0, len(piece), max_chars):
        yield piece[start:start + max_chars]


def _pack(units: list[str], max_chars: int, sep: str) -> Iterator[str]:
    buf: list[str] = []
    size = 0
    for unit in units:
        if len(unit) > max_chars:
            if buf:
                yield sep.join(buf)
                buf, size = [], 0
            yield from _hard_split(unit, max_chars)
            continue
        added = len(unit) + (len(sep) if buf else 0)
        if buf and size + added > max_chars:
            yield sep.join(buf)
            buf, size = [], 0
            added = len(unit)
        buf.append(unit)
        size += added
    if buf:
        yield sep.join(buf)


def chunk_text(text: str, max_chars: int) -> list[str]:
    """Cut ``text`` into chunks of at most ``max_chars`` characters at paragraph boundaries (blank lines).

    Paragraphs are packed greedily in order; a single paragraph longer than ``max_chars`` is cut at line
    ends, then spaces, then hard. Joining the chunks with ``"\\n\\n"`` gives back the text with each
    paragraph break normalised to one blank line.
    """
    if max_chars <= 0:
        raise ValueError(f"max_chars must be > 0, got {max_chars}")
    paragraphs = [p for p in _PARAGRAPH_BREAK.split(text) if p.strip()]
    return [c for c in _pack(paragraphs, max_chars, "\n\n") if c.strip()]


def group_entries(entries: Iterable[str], target_chars: int, sep: str = "\n\n") -> Iterator[str]:
    """Pack consecutive short entries (dictionary entries, changelog entries) into documents of about
    ``target_chars`` characters, never splitting an entry (an over-long entry becomes its own document)."""
    buf: list[str] = []
    size = 0
    for entry in entries:
        entry = entry.strip()
        if not entry:
            continue
        if buf and size + len(entry) + len(sep) > target_chars:
            yield sep.join(buf)
            buf, size = [], 0
        buf.append(entry)
        size += len(entry) + len(sep)
    if buf:
        yield sep.join(buf)

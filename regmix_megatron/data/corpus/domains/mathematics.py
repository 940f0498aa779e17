"""Mathematics: the Metamath set.mm database with proofs stripped, the Maxima manual and SymPy's docs."""

from __future__ import annotations

from typing import Iterator

from ..documents import Document
from ..formats import html_to_text, read_text, strip_metamath_proofs
from ..sources import debian

DESCRIPTION = "formal and computational mathematics: Metamath set.mm, Maxima and SymPy manuals"
EXTRACTOR_VERSION = 2
PACKAGES = (
    debian("metamath-databases", "0.0.0~20210101.git55fe226-2", "CC0-1.0 (set.mm)"),
    debian("maxima-doc", "5.46.0-11", "GPL-2+"),
    debian("python-sympy-doc", "1.11.1-1", "BSD-3-Clause"),
)


def extract(fetched) -> Iterator[Document]:
    setmm = fetched["metamath-databases"].root / "usr/share/metamath/databases/set.mm"
    yield Document(strip_metamath_proofs(read_text(setmm)), "metamath-databases")
    for path in sorted((fetched["maxima-doc"].root / "usr/share/doc/maxima-doc/html").glob("*.html")):
        if path.stem.endswith(("_toc", "_abt", "_ovr", "_fot")) or path.stem == "index":
            continue
        yield Document(html_to_text(read_text(path)), "maxima-doc")
    sympy = fetched["python-sympy-doc"].root / "usr/share/doc/python-sympy-doc/html"
    for path in sorted(sympy.rglob("*.html")):
        if path.is_symlink() or "_modules" in path.parts or path.name in ("genindex.html", "search.html",
                                                                            "py-modindex.html"):
            continue
        text = html_to_text(read_text(path), keep_tag="article")
        if text:
            yield Document(text, "python-sympy-doc")

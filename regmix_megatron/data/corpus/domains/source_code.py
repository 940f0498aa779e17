"""Code: the CPython 3.11 standard library and its test suite (one ``.py`` file per document)."""

from __future__ import annotations

from typing import Iterator

from ..documents import Document
from ..sources import debian

DESCRIPTION = "Python source code (CPython 3.11 standard library and tests)"
EXTRACTOR_VERSION = 1
PACKAGES = (
    debian("libpython3.11-stdlib", "3.11.2-6+deb12u8", "PSF-2.0"),
    debian("libpython3.11-minimal", "3.11.2-6+deb12u8", "PSF-2.0"),
    debian("libpython3.11-testsuite", "3.11.2-6+deb12u8", "PSF-2.0"),
)


def extract(fetched) -> Iterator[Document]:
    for package in ("libpython3.11-minimal", "libpython3.11-stdlib", "libpython3.11-testsuite"):
        base = fetched[package].root / "usr/lib/python3.11"
        for path in sorted(base.rglob("*.py")):
            if path.is_symlink() or "site-packages" in path.parts or "dist-packages" in path.parts:
                continue
            try:
                text = path.read_bytes().decode("utf-8")
            except UnicodeDecodeError:
                continue  # deliberately mis-encoded test inputs
            yield Document(text, package)

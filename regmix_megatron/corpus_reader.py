"""Reading a corpus directory: ``<corpus>/<domain>/<split>.jsonl``, one JSON object a line (``{"text": ...}``).

A line may also name the document's source (``{"text": ..., "source": "perl-doc"}``: the package or file it came
from; written for evaluation-only and user-added domains); readers use the text key, and preprocessing records
the sources in ``domains.json`` (:func:`line_source`).

Used by the tokenizer trainer (a domain-balanced sample of the text) and by preprocessing (every document).
Bad lines raise :class:`~regmix_megatron.errors.DataError` naming file, line and fix (or are skipped and counted
with ``skip_bad``).

Pure core: the standard library.
"""

from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path
from typing import Iterator, Sequence

from .errors import DataError, RegmixError
from .manifest import SPLITS

logger = logging.getLogger(__name__)

_DOMAIN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_SKIP_FIX = "fix or remove the line, or pass --skip-bad to skip such lines and count them"


#: the optional key of a corpus line naming its document's source
SOURCE_KEY = "source"


def is_domain_name(name: str) -> bool:
    """Whether ``name`` can name a domain (its directory): letters, digits, ``_``, ``.``, ``-``."""
    return bool(_DOMAIN_NAME.match(name))


def parse_line(raw: bytes, path: str, line_no: int, json_keys: Sequence[str] = ("text",),
               allow_lists: bool = False) -> dict[str, str]:
    """One JSONL line -> ``{key: text}``; :class:`DataError` naming ``path:line`` and the fix otherwise.
    ``allow_lists``: a value may also be a list of strings (a document split into sentences, Megatron-LM's
    form after its sentence splitting)."""
    return parse_record(raw, path, line_no, json_keys, allow_lists)[0]


def line_source(obj: dict) -> str | None:
    """The source a parsed line names (a non-empty string under :data:`SOURCE_KEY`), else None."""
    value = obj.get(SOURCE_KEY)
    return value if isinstance(value, str) and value else None


def parse_record(raw: bytes, path: str, line_no: int, json_keys: Sequence[str] = ("text",),
                 allow_lists: bool = False) -> tuple[dict[str, str], str | None]:
    """:func:`parse_line` and the line's source (:func:`line_source`; None when it names none)."""
    try:
        line = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}:{line_no}: invalid UTF-8 (byte 0x{raw[exc.start]:02x} at column {exc.start + 1}); "
                        f"re-encode the file as UTF-8 (e.g. `iconv -f latin1 -t utf-8`), {_SKIP_FIX}") from None
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}:{line_no}: malformed JSON ({exc.msg} at column {exc.colno}); each line must be "
                        f"one JSON object like {{\"text\": \"...\"}}; {_SKIP_FIX}") from None
    if not isinstance(obj, dict):
        raise DataError(f"{path}:{line_no}: expected a JSON object, got {type(obj).__name__}; {_SKIP_FIX}")
    out = {}
    for key in json_keys:
        if key not in obj:
            raise DataError(f"{path}:{line_no}: no key {key!r} (keys: {sorted(obj)[:10]}); name the text key "
                            f"with --json-keys, or {_SKIP_FIX}")
        value = obj[key]
        if allow_lists and isinstance(value, list) and all(isinstance(v, str) for v in value):
            out[key] = value
            continue
        if not isinstance(value, str):
            raise DataError(f"{path}:{line_no}: {key!r} is {type(value).__name__}, not a string; {_SKIP_FIX}")
        out[key] = value
    return out, line_source(obj)


def iter_lines(path: str | os.PathLike) -> Iterator[tuple[int, bytes]]:
    """``(line_number, raw_bytes)`` for each non-blank line (1-based numbers, newline stripped); ``.gz`` files
    are read through gzip."""
    import gzip

    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rb") as fh:
        for line_no, raw in enumerate(fh, start=1):
            raw = raw.rstrip(b"\r\n")
            if raw.strip():
                yield line_no, raw


def iter_documents(path: str | os.PathLike, json_keys: Sequence[str] = ("text",), skip_bad: bool = False,
                   skipped: list[str] | None = None) -> Iterator[tuple[int, dict[str, str]]]:
    """Parsed documents of one JSONL file; the first bad line raises :class:`DataError`, or with ``skip_bad``
    is skipped (its message appended to ``skipped`` when given)."""
    for line_no, raw in iter_lines(path):
        try:
            doc = parse_line(raw, str(path), line_no, json_keys)
        except DataError as exc:
            if not skip_bad:
                raise
            if skipped is not None:
                skipped.append(str(exc))
            continue
        yield line_no, doc


def discover_corpus(corpus_dir: str | os.PathLike, splits: Sequence[str] = SPLITS,
                    domains: Sequence[str] | None = None) -> dict[str, dict[str, Path]]:
    """``{domain: {split: path}}`` for ``<corpus_dir>/<domain>/<split>.jsonl`` (domains sorted).

    Every domain needs a ``train.jsonl`` (when ``train`` is asked for) with at least one non-blank line.
    """
    corpus_dir = Path(corpus_dir)
    if not corpus_dir.is_dir():
        raise RegmixError(f"--input {corpus_dir}: not a directory; pass a corpus directory holding "
                          "<domain>/<split>.jsonl (build one with `regmix-megatron corpus build`)")
    found: dict[str, dict[str, Path]] = {}
    subdirs = sorted(p for p in corpus_dir.iterdir() if p.is_dir() and not p.name.startswith("."))
    for sub in subdirs:
        if domains is not None and sub.name not in domains:
            continue
        files = {s: sub / f"{s}.jsonl" for s in splits if (sub / f"{s}.jsonl").is_file()}
        others = sorted(p.name for p in sub.glob("*.jsonl") if p.stem not in SPLITS)
        if others:
            logger.warning("%s: ignoring %s (only %s are read)", sub, others, [f"{s}.jsonl" for s in SPLITS])
        if not files:
            raise DataError(f"{sub}: empty domain (no {'/'.join(f'{s}.jsonl' for s in splits)}); add its JSONL "
                            "files or remove the directory")
        if not _DOMAIN_NAME.match(sub.name):
            raise DataError(f"{sub}: domain name {sub.name!r} must be letters, digits, '_', '.', '-'; "
                            "rename the directory")
        found[sub.name] = files
    if domains is not None:
        unknown = sorted(set(domains) - set(found))
        if unknown:
            raise RegmixError(f"--domains: {unknown} not found in {corpus_dir}; known: {[p.name for p in subdirs]}")
        found = {d: found[d] for d in sorted(domains)}
    if not found:
        raise DataError(f"{corpus_dir}: no <domain>/<split>.jsonl files found; build the corpus with "
                        "`regmix-megatron corpus build` or point --input at it")
    for name, files in found.items():
        if "train" in splits and "train" not in files:
            raise DataError(f"{corpus_dir / name}: domain {name!r} has no train.jsonl; add it or remove the "
                            "domain directory")
        for split, path in files.items():
            if next(iter_lines(path), None) is None:
                raise DataError(f"{path}: empty domain split (no documents); add documents or remove the "
                                "file/domain")
    return found

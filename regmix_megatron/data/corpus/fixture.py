"""A small deterministic test fixture cut from a built corpus (whole documents, same layout + manifest).

Within each domain and split, documents are ordered by a salted hash of their text and taken whole while
they fit the split's byte budget, so the fixture is a deterministic function of the corpus, every fixture
document keeps the split it had in the corpus (its text hash decides it), and no document is cut.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from ...errors import DataError
from ...fileio import atomic_write_json
from ..manifest import SPLITS
from . import writer
from .documents import hash_fraction

DEFAULT_BUDGET_BYTES = {"train": 170_000, "valid": 25_000, "test": 25_000}


def pick_documents(texts: Sequence[str], budget_bytes: int, min_documents: int = 1) -> list[str]:
    """Whole documents in salted-hash order while they fit ``budget_bytes`` (at least ``min_documents``,
    smallest ones first if none fits); returned in their original order."""
    order = sorted(range(len(texts)), key=lambda i: hash_fraction("fixture\x00" + texts[i]))
    chosen: list[int] = []
    total = 0
    for i in order:
        size = len(texts[i].encode("utf-8"))
        if total + size <= budget_bytes:
            chosen.append(i)
            total += size
    if len(chosen) < min_documents:
        for i in sorted(range(len(texts)), key=lambda i: (len(texts[i]), i)):
            if i not in chosen:
                chosen.append(i)
            if len(chosen) >= min_documents:
                break
    return [texts[i] for i in sorted(chosen)]


def build_fixture(corpus_dir: Path, out_dir: Path, domains: Sequence[str] | None = None,
                  budget_bytes: dict[str, int] | None = None) -> dict:
    """Write ``out_dir/<domain>/{train,valid,test}.jsonl`` + ``out_dir/manifest.json`` from a built corpus.

    Returns the fixture manifest. Only domains complete in the corpus are used.
    """
    corpus_dir, out_dir = Path(corpus_dir), Path(out_dir)
    budget = {**DEFAULT_BUDGET_BYTES, **(budget_bytes or {})}
    manifest = writer.read_manifest(corpus_dir)
    names = list(domains) if domains else sorted(manifest["domains"])
    if not names:
        raise DataError(f"{corpus_dir}: no built domains in manifest.json; run `regmix-megatron corpus build` first")
    for name in names:
        if not writer.is_domain_complete(corpus_dir, name):
            raise DataError(f"{corpus_dir}: domain {name} is not complete; run `regmix-megatron corpus build "
                            f"--domains {name}` first")
    for name in names:
        entry = manifest["domains"][name]
        texts_by_split = {}
        for split in SPLITS:
            texts = list(writer.iter_texts(writer.split_path(corpus_dir, name, split)))
            texts_by_split[split] = pick_documents(texts, budget[split])
        writer.forget_domain(out_dir, name)
        stats = writer.write_domain_files(out_dir, name, texts_by_split)
        fixture_entry = {
            "description": entry.get("description", ""),
            "sources": [{k: s[k] for k in ("registry", "name", "version", "licence") if k in s}
                        for s in entry["sources"]],
            "splits": stats,
            "num_documents": sum(s["num_documents"] for s in stats.values()),
            "num_bytes": sum(s["num_bytes"] for s in stats.values()),
            "settings": entry["settings"],
            "settings_hash": entry["settings_hash"],
            "fixture_budget_bytes": budget,
        }
        writer.record_domain(out_dir, name, fixture_entry)
    full = writer.read_manifest(out_dir)
    full["fixture_of"] = {"corpus_settings": manifest.get("settings")}
    atomic_write_json(out_dir / writer.MANIFEST_NAME, full)
    return full

"""A small deterministic test fixture cut from a built corpus (whole documents, same layout + manifest).

Within each domain and split, documents are ordered by a salted hash of their text and taken whole while
they fit the split's byte budget, so the fixture is a deterministic function of the corpus, every fixture
document keeps the split it had in the corpus (its text hash decides it), and no document is cut.

An evaluation-only domain (split 49/49/2 by source, its files interleaved by source: ``splits.py``) keeps the
longest prefix of each split file that fits the budget, so its fixture splits stay stratified by source in
file order, and its lines keep their ``source``; its budgets are the training ones swapped (valid and test get
the train budget, train gets an evaluation budget), as its splits swap roles.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from ..errors import DataError
from ..fileio import atomic_write_json
from ..manifest import SPLITS
from . import writer
from .documents import Document, hash_fraction

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


def pick_prefix(documents: Sequence[Document], budget_bytes: int) -> list[Document]:
    """The longest prefix of ``documents`` within ``budget_bytes`` (at least the first document)."""
    out: list[Document] = []
    total = 0
    for doc in documents:
        if out and total + doc.num_bytes > budget_bytes:
            break
        out.append(doc)
        total += doc.num_bytes
    return out


def swapped_budget(budget: dict[str, int]) -> dict[str, int]:
    """An evaluation-only domain's budgets: train's for valid and test, valid's for train."""
    return {"train": budget["valid"], "valid": budget["train"] // 2, "test": budget["train"] // 2}


def pick_split(path: Path, budget_bytes: int, eval_only: bool) -> list[Document]:
    """The fixture's documents of one corpus split file."""
    documents = list(writer.iter_documents(path))
    if eval_only:
        return pick_prefix(documents, budget_bytes)
    texts = pick_documents([d.text for d in documents], budget_bytes)
    return [Document(t, "") for t in texts]


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
        eval_only = bool(entry.get("evaluation_only"))
        domain_budget = swapped_budget(budget) if eval_only else budget
        picked = {split: pick_split(writer.split_path(corpus_dir, name, split), domain_budget[split], eval_only)
                  for split in SPLITS}
        writer.forget_domain(out_dir, name)
        stats = writer.write_domain_files(out_dir, name, picked, with_sources=eval_only)
        fixture_entry = {
            "description": entry.get("description", ""),
            **({"evaluation_only": True} if eval_only else {}),
            "sources": [{k: s[k] for k in ("registry", "name", "version", "licence") if k in s}
                        for s in entry["sources"]],
            "splits": stats,
            "num_documents": sum(s["num_documents"] for s in stats.values()),
            "num_bytes": sum(s["num_bytes"] for s in stats.values()),
            "settings": entry["settings"],
            "settings_hash": entry["settings_hash"],
            "fixture_budget_bytes": domain_budget,
        }
        writer.record_domain(out_dir, name, fixture_entry)
    full = writer.read_manifest(out_dir)
    full["fixture_of"] = {"corpus_settings": manifest.get("settings")}
    atomic_write_json(out_dir / writer.MANIFEST_NAME, full)
    return full

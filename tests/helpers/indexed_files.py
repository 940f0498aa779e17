"""Small valid Megatron ``.bin/.idx`` pairs written without Megatron (the layout of
``regmix_megatron/data/index_files.py``), for tests whose domains.json must point at real, consistent files."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

from regmix_megatron.data.index_files import IDX_MAGIC, TOKEN_BYTES


def write_pair(prefix: str | Path, num_documents: int, num_tokens: int, token_code: int = 8) -> None:
    """``<prefix>.bin`` (``num_tokens`` zero tokens) and ``<prefix>.idx``: one sequence per document, the tokens
    spread over them (uint16 tokens by default, megatron-core's code 8)."""
    prefix = Path(prefix)
    prefix.parent.mkdir(parents=True, exist_ok=True)
    token_bytes = TOKEN_BYTES[token_code]
    lengths = np.full(num_documents, num_tokens // num_documents, dtype=np.int32)
    lengths[: num_tokens % num_documents] += 1
    pointers = np.concatenate([[0], np.cumsum(lengths[:-1], dtype=np.int64) * token_bytes]).astype(np.int64)
    documents = np.arange(num_documents + 1, dtype=np.int64)
    with open(f"{prefix}.idx", "wb") as fh:
        fh.write(IDX_MAGIC + struct.pack("<QBQQ", 1, token_code, num_documents, num_documents + 1))
        fh.write(lengths.tobytes() + pointers.tobytes() + documents.tobytes())
    with open(f"{prefix}.bin", "wb") as fh:  # token 0 everywhere; sparse, so large counts cost no disk
        fh.truncate(num_tokens * token_bytes)


def write_registry_files(domains_json: str | Path) -> None:
    """A real pair for every prefix of a (made-up) domains.json, with the counts it records."""
    import json

    domains_json = Path(domains_json)
    obj = json.loads(domains_json.read_text())
    for d in obj["domains"]:
        for prefixes in d["splits"].values():
            for p in prefixes:
                path = Path(p["prefix"])
                path = path if path.is_absolute() else domains_json.parent / path
                assert p["num_sequences"] == p["num_documents"], p
                write_pair(path, p["num_documents"], p["num_tokens"])

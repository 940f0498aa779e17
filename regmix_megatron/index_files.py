"""Megatron's ``.bin/.idx`` pairs read without Megatron: the ``.idx`` header and the cheap integrity check.

Layout of ``<prefix>.idx`` (megatron-core ``indexed_dataset._IndexWriter``): 9-byte magic ``MMIDIDX\\0\\0``,
``<Q`` version 1, ``<B`` dtype code, ``<Q`` sequence count S, ``<Q`` document count D (the length of the
document index array, one more than the number of documents), then S int32 sequence lengths, S int64 byte
pointers into ``<prefix>.bin`` (each the running sum of the lengths before it, times the token size), D int64
document indices (the first 0, the last S), and for multimodal data S int8 modes.

:func:`check_prefix` reads the 34-byte header and four numbers (the last length, the last pointer, the first and
the last document index) and compares sizes: the ``.idx`` must be exactly as long as its header says, and the
``.bin`` exactly ``last pointer + last length x token size`` bytes (which is the sum of all lengths times the token
size, the pointers being that running sum). Cost per prefix: two ``stat`` calls, one ``open`` and five reads of
at most 34 bytes, whatever the size of the data; no full read. What it cannot see without a full read: lengths
or pointers corrupted in the middle of the ``.idx`` while the sizes still agree, or flipped token bytes.

:func:`verify_registry` checks every prefix of a ``domains.json`` and that the document, sequence and token counts
it records are the ``.idx``'s own, so a truncated ``.bin``, a corrupt ``.idx`` header or an edited count is
refused before anything trains, samples or exports.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from typing import Any

from .errors import DataError

IDX_MAGIC = b"MMIDIDX\x00\x00"
IDX_VERSION = 1
HEADER_BYTES = 34
#: megatron-core's ``DType`` codes -> bytes per token.
TOKEN_BYTES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 8, 7: 4, 8: 2}
#: What to do about a bad pair.
FIX = ("rerun preprocessing for it (`regmix-megatron preprocess --overwrite`, or the pipeline's indexed stage), "
       "or restore the files")


@dataclass(frozen=True)
class IndexCounts:
    """What an ``.idx`` says about its pair."""

    num_documents: int
    num_sequences: int
    num_tokens: int
    token_bytes: int


def _read_at(fh, offset: int, fmt: str) -> int:
    fh.seek(offset)
    size = struct.calcsize(fmt)
    data = fh.read(size)
    if len(data) != size:
        raise EOFError(offset)
    return struct.unpack(fmt, data)[0]


def check_prefix(prefix: str | os.PathLike) -> IndexCounts:
    """The counts of ``<prefix>.idx`` after checking its header and that both files have the sizes it implies;
    a :class:`DataError` naming the file and the fix otherwise."""
    prefix = os.fspath(prefix)
    idx, bin_ = prefix + ".idx", prefix + ".bin"
    for path in (idx, bin_):
        if not os.path.isfile(path):
            what = "is a directory" if os.path.isdir(path) else "is missing"
            raise DataError(f"{path} {what}: every prefix needs its .bin and .idx; {FIX}")
    idx_bytes, bin_bytes = os.path.getsize(idx), os.path.getsize(bin_)
    try:
        with open(idx, "rb") as fh:
            header = fh.read(HEADER_BYTES)
            if len(header) < HEADER_BYTES:
                raise DataError(f"{idx}: {len(header)} bytes, shorter than the {HEADER_BYTES}-byte header of a "
                                f"Megatron index: truncated; {FIX}")
            magic, version, code, num_seq, num_doc_idx = struct.unpack("<9sQBQQ", header)
            if magic != IDX_MAGIC:
                raise DataError(f"{idx}: not a Megatron index (its first bytes are {magic!r}, not {IDX_MAGIC!r}): "
                                f"corrupt or another format; {FIX}")
            if version != IDX_VERSION or code not in TOKEN_BYTES:
                raise DataError(f"{idx}: corrupt header (version {version}, token type code {code}; expected "
                                f"version {IDX_VERSION} and a code in {sorted(TOKEN_BYTES)}); {FIX}")
            _check_idx_size(idx, idx_bytes, num_seq, num_doc_idx)
            token_bytes = TOKEN_BYTES[code]
            return _check_bin(fh, idx, bin_, bin_bytes, num_seq, num_doc_idx, token_bytes)
    except EOFError:
        raise DataError(f"{idx}: shorter than its header says: truncated; {FIX}") from None


def _check_idx_size(idx: str, idx_bytes: int, num_seq: int, num_doc_idx: int) -> None:
    expected = HEADER_BYTES + 12 * num_seq + 8 * num_doc_idx
    if num_doc_idx < 1 or idx_bytes not in (expected, expected + num_seq):  # + one mode byte each if multimodal
        raise DataError(f"{idx}: {idx_bytes} bytes, but its header promises {num_seq} sequences and "
                        f"{num_doc_idx} document indices ({expected} bytes): truncated or corrupt; {FIX}")


def _check_bin(fh, idx: str, bin_: str, bin_bytes: int, num_seq: int, num_doc_idx: int,
               token_bytes: int) -> IndexCounts:
    docs_at = HEADER_BYTES + 12 * num_seq
    first_doc = _read_at(fh, docs_at, "<q")
    last_doc = _read_at(fh, docs_at + 8 * (num_doc_idx - 1), "<q")
    if first_doc != 0 or last_doc != num_seq:
        raise DataError(f"{idx}: document index runs from {first_doc} to {last_doc}, not from 0 to the "
                        f"{num_seq} sequences: corrupt; {FIX}")
    expected_bin = 0
    if num_seq:
        last_length = _read_at(fh, HEADER_BYTES + 4 * (num_seq - 1), "<i")
        last_pointer = _read_at(fh, HEADER_BYTES + 4 * num_seq + 8 * (num_seq - 1), "<q")
        if last_length < 0 or last_pointer < 0 or last_pointer % token_bytes:
            raise DataError(f"{idx}: corrupt sequence table (last length {last_length}, last pointer "
                            f"{last_pointer}); {FIX}")
        expected_bin = last_pointer + last_length * token_bytes
    if bin_bytes != expected_bin:
        how = "truncated" if bin_bytes < expected_bin else "longer than its index"
        raise DataError(f"{bin_}: {bin_bytes} bytes, but {os.path.basename(idx)} indexes {expected_bin} bytes "
                        f"({expected_bin // token_bytes} tokens of {token_bytes} bytes): the .bin is {how}, or "
                        f"the two files do not belong together; {FIX}")
    return IndexCounts(num_documents=num_doc_idx - 1, num_sequences=num_seq,
                       num_tokens=expected_bin // token_bytes, token_bytes=token_bytes)


def verify_registry(registry: Any, max_shown: int = 3) -> int:
    """Check every prefix of a :class:`~regmix_megatron.manifest.DomainRegistry` (:func:`check_prefix`) and
    that its recorded counts are the ``.idx``'s; returns the number of prefixes checked. Raises one
    :class:`DataError` listing the problems (up to ``max_shown``)."""
    where = registry.path or "domains.json"
    problems: list[str] = []
    num_checked = 0
    for domain in registry.domains:
        for split, prefixes in sorted(domain.splits.items()):
            for p in prefixes:
                num_checked += 1
                try:
                    counts = check_prefix(p.path)
                except DataError as exc:
                    problems.append(str(exc))
                    continue
                recorded = (p.num_documents, p.num_sequences, p.num_tokens)
                actual = (counts.num_documents, counts.num_sequences, counts.num_tokens)
                if recorded != actual:
                    problems.append(
                        f"{where}: domain {domain.name!r} {split} prefix {p.path} records (documents, sequences, "
                        f"tokens) = {recorded}, but its .idx holds {actual}: domains.json was edited or the data "
                        "was replaced; regenerate domains.json with `regmix-megatron preprocess` (or the "
                        "pipeline's indexed stage)")
    if problems:
        more = f" (and {len(problems) - max_shown} more)" if len(problems) > max_shown else ""
        raise DataError(f"{where}: {len(problems)} of {num_checked} indexed datasets fail the integrity check"
                        f"{more}: " + " | ".join(problems[:max_shown]))
    return num_checked

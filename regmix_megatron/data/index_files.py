"""Megatron's ``.bin/.idx`` pairs read without Megatron: the ``.idx`` format, a cheap integrity check and exact counts.

Layout of ``<prefix>.idx`` (megatron-core 0.16.1 ``indexed_dataset._IndexWriter``): 9-byte magic ``MMIDIDX\\0\\0``,
``<Q`` version 1, ``<B`` dtype code, ``<Q`` sequence count S, ``<Q`` document count D (the length of the
document index array, one more than the number of documents), then S int32 sequence lengths, S int64 byte
pointers into ``<prefix>.bin`` (each the running sum of the lengths before it, times the token size), D int64
document indices (the first 0, the last S), and for multimodal data S int8 modes.

Two readers share the header parsing (:func:`_read_header`) and the dtype table (:data:`DTYPES`):

- :func:`check_prefix` reads the 34-byte header and four numbers (the last length, the last pointer, the first and
  the last document index) and compares sizes: the ``.idx`` must be exactly as long as its header says, and the
  ``.bin`` exactly ``last pointer + last length x token size`` bytes (which is the sum of all lengths times the
  token size, the pointers being that running sum). Cost per prefix: two ``stat`` calls, one ``open`` and five
  reads of at most 34 bytes, whatever the size of the data; no full read. What it cannot see without a full read:
  lengths or pointers corrupted in the middle of the ``.idx`` while the sizes still agree, or flipped token bytes.
- :func:`check_pointers` reads the tables once (O(sequences), in chunks; once per file and process): every
  pointer must be the running sum of the lengths before it, every length >= 0, the document indices from 0 to S
  without decreasing, so a byte flipped in the middle of the ``.idx`` is refused.
- :func:`verify_registry` checks every prefix of a ``domains.json`` (the cheap check, and with ``full`` the
  pointers: before training and in the dataset provider) and that the document, sequence and token counts it
  records are the ``.idx``'s own, so a truncated ``.bin``, a corrupt ``.idx`` or an edited count is refused
  before anything trains, samples or exports.
- :func:`read_index` checks the pointers and reads the lengths and document arrays: exact counts, and that the
  ``.bin`` holds exactly ``sum(lengths)`` tokens of that dtype; :func:`last_tokens` and :func:`max_token_id` look at the tokens. Used by
  ``domains import`` (existing prefixes, any tokenizer) and by preprocessing to read back what it wrote.

Pure core: numpy and the standard library.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from ..errors import DataError

IDX_MAGIC = b"MMIDIDX\x00\x00"
IDX_VERSION = 1
HEADER_BYTES = 34
#: megatron-core's ``DType`` codes -> numpy token types.
DTYPES = {1: np.uint8, 2: np.int8, 3: np.int16, 4: np.int32, 5: np.int64, 6: np.float64, 7: np.float32,
          8: np.uint16}
#: megatron-core's ``DType`` codes -> bytes per token.
TOKEN_BYTES = {code: np.dtype(t).itemsize for code, t in DTYPES.items()}
UINT16_VOCAB_LIMIT = 65500
"""Below this vocabulary size Megatron stores token ids as uint16 (``DType.optimal_dtype``), else int32."""
#: What to do about a bad pair.
FIX = ("rerun preprocessing for it (`regmix-megatron preprocess --overwrite`, or the pipeline's indexed stage), "
       "or restore the files")
#: What to do about a prefix a user typed that names no pair.
PREFIX_FIX = "give the prefix of a .bin/.idx pair (the path without the extension)"


def token_dtype(vocab_size: int) -> type:
    """The dtype Megatron-LM's preprocessing writes for a vocabulary of ``vocab_size``."""
    return np.uint16 if vocab_size < UINT16_VOCAB_LIMIT else np.int32


@dataclass(frozen=True)
class IndexCounts:
    """What an ``.idx`` says about its pair."""

    num_documents: int
    num_sequences: int
    num_tokens: int
    """Sum of the sequence lengths in the ``.idx``."""
    dtype: str
    """The numpy name of the token type (``uint16``, ``int32``, ...)."""

    @property
    def token_bytes(self) -> int:
        return np.dtype(self.dtype).itemsize


class _Header(NamedTuple):
    code: int
    num_sequences: int
    num_doc_indices: int
    """One more than the number of documents."""

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(DTYPES[self.code])


# ---- the format -------------------------------------------------------------------------------------------
def _pair_paths(prefix: str, fix: str) -> tuple[str, str]:
    """``(<prefix>.idx, <prefix>.bin)`` once both are files; a :class:`DataError` naming the one that is not."""
    idx, bin_ = prefix + ".idx", prefix + ".bin"
    for path in (idx, bin_):
        if os.path.isdir(path):
            raise DataError(f"{path} is a directory: every prefix names a .bin and an .idx file; {fix}")
        if not os.path.isfile(path):
            ext = os.path.splitext(path)[1]
            raise DataError(f"{path}: missing (every prefix names a .bin and an .idx file; this {ext} is missing); "
                            f"{fix}")
    return idx, bin_


def _read_header(fh, idx: str) -> _Header:
    """The 34-byte header of an open ``.idx``, checked (magic, version, dtype code, and the file's size)."""
    header = fh.read(HEADER_BYTES)
    if len(header) < HEADER_BYTES:
        raise DataError(f"{idx}: {len(header)} bytes, shorter than the {HEADER_BYTES}-byte header of a "
                        f"Megatron index: truncated; {FIX}")
    magic, version, code, num_seq, num_doc_idx = struct.unpack("<9sQBQQ", header)
    if magic != IDX_MAGIC:
        raise DataError(f"{idx}: not a Megatron index (its first bytes are {magic!r}, not {IDX_MAGIC!r}): "
                        f"corrupt or another format; {FIX}")
    if version != IDX_VERSION or code not in DTYPES:
        raise DataError(f"{idx}: corrupt header (version {version}, token type code {code}; expected "
                        f"version {IDX_VERSION} and a code in {sorted(DTYPES)}); {FIX}")
    expected = HEADER_BYTES + 12 * num_seq + 8 * num_doc_idx
    idx_bytes = os.fstat(fh.fileno()).st_size
    if num_doc_idx < 1 or idx_bytes not in (expected, expected + num_seq):  # + one mode byte each if multimodal
        raise DataError(f"{idx}: {idx_bytes} bytes, but its header promises {num_seq} sequences and "
                        f"{num_doc_idx} document indices ({expected} bytes): truncated or corrupt; {FIX}")
    return _Header(code, num_seq, num_doc_idx)


def _read_tables(fh, header: _Header) -> tuple[np.ndarray, np.ndarray]:
    """The sequence lengths (int64) and document indices of an ``.idx`` whose header was just read."""
    fh.seek(HEADER_BYTES)
    lengths = np.fromfile(fh, dtype=np.int32, count=header.num_sequences).astype(np.int64)
    fh.seek(8 * header.num_sequences, os.SEEK_CUR)  # the pointers
    doc_index = np.fromfile(fh, dtype=np.int64, count=header.num_doc_indices)
    return lengths, doc_index


# ---- the cheap check -------------------------------------------------------------------------------------
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
    idx, bin_ = _pair_paths(os.fspath(prefix), FIX)
    bin_bytes = os.path.getsize(bin_)
    try:
        with open(idx, "rb") as fh:
            return _check_bin(fh, idx, bin_, bin_bytes, _read_header(fh, idx))
    except EOFError:
        raise DataError(f"{idx}: shorter than its header says: truncated; {FIX}") from None


def _check_bin(fh, idx: str, bin_: str, bin_bytes: int, header: _Header) -> IndexCounts:
    num_seq, num_doc_idx, token_bytes = header.num_sequences, header.num_doc_indices, header.dtype.itemsize
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
                       num_tokens=expected_bin // token_bytes, dtype=header.dtype.name)


# ---- the full check: every pointer -------------------------------------------------------------------------
#: Sequences checked per chunk by :func:`check_pointers` (bounds its memory: ~12 bytes a sequence, twice).
POINTER_CHUNK = 1 << 22
#: ``.idx`` files whose pointers this process checked, by identity (path, inode, size, mtime): each once.
_POINTERS_CHECKED: set[tuple] = set()


def check_pointers(prefix: str | os.PathLike) -> None:
    """Check every entry of ``<prefix>.idx`` against the others: lengths >= 0, each pointer the running sum of the
    lengths before it times the token size, document indices from 0 to the sequence count and never decreasing.
    A byte flipped anywhere in those tables fails one of these (the header and sizes are :func:`check_prefix`'s).
    Cost: one read of the tables, O(sequences), in chunks of :data:`POINTER_CHUNK`; done once per file and process
    (by path, inode, size and modification time)."""
    idx, _ = _pair_paths(os.fspath(prefix), FIX)
    st = os.stat(idx)
    key = (os.path.realpath(idx), st.st_ino, st.st_size, st.st_mtime_ns)
    if key in _POINTERS_CHECKED:
        return
    with open(idx, "rb") as fh:
        header = _read_header(fh, idx)
    num_seq, token_bytes = header.num_sequences, header.dtype.itemsize
    if num_seq:
        lengths = np.memmap(idx, dtype=np.int32, mode="r", offset=HEADER_BYTES, shape=(num_seq,))
        pointers = np.memmap(idx, dtype=np.int64, mode="r", offset=HEADER_BYTES + 4 * num_seq, shape=(num_seq,))
        at = 0  # the byte offset of the next sequence
        for start in range(0, num_seq, POINTER_CHUNK):
            chunk = lengths[start:start + POINTER_CHUNK].astype(np.int64)
            if np.any(chunk < 0):
                i = start + int(np.argmax(chunk < 0))
                raise DataError(f"{idx}: sequence {i} has length {int(lengths[i])} < 0: corrupt; {FIX}")
            ends = at + np.cumsum(chunk) * token_bytes
            expected = np.concatenate(([at], ends[:-1]))
            wrong = np.flatnonzero(np.asarray(pointers[start:start + POINTER_CHUNK]) != expected)
            if wrong.size:
                i = start + int(wrong[0])
                raise DataError(f"{idx}: the pointer of sequence {i} is {int(pointers[i])}, but the lengths before "
                                f"it put it at byte {int(expected[wrong[0]])}: the index is corrupt (a changed "
                                f"length or pointer); {FIX}")
            at = int(ends[-1])
        del lengths, pointers
    docs = np.memmap(idx, dtype=np.int64, mode="r", offset=HEADER_BYTES + 12 * num_seq,
                     shape=(header.num_doc_indices,))
    if docs[0] != 0 or docs[-1] != num_seq or np.any(np.diff(docs) < 0):
        raise DataError(f"{idx}: document indices do not run from 0 to the {num_seq} sequences without "
                        f"decreasing: corrupt; {FIX}")
    del docs
    _POINTERS_CHECKED.add(key)


def verify_registry(registry: Any, max_shown: int = 3, full: bool = True) -> int:
    """Check every prefix of a :class:`~regmix_megatron.data.manifest.DomainRegistry` (:func:`check_prefix`; with
    ``full`` also :func:`check_pointers`, once per prefix) and that its recorded counts are the ``.idx``'s;
    returns the number of prefixes checked. Raises one :class:`DataError` listing the problems (up to
    ``max_shown``)."""
    where = registry.path or "domains.json"
    problems: list[str] = []
    num_checked = 0
    for domain in registry.domains:
        for split, prefixes in sorted(domain.splits.items()):
            for p in prefixes:
                num_checked += 1
                try:
                    counts = check_prefix(p.path)
                    if full:
                        check_pointers(p.path)
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


# ---- exact counts and tokens ----------------------------------------------------------------------------
def read_index(prefix: str | os.PathLike) -> IndexCounts:
    """Exact counts of ``<prefix>.idx`` (its lengths and document arrays read), checked against the size of
    ``<prefix>.bin``."""
    prefix = os.fspath(prefix)
    if os.path.isdir(prefix) and not os.path.isfile(prefix + ".idx"):  # megatron-core's cache is <prefix>/cache
        inside = sorted(p[:-4] for p in os.listdir(prefix) if p.endswith(".idx"))[:3]
        raise DataError(f"{prefix} is a directory: give the prefix of a .bin/.idx pair (the path without the "
                        "extension)" + (f", e.g. {os.path.join(prefix, inside[0])}" if inside else ""))
    idx, bin_ = _pair_paths(prefix, PREFIX_FIX)
    check_pointers(prefix)  # the tables are whole: a flipped byte inside them is refused here
    with open(idx, "rb") as fh:
        header = _read_header(fh, idx)
        lengths, doc_index = _read_tables(fh, header)
    num_sequences = header.num_sequences
    if doc_index[0] != 0 or doc_index[-1] != num_sequences or np.any(np.diff(doc_index) < 0):
        raise DataError(f"{idx}: document indices are inconsistent with its {num_sequences} sequences; {FIX}")
    dtype = header.dtype
    num_tokens = int(lengths.sum())
    size = os.path.getsize(bin_)
    if num_tokens * dtype.itemsize != size:
        raise DataError(f"{prefix}: .idx counts {num_tokens} tokens of {dtype.name} but .bin holds {size} bytes; "
                        "the pair is inconsistent, rerun preprocessing with --overwrite")
    return IndexCounts(num_documents=int(header.num_doc_indices - 1), num_sequences=int(num_sequences),
                       num_tokens=num_tokens, dtype=dtype.name)


def last_tokens(prefix: str | os.PathLike, dtype: str, max_documents: int = 100) -> list[int]:
    """The last token of each of the first ``max_documents`` non-empty documents (to see whether EOD ends them)."""
    idx = os.fspath(prefix) + ".idx"
    with open(idx, "rb") as fh:
        lengths, doc_index = _read_tables(fh, _read_header(fh, idx))
    ends = np.cumsum(lengths)  # token offset just past each sequence
    data = np.memmap(os.fspath(prefix) + ".bin", dtype=np.dtype(dtype), mode="r")
    out = []
    for d in range(min(max_documents, len(doc_index) - 1)):
        last_sequence = doc_index[d + 1] - 1
        if last_sequence >= doc_index[d] and ends[last_sequence] > 0:
            out.append(int(data[ends[last_sequence] - 1]))
    return out


def max_token_id(prefix: str | os.PathLike, dtype: str, max_tokens: int | None = None) -> int:
    """The largest token id in ``<prefix>.bin`` (its first ``max_tokens`` tokens when given); -1 if empty."""
    data = np.memmap(os.fspath(prefix) + ".bin", dtype=np.dtype(dtype), mode="r")
    if max_tokens is not None:
        data = data[:max_tokens]
    return int(data.max()) if data.size else -1

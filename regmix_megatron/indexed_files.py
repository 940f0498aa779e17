"""Megatron indexed datasets read without megatron: the ``.idx`` header and exact counts of a ``.bin/.idx`` pair.

The ``.idx`` layout megatron-core 0.16.1 writes (``indexed_dataset._IndexWriter``): the 9-byte magic
``MMIDIDX\\x00\\x00``, version (uint64, 1), token dtype code (uint8), sequence count (uint64), document count
(uint64), then int32 sequence lengths, int64 sequence pointers, int64 document indices. :func:`read_index`
checks each part and that the ``.bin`` holds exactly ``sum(lengths)`` tokens of that dtype; :func:`max_token_id`
scans (a prefix of) the ``.bin``. Used by ``domains import`` (existing prefixes, any tokenizer) and by
preprocessing to read back what it wrote.

Pure core: numpy and the standard library.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass

import numpy as np

from .errors import DataError

MAGIC = b"MMIDIDX\x00\x00"
#: megatron-core's ``DType`` codes.
DTYPES = {1: np.uint8, 2: np.int8, 3: np.int16, 4: np.int32, 5: np.int64, 6: np.float64, 7: np.float32,
          8: np.uint16}
UINT16_VOCAB_LIMIT = 65500
"""Below this vocabulary size Megatron stores token ids as uint16 (``DType.optimal_dtype``), else int32."""


def token_dtype(vocab_size: int) -> type:
    """The dtype Megatron-LM's preprocessing writes for a vocabulary of ``vocab_size``."""
    return np.uint16 if vocab_size < UINT16_VOCAB_LIMIT else np.int32


@dataclass(frozen=True)
class IndexCounts:
    num_documents: int
    num_sequences: int
    num_tokens: int
    """Sum of the sequence lengths in the ``.idx``."""
    dtype: str


def read_index(prefix: str | os.PathLike) -> IndexCounts:
    """Exact counts of ``<prefix>.idx``, checked against the size of ``<prefix>.bin``."""
    prefix = str(prefix)
    idx, bin_ = prefix + ".idx", prefix + ".bin"
    if os.path.isdir(prefix) and not os.path.isfile(idx):  # megatron-core keeps its index cache in <prefix>/cache
        inside = sorted(p[:-4] for p in os.listdir(prefix) if p.endswith(".idx"))[:3]
        raise DataError(f"{prefix} is a directory: give the prefix of a .bin/.idx pair (the path without the "
                        "extension)" + (f", e.g. {os.path.join(prefix, inside[0])}" if inside else ""))
    for path in (idx, bin_):
        if os.path.isdir(path):
            raise DataError(f"{path} is a directory; give the prefix of a .bin/.idx pair (the path without the "
                            "extension)")
        if not os.path.isfile(path):
            raise DataError(f"{path}: missing; a Megatron dataset prefix names a .bin and an .idx file "
                            "(give the path without the extension)")
    with open(idx, "rb") as fh:
        head = fh.read(9 + 8 + 1 + 8 + 8)
        if len(head) < 34 or head[:9] != MAGIC:
            raise DataError(f"{idx}: not a Megatron index (no MMIDIDX header); rerun preprocessing for this prefix")
        version, code, num_sequences, num_docs_plus_one = struct.unpack("<QBQQ", head[9:])
        if version != 1 or code not in DTYPES:
            raise DataError(f"{idx}: unsupported index version {version} or dtype code {code}")
        lengths = np.fromfile(fh, dtype=np.int32, count=num_sequences)
        fh.seek(8 * num_sequences, os.SEEK_CUR)
        doc_index = np.fromfile(fh, dtype=np.int64, count=num_docs_plus_one)
    if len(lengths) != num_sequences or len(doc_index) != num_docs_plus_one or num_docs_plus_one < 1:
        raise DataError(f"{idx}: truncated (the header promises {num_sequences} sequences); rerun preprocessing")
    if doc_index[0] != 0 or doc_index[-1] != num_sequences or np.any(np.diff(doc_index) < 0):
        raise DataError(f"{idx}: document indices are inconsistent with its {num_sequences} sequences")
    dtype = np.dtype(DTYPES[code])
    num_tokens = int(lengths.astype(np.int64).sum())
    size = os.path.getsize(bin_)
    if num_tokens * dtype.itemsize != size:
        raise DataError(f"{prefix}: .idx counts {num_tokens} tokens of {dtype.name} but .bin holds {size} bytes; "
                        "the pair is inconsistent, rerun preprocessing with --overwrite")
    return IndexCounts(num_documents=int(num_docs_plus_one - 1), num_sequences=int(num_sequences),
                       num_tokens=num_tokens, dtype=dtype.name)


def last_tokens(prefix: str | os.PathLike, dtype: str, max_documents: int = 100) -> list[int]:
    """The last token of each of the first ``max_documents`` non-empty documents (to see whether EOD ends them)."""
    idx = str(prefix) + ".idx"
    with open(idx, "rb") as fh:
        _, _, num_sequences, num_docs_plus_one = struct.unpack("<QBQQ", fh.read(34)[9:])
        lengths = np.fromfile(fh, dtype=np.int32, count=num_sequences).astype(np.int64)
        fh.seek(8 * num_sequences, os.SEEK_CUR)
        doc_index = np.fromfile(fh, dtype=np.int64, count=num_docs_plus_one)
    ends = np.cumsum(lengths)  # token offset just past each sequence
    data = np.memmap(str(prefix) + ".bin", dtype=np.dtype(dtype), mode="r")
    out = []
    for d in range(min(max_documents, len(doc_index) - 1)):
        last_sequence = doc_index[d + 1] - 1
        if last_sequence >= doc_index[d] and ends[last_sequence] > 0:
            out.append(int(data[ends[last_sequence] - 1]))
    return out


def max_token_id(prefix: str | os.PathLike, dtype: str, max_tokens: int | None = None) -> int:
    """The largest token id in ``<prefix>.bin`` (its first ``max_tokens`` tokens when given); -1 if empty."""
    data = np.memmap(str(prefix) + ".bin", dtype=np.dtype(dtype), mode="r")
    if max_tokens is not None:
        data = data[:max_tokens]
    return int(data.max()) if data.size else -1

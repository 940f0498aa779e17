"""Megatron indexed datasets: write with megatron-core's ``IndexedDatasetBuilder``, read with ``IndexedDataset``.

A dataset ``<prefix>`` is the pair ``<prefix>.bin`` (token ids) + ``<prefix>.idx`` (sequence lengths, pointers,
document indices). :class:`IndexedWriter` writes both under a temporary prefix ``<dir>/.tmp-<name>-<rand>``,
validates the pair by reading it back with ``IndexedDataset``, then renames the ``.bin`` and finally the
``.idx``: a pair without its ``.idx`` does not look complete (Megatron cannot open it).
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
from pathlib import Path

import numpy as np
from megatron.core.datasets.indexed_dataset import IndexedDataset, IndexedDatasetBuilder

from ..data.index_files import IndexCounts, read_index, token_dtype
from ..errors import DataError, RegmixError

__all__ = ["IndexCounts", "IndexedWriter", "check_prefix_free", "read_counts", "token_dtype"]


def check_prefix_free(prefix: str | os.PathLike, overwrite: bool) -> None:
    """Refuse to write over an existing ``<prefix>.bin``/``.idx`` unless ``overwrite``."""
    existing = [p for p in (f"{prefix}.bin", f"{prefix}.idx") if os.path.exists(p)]
    if existing and not overwrite:
        raise RegmixError(f"output prefix {prefix} exists ({', '.join(existing)}); pass --overwrite to replace "
                          "it, or choose another --output-prefix/--output-dir")


def read_counts(prefix: str | os.PathLike) -> IndexCounts:
    """Counts of a written pair: parsed by :func:`regmix_megatron.data.index_files.read_index`, and the pair opened
    with megatron-core's ``IndexedDataset`` (mmap) so that what Megatron cannot read is refused here."""
    counts = read_index(prefix)
    try:
        with _quiet("megatron.core.datasets.indexed_dataset"):
            ds = IndexedDataset(str(prefix))
    except Exception as exc:  # megatron asserts on a bad magic/version
        raise DataError(f"{prefix}.idx: not a Megatron index ({type(exc).__name__}: {exc}); rerun "
                        "preprocessing with --overwrite") from None
    same = (len(ds.sequence_lengths), len(ds.document_indices) - 1) == (counts.num_sequences, counts.num_documents)
    del ds
    if not same:
        raise DataError(f"{prefix}.idx: megatron-core reads other counts than its header; rerun preprocessing")
    return counts


@contextlib.contextmanager
def _quiet(logger_name: str):
    """megatron-core logs five INFO lines per opened index; keep them out of our logs."""
    log = logging.getLogger(logger_name)
    level = log.level
    log.setLevel(max(level, logging.WARNING))
    try:
        yield
    finally:
        log.setLevel(level)


class IndexedWriter:
    """Append documents; :meth:`commit` makes ``<prefix>.{bin,idx}`` appear, :meth:`discard` cleans up."""

    def __init__(self, prefix: str | os.PathLike, vocab_size: int) -> None:
        self.prefix = str(prefix)
        directory = Path(self.prefix).parent
        directory.mkdir(parents=True, exist_ok=True)
        self.tmp_prefix = str(directory / f".tmp-{Path(self.prefix).name}-{secrets.token_hex(4)}")
        self.dtype = token_dtype(vocab_size)
        self.vocab_size = vocab_size
        self.num_documents = 0
        self._builder = IndexedDatasetBuilder(self.tmp_prefix + ".bin", dtype=self.dtype)
        self._done = False

    def add_document(self, tokens: np.ndarray, lengths: np.ndarray) -> None:
        """One document: ``tokens`` (all sequences concatenated) and the length of each sequence."""
        tokens = np.asarray(tokens)
        if tokens.size and (tokens.min() < 0 or tokens.max() >= self.vocab_size):
            raise DataError(f"{self.prefix}: token id outside [0, {self.vocab_size}); the tokenizer does not "
                            "match --tokenizer-model")
        self._builder.add_document(tokens.astype(self.dtype, copy=False), [int(n) for n in lengths])
        self.num_documents += 1

    def commit(self, overwrite: bool = False) -> IndexCounts:
        """Finalize, verify by reading back, then rename ``.bin`` and last ``.idx`` onto the prefix."""
        self._builder.finalize(self.tmp_prefix + ".idx")
        for ext in (".bin", ".idx"):
            with open(self.tmp_prefix + ext, "rb+") as fh:
                os.fsync(fh.fileno())
        counts = read_counts(self.tmp_prefix)
        if os.path.exists(self.prefix + ".idx"):
            if not overwrite:
                raise RegmixError(f"output prefix {self.prefix} appeared while writing; pass --overwrite or "
                                  "choose another output")
            os.unlink(self.prefix + ".idx")  # an old .idx must not pair with the new .bin, even briefly
        os.replace(self.tmp_prefix + ".bin", self.prefix + ".bin")
        os.replace(self.tmp_prefix + ".idx", self.prefix + ".idx")
        self._done = True
        return counts

    def discard(self) -> None:
        """Remove the temporary files (no-op after a commit)."""
        if not self._done:
            with contextlib.suppress(Exception):
                self._builder.data_file.close()
            for ext in (".bin", ".idx"):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self.tmp_prefix + ext)
            self._done = True

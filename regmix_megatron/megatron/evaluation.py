"""Fixed per-domain evaluation tokens, their windows, and the documents the tokens belong to.

Every run over the same ``domains.json`` evaluates exactly the same tokens, whatever its mixture: for each evaluated
domain, the first N tokens of its split's prefixes (documents in file order, read with megatron's
``IndexedDataset``), N being the domain's ``eval.num_tokens_by_domain`` entry or ``eval.num_tokens_per_domain``.
They are cut into windows of ``seq_length + 1`` tokens that overlap by one token, so each token after the first is
predicted exactly once; a remainder shorter than one window is not scored. With N = ``all`` the whole split is
read and the last window may be partial (its missing positions padded and masked): every token after the first
is scored. A domain's loss is the mean token cross-entropy over its windows.

Every scored token (a window's label) belongs to a document: document ``k`` is the k-th document of the split,
over its prefixes in order. :func:`document_losses` adds the scored tokens' losses up per document
(``document_losses.DocumentLosses``); a document cut by the first N tokens counts with the tokens scored.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

from ..document_losses import DocumentLosses
from ..errors import DataError
from ..manifest import DomainRegistry
from ..recipe import ALL_TOKENS

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EvalTokens:
    """One domain's evaluation tokens on one split."""

    windows: np.ndarray
    """``[num_windows, seq_length + 1]`` int64; the last window of a whole split may end in padding."""
    num_tokens: int
    """Tokens scored: the labels of the first ``num_tokens`` window positions in row order."""
    document_ends: np.ndarray
    """int64: where each document (0, 1, ...) ends in the token stream, for the documents holding a scored token
    (the last one clipped to the tokens read)."""
    num_split_documents: int
    """Documents in the whole split."""

    @property
    def seq_length(self) -> int:
        return int(self.windows.shape[1] - 1)

    def document_ids(self) -> np.ndarray:
        """The document of each scored token: token ``i`` (row-major over the windows) is stream position
        ``i + 1``."""
        return np.searchsorted(self.document_ends, np.arange(1, self.num_tokens + 1), side="right")

    def document_num_tokens(self) -> np.ndarray:
        """Scored tokens per document (int64, one per document of :attr:`document_ends`)."""
        return np.bincount(self.document_ids(), minlength=len(self.document_ends)).astype(np.int64)

    def document_loss_sums(self, token_losses: np.ndarray) -> np.ndarray:
        """Sums (float64) per document of the per-token losses ``[num_windows, seq_length]`` of the windows (rows
        in window order; positions past :attr:`num_tokens` are padding and ignored)."""
        flat = np.asarray(token_losses, dtype=np.float64).reshape(-1)
        if flat.size < self.num_tokens:
            raise ValueError(f"{flat.size} token losses for {self.num_tokens} scored tokens")
        return np.bincount(self.document_ids(), weights=flat[:self.num_tokens], minlength=len(self.document_ends))

    @property
    def num_documents(self) -> int:
        """Documents with at least one scored token."""
        return int(np.count_nonzero(self.document_num_tokens()))


@dataclass(frozen=True)
class ValidationSet:
    """The evaluation tokens of ``split`` per domain, canonical domain order."""

    domains: Mapping[str, EvalTokens]
    seq_length: int
    split: str = "valid"

    @property
    def windows(self) -> dict:
        return {name: d.windows for name, d in self.domains.items()}

    @property
    def num_tokens(self) -> dict:
        """Tokens scored per domain."""
        return {name: d.num_tokens for name, d in self.domains.items()}

    @property
    def num_documents(self) -> dict:
        """Documents with a scored token, per domain."""
        return {name: d.num_documents for name, d in self.domains.items()}

    def describe(self) -> str:
        """One line: tokens and documents scored per domain (``qa 16,384 tokens, 22/31 documents``)."""
        return "; ".join(f"{name} {d.num_tokens:,} tokens, {d.num_documents}/{d.num_split_documents} documents"
                         for name, d in self.domains.items())


@dataclass(frozen=True)
class SplitEvaluation:
    """One evaluation of a split: the mean token loss per domain and its per-document losses."""

    split: str
    loss: Mapping[str, float]
    documents: Mapping[str, DocumentLosses]

    def sizes(self) -> dict:
        """``{domain: {"num_tokens", "num_documents"}}``: what was scored."""
        return {name: {"num_tokens": d.total_tokens, "num_documents": d.num_documents}
                for name, d in self.documents.items()}


def read_first_documents(prefixes: Sequence[str], num_tokens: int | None) -> tuple[np.ndarray, np.ndarray, int]:
    """The first ``num_tokens`` tokens (None: all) of the concatenated documents of ``prefixes``, the end of each
    document they reach (clipped to the tokens read) and the number of documents of all ``prefixes``."""
    from megatron.core.datasets.indexed_dataset import IndexedDataset

    parts, ends, have, num_split_documents = [], [], 0, 0
    for prefix in prefixes:
        ds = IndexedDataset(prefix)
        doc_index = np.asarray(ds.document_indices, dtype=np.int64)
        num_split_documents += len(doc_index) - 1
        if num_tokens is not None and have >= num_tokens:
            continue
        seq_ends = np.cumsum(np.asarray(ds.sequence_lengths, dtype=np.int64))
        total = int(seq_ends[-1]) if len(seq_ends) else 0
        take = total if num_tokens is None else min(total, num_tokens - have)
        num_seqs = int(np.searchsorted(seq_ends, take, side="left")) + 1 if take > 0 else 0
        if num_seqs:
            parts.append(np.concatenate(ds[0:num_seqs]).astype(np.int64)[:take])
        doc_ends = np.concatenate([[0], seq_ends])[doc_index[1:]]
        doc_starts = np.concatenate([[0], doc_ends[:-1]])
        reached = doc_starts < take
        ends.append(have + np.minimum(doc_ends[reached], take))
        have += take
    tokens = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
    document_ends = np.concatenate(ends) if ends else np.zeros(0, dtype=np.int64)
    return tokens, document_ends.astype(np.int64), num_split_documents


def read_first_tokens(prefixes: Sequence[str], num_tokens: int) -> np.ndarray:
    """The first ``num_tokens`` tokens of the concatenated documents of ``prefixes`` (fewer if short)."""
    return read_first_documents(prefixes, num_tokens)[0]


def domain_tokens(prefixes: Sequence[str], *, seq_length: int, num_tokens: int | str, where: str) -> EvalTokens:
    """The evaluation tokens of one domain's split (``where`` names them in errors: ``domain 'qa' valid``)."""
    whole = num_tokens == ALL_TOKENS
    tokens, ends, num_split_documents = read_first_documents(prefixes, None if whole else int(num_tokens) + 1)
    available = max(len(tokens) - 1, 0)  # every token but the first can be a label
    num_windows = -(-available // seq_length) if whole else available // seq_length
    if num_windows < 1:
        raise DataError(f"{where}: only {len(tokens)} tokens, fewer than one window of seq_length+1="
                        f"{seq_length + 1}: add evaluation data or lower model.seq_length")
    if not whole and available < int(num_tokens):
        log.warning("%s: only %d tokens available (asked for %d): evaluating on %d windows", where, len(tokens),
                    num_tokens, num_windows)
    scored = available if whole else num_windows * seq_length
    padded = np.zeros(num_windows * seq_length + 1, dtype=np.int64)
    padded[:scored + 1] = tokens[:scored + 1]
    idx = np.arange(num_windows)[:, None] * seq_length + np.arange(seq_length + 1)[None, :]
    last = int(np.searchsorted(ends, scored, side="right"))  # the document of the last label
    return EvalTokens(windows=padded[idx], num_tokens=int(scored), document_ends=ends[:last + 1],
                      num_split_documents=num_split_documents)


def build_validation_set(registry: DomainRegistry, *, seq_length: int, num_tokens_per_domain: int,
                         split: str = "valid", domains: Sequence[str] | None = None,
                         num_tokens_by_domain: Mapping[str, int | str] | None = None) -> ValidationSet:
    """Evaluation tokens for every domain (training and evaluation-only), or for ``domains`` only:
    ``num_tokens_by_domain`` (a count or ``all``) where it names the domain, else ``num_tokens_per_domain``.
    A domain with too few tokens for one window is an error, never dropped."""
    out = {}
    for name in registry.all_names if domains is None else domains:
        domain = registry.get(name)
        prefixes = [p.path for p in domain.prefixes(split)]
        if not prefixes:
            raise DataError(f"domain {domain.name!r} has no {split!r} split in {registry.path or 'domains.json'}: "
                            "every domain needs validation data (re-run `regmix-megatron preprocess`)")
        num_tokens = (num_tokens_by_domain or {}).get(name, num_tokens_per_domain)
        out[domain.name] = domain_tokens(prefixes, seq_length=seq_length, num_tokens=num_tokens,
                                         where=f"domain {domain.name!r} {split}")
    return ValidationSet(domains=out, seq_length=seq_length, split=split)


def document_losses(tokens: EvalTokens, token_losses: np.ndarray) -> DocumentLosses:
    """Per-document loss sums and scored-token counts of ``tokens`` from the per-token losses of its windows."""
    return DocumentLosses(loss_sum=tokens.document_loss_sums(token_losses), num_tokens=tokens.document_num_tokens())


def iterate_eval_batches(windows: np.ndarray, micro_batch_size: int, num_tokens: int | None = None):
    """Micro-batches (dicts of torch tensors) covering ``windows``; the last one is padded with masked rows, and
    positions from ``num_tokens`` on (row-major; None: none) are masked too (a whole split's partial window)."""
    import torch

    n, width = windows.shape
    seq = width - 1
    limit = n * seq if num_tokens is None else num_tokens
    num_batches = -(-n // micro_batch_size)
    for b in range(num_batches):
        rows = windows[b * micro_batch_size:(b + 1) * micro_batch_size]
        position = (b * micro_batch_size + np.arange(micro_batch_size))[:, None] * seq + np.arange(seq)[None, :]
        mask = (position < limit).astype(np.float32)
        if len(rows) < micro_batch_size:
            rows = np.concatenate([rows, np.repeat(rows[:1], micro_batch_size - len(rows), axis=0)])
        t = torch.from_numpy(np.ascontiguousarray(rows))
        yield {
            "tokens": t[:, :-1].contiguous(),
            "labels": t[:, 1:].contiguous(),
            "loss_mask": torch.from_numpy(mask),
            "position_ids": torch.arange(seq, dtype=torch.long).unsqueeze(0).expand(micro_batch_size, -1),
        }


def num_eval_batches(windows: np.ndarray, micro_batch_size: int) -> int:
    return -(-windows.shape[0] // micro_batch_size)

"""Fixed per-domain validation tokens and their evaluation.

Every run over the same ``domains.json`` evaluates exactly the same tokens, whatever its mixture: the first
``num_tokens_per_domain`` tokens of each evaluated domain's ``valid`` (or ``test``) prefixes (documents in file order, read directly with
megatron's ``IndexedDataset``), cut into windows of ``seq_length + 1`` tokens that overlap by one token, so each
token after the first is predicted exactly once. A domain's loss is the mean token cross-entropy over all its
windows.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ..data.manifest import DomainRegistry
from ..errors import DataError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ValidationSet:
    """Windows ``[num_windows, seq_length + 1]`` (int64) per domain, canonical domain order."""

    windows: dict
    seq_length: int
    num_tokens: dict
    """Tokens scored per domain (``num_windows * seq_length``)."""


def read_first_tokens(prefixes, num_tokens: int) -> np.ndarray:
    """The first ``num_tokens`` tokens of the concatenated documents of ``prefixes`` (fewer if short)."""
    from megatron.core.datasets.indexed_dataset import IndexedDataset

    parts, have = [], 0
    for prefix in prefixes:
        if have >= num_tokens:
            break
        ds = IndexedDataset(prefix)
        for i in range(len(ds)):
            seq = np.asarray(ds[i], dtype=np.int64)
            take = min(len(seq), num_tokens - have)
            parts.append(seq[:take])
            have += take
            if have >= num_tokens:
                break
    if not parts:
        return np.zeros(0, dtype=np.int64)
    return np.concatenate(parts)


def build_validation_set(registry: DomainRegistry, *, seq_length: int, num_tokens_per_domain: int,
                         split: str = "valid", domains: Sequence[str] | None = None) -> ValidationSet:
    """Windows for every domain (training and evaluation-only), or for ``domains`` only; a domain with too few
    tokens for one window is an error, never dropped."""
    windows, counts = {}, {}
    for name in registry.all_names if domains is None else domains:
        domain = registry.get(name)
        prefixes = [p.path for p in domain.prefixes(split)]
        if not prefixes:
            raise DataError(f"domain {domain.name!r} has no {split!r} split in {registry.path or 'domains.json'}: "
                            "every domain needs validation data (re-run `regmix-megatron preprocess`)")
        tokens = read_first_tokens(prefixes, num_tokens_per_domain + 1)
        num_windows = (len(tokens) - 1) // seq_length
        if num_windows < 1:
            raise DataError(
                f"domain {domain.name!r} has only {len(tokens)} {split} tokens, fewer than one window of "
                f"seq_length+1={seq_length + 1}: add validation data or lower model.seq_length")
        if len(tokens) - 1 < num_tokens_per_domain:
            log.warning("domain %s: only %d %s tokens available (asked for %d): evaluating on %d windows",
                        domain.name, len(tokens), split, num_tokens_per_domain, num_windows)
        idx = np.arange(num_windows)[:, None] * seq_length + np.arange(seq_length + 1)[None, :]
        windows[domain.name] = tokens[idx]
        counts[domain.name] = int(num_windows * seq_length)
    return ValidationSet(windows=windows, seq_length=seq_length, num_tokens=counts)


def iterate_eval_batches(windows: np.ndarray, micro_batch_size: int):
    """Micro-batches (dicts of torch tensors) covering ``windows``; the last one is padded with masked rows."""
    import torch

    n, width = windows.shape
    seq = width - 1
    num_batches = -(-n // micro_batch_size)
    for b in range(num_batches):
        rows = windows[b * micro_batch_size:(b + 1) * micro_batch_size]
        mask = np.ones((micro_batch_size, seq), dtype=np.float32)
        if len(rows) < micro_batch_size:
            pad = micro_batch_size - len(rows)
            mask[len(rows):] = 0.0
            rows = np.concatenate([rows, np.repeat(rows[:1], pad, axis=0)])
        t = torch.from_numpy(np.ascontiguousarray(rows))
        yield {
            "tokens": t[:, :-1].contiguous(),
            "labels": t[:, 1:].contiguous(),
            "loss_mask": torch.from_numpy(mask),
            "position_ids": torch.arange(seq, dtype=torch.long).unsqueeze(0).expand(micro_batch_size, -1),
        }


def num_eval_batches(windows: np.ndarray, micro_batch_size: int) -> int:
    return -(-windows.shape[0] // micro_batch_size)

"""Per-document evaluation losses of a run: which documents a domain's loss is made of.

The evaluator (``megatron/evaluation.py``) scores the first tokens of a domain's split (or all of it) and
attributes every scored token's cross-entropy to the document the token belongs to: document ``k`` is the k-th
document of the split, counted over its prefixes in order (the order megatron's ``IndexedDataset`` gives). A
document only partly inside the scored tokens counts with the tokens scored; the first token of the split is
never predicted, so it counts for nothing. The domain's mean loss is ``sum(loss_sum) / sum(num_tokens)``.

File (owner of the format; written by the trainer before ``result.json``, the run's completion marker)::

    RUN_DIR/document_losses.json
    {"format": "regmix-megatron/document-losses/v1", "run_id": "...", "step": 80,
     "splits": {"valid": {"qa": {"loss_sum": [12.5, ...], "num_tokens": [3, ...]}, ...}, "test": {...}}}

``regmix-megatron evaluate`` writes the same per-domain records into ``evaluations/<split>.json``
(``documents``). Read either with :func:`read_document_losses` / :meth:`DocumentLosses.from_json_obj`; the run
directory's writer (:func:`regmix_megatron.runs.run_dir.write_document_losses`) writes the file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import numpy as np

from ..errors import DataError
from ..fileio import file_or_in_folder, read_json
from .run_dir import DOCUMENT_LOSSES_FILE as FILE_NAME

FORMAT = "regmix-megatron/document-losses/v1"


@dataclass(frozen=True)
class DocumentLosses:
    """One domain on one split: per document ``k``, the sum of its scored tokens' losses (nats) and their count."""

    loss_sum: np.ndarray
    """float64, one per document (0 for a document with no scored token)."""
    num_tokens: np.ndarray
    """int64, the tokens of the document that were scored."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "loss_sum", np.asarray(self.loss_sum, dtype=np.float64))
        object.__setattr__(self, "num_tokens", np.asarray(self.num_tokens, dtype=np.int64))
        if self.loss_sum.ndim != 1 or self.loss_sum.shape != self.num_tokens.shape:
            raise DataError(f"per-document losses: loss_sum ({self.loss_sum.shape}) and num_tokens "
                            f"({self.num_tokens.shape}) must be two lists of the same length")
        if not np.all(np.isfinite(self.loss_sum)) or np.any(self.num_tokens < 0):
            raise DataError("per-document losses: a loss sum is not finite or a token count is negative")
        if self.total_tokens < 1:
            raise DataError("per-document losses: no scored token")

    @property
    def num_documents(self) -> int:
        """Documents with at least one scored token."""
        return int(np.count_nonzero(self.num_tokens))

    @property
    def total_tokens(self) -> int:
        return int(self.num_tokens.sum())

    @property
    def mean_loss(self) -> float:
        """The domain's loss: mean over its scored tokens."""
        return float(self.loss_sum.sum() / self.total_tokens)

    def to_json_obj(self) -> dict:
        return {"loss_sum": [float(x) for x in self.loss_sum], "num_tokens": [int(n) for n in self.num_tokens]}

    @classmethod
    def from_json_obj(cls, obj, where: str) -> "DocumentLosses":
        if not isinstance(obj, Mapping) or not {"loss_sum", "num_tokens"} <= set(obj):
            raise DataError(f"{where}: expected {{'loss_sum': [...], 'num_tokens': [...]}}")
        sums, counts = obj["loss_sum"], obj["num_tokens"]
        if not (isinstance(sums, list) and isinstance(counts, list)
                and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in sums)
                and all(isinstance(n, int) and not isinstance(n, bool) for n in counts)):
            raise DataError(f"{where}: loss_sum must be a list of numbers and num_tokens a list of integers")
        try:
            return cls(loss_sum=np.asarray(sums, dtype=np.float64), num_tokens=np.asarray(counts, dtype=np.int64))
        except DataError as exc:
            raise DataError(f"{where}: {exc}") from None


@dataclass(frozen=True)
class RunDocumentLosses:
    """``document_losses.json``: per split and domain, a :class:`DocumentLosses`."""

    run_id: str
    step: int
    splits: Mapping[str, Mapping[str, DocumentLosses]]

    def get(self, split: str, domain: str) -> DocumentLosses:
        if split not in self.splits:
            raise DataError(f"run {self.run_id}: no per-document losses for split {split!r} (has "
                            f"{sorted(self.splits)})")
        if domain not in self.splits[split]:
            raise DataError(f"run {self.run_id}: no per-document losses for domain {domain!r} on {split!r} (has "
                            f"{sorted(self.splits[split])})")
        return self.splits[split][domain]

    def to_json_obj(self) -> dict:
        return {"format": FORMAT, "run_id": self.run_id, "step": int(self.step),
                "splits": {split: {name: losses.to_json_obj() for name, losses in domains.items()}
                           for split, domains in self.splits.items()}}


def read_document_losses(path: str | os.PathLike) -> RunDocumentLosses:
    """Read ``document_losses.json`` (or the one in the run directory ``path``), checking its format."""
    path = file_or_in_folder(path, FILE_NAME)
    obj = read_json(path)
    if not isinstance(obj, Mapping) or obj.get("format") != FORMAT:
        found = obj.get("format") if isinstance(obj, Mapping) else type(obj).__name__
        raise DataError(f"{path}: format {found!r}, expected {FORMAT!r} (a file written by `regmix-megatron train`)")
    splits = obj.get("splits")
    if not isinstance(splits, Mapping) or not all(isinstance(d, Mapping) for d in splits.values()):
        raise DataError(f"{path}: 'splits' must map each split to {{domain: per-document losses}}")
    step = obj.get("step")
    if not isinstance(step, int) or isinstance(step, bool) or not isinstance(obj.get("run_id"), str):
        raise DataError(f"{path}: 'run_id' (text) and 'step' (an integer) are required")
    return RunDocumentLosses(run_id=obj["run_id"], step=step, splits={
        split: {name: DocumentLosses.from_json_obj(rec, f"{path}: splits.{split}.{name}")
                for name, rec in domains.items()} for split, domains in splits.items()})


def read_document_losses_or_none(run_dir: str | os.PathLike) -> RunDocumentLosses | None:
    """The run directory's ``document_losses.json``, or None when it has none (a run trained before the file
    existed); a file that is there but damaged still raises."""
    path = Path(run_dir) / FILE_NAME
    return read_document_losses(path) if path.is_file() else None

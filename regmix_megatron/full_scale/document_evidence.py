"""What the evaluation takes from the runs' per-document losses: each verdict's document sd, and each compared
mixture's target loss by source.

The evaluate stage reads every target-scale run's ``document_losses.json``
(:class:`~regmix_megatron.runs.document_losses.RunDocumentLosses`; runs trained before it existed have none) and
the source of every document of the report split (``domains.json``:
:meth:`~regmix_megatron.data.manifest.Domain.document_sources`). From them:

- :func:`document_sds`: per baseline, the sd of ``RegMix mean - baseline mean`` over the paired document bootstrap
  (:func:`~regmix_megatron.full_scale.document_noise.document_bootstrap`: the same resampled documents for every
  seed of both mixtures); None when either mixture has a run without per-document losses (documents not
  measured: the verdict then rests on the seeds alone and says so);
- :func:`target_losses_by_source`: per target domain whose documents know their source, each source's loss (mean
  over the mixture's seeds; :func:`~regmix_megatron.full_scale.document_noise.losses_by_source`);
- :func:`document_sample`: per target domain, how many documents and tokens were scored, in all and by source.

Pure core: numpy.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

from ..configs import Field, plain_record
from ..errors import DataError
from ..regression.target import Target
from ..runs.document_losses import DocumentLosses, RunDocumentLosses
from .document_noise import DEFAULT_NUM_DRAWS, Runs, document_bootstrap, losses_by_source

#: The seed of the document bootstrap's draws (fixed: the same evaluation gives the same sd).
BOOTSTRAP_SEED = 0


def split_documents(runs: Sequence[RunDocumentLosses | None], split: str) -> list[Mapping[str, DocumentLosses]] | None:
    """Each run's per-domain document losses on ``split``; None unless every run recorded them for that split."""
    if not runs or any(r is None or split not in r.splits for r in runs):
        return None
    return [r.splits[split] for r in runs]


def document_sds(regmix: Runs | None, baselines: Mapping[str, Runs | None], target: Target, *,
                 num_draws: int = DEFAULT_NUM_DRAWS, seed: int = BOOTSTRAP_SEED) -> dict[str, float | None]:
    """Per baseline, the document sd of ``RegMix mean - baseline mean`` (sample sd of the paired bootstrap's
    draws); None where RegMix's or the baseline's runs lack per-document losses."""
    out: dict[str, float | None] = {}
    for name, runs in baselines.items():
        if regmix is None or runs is None:
            out[name] = None
            continue
        draws = document_bootstrap(regmix, runs, target, num_draws=num_draws, seed=seed)
        out[name] = float(np.std(draws, ddof=1)) if draws.size >= 2 else None
    return out


def source_domains(target: Target, sources: Mapping[str, Sequence[str]]) -> list[str]:
    """The domains broken down by source: the target's domains that record their documents' sources (for the
    ``average`` target, every domain that does)."""
    return [d for d in (target.needs or sorted(sources)) if d in sources]


def target_losses_by_source(runs: Runs | None, target: Target,
                            sources: Mapping[str, Sequence[str]]) -> dict[str, dict[str, float]]:
    """``{domain: {source: loss}}`` of one mixture (mean over its seeds) for :func:`source_domains`; empty when
    its runs lack per-document losses."""
    if runs is None:
        return {}
    return {d: losses_by_source([r[d] for r in runs], scored_sources(runs[0][d], sources[d], d))
            for d in source_domains(target, sources) if all(d in r for r in runs)}


def scored_sources(doc: DocumentLosses, sources: Sequence[str], domain: str) -> list[str]:
    """The sources of the documents ``doc`` records: the first ones of the split (the evaluator records the
    documents up to the last one holding a scored token, in split order); refused when it records more documents
    than the split has."""
    n = len(doc.loss_sum)
    if n > len(sources):
        raise DataError(f"{domain!r}: {n} documents scored but the split has {len(sources)} (domains.json): the run "
                        "was evaluated on other data than domains.json describes")
    return list(sources[:n])


# ---- the documents the verdicts were scored on (``evaluation.json``'s ``documents``) -----------------------------
@dataclass(frozen=True)
class SourceShare:
    """One source of a domain on the report split: what of it was scored."""

    num_documents: int
    """Its documents with at least one scored token."""
    num_tokens: int
    """Its scored tokens."""

    @classmethod
    def from_json(cls, doc: Field) -> "SourceShare":
        return cls(num_documents=doc["num_documents"].count(), num_tokens=doc["num_tokens"].count())

    def to_json_obj(self) -> dict:
        return plain_record(self)


@dataclass(frozen=True)
class DomainSample:
    """One target domain on the report split: what was scored, in all and by source."""

    num_documents: int
    """Documents with at least one scored token."""
    num_tokens: int
    """Scored tokens."""
    sources: Mapping[str, SourceShare]
    """Source -> its share (empty when the domain's documents do not record their source)."""

    @classmethod
    def from_json(cls, doc: Field) -> "DomainSample":
        return cls(num_documents=doc["num_documents"].count(), num_tokens=doc["num_tokens"].count(),
                   sources={k: SourceShare.from_json(v) for k, v in doc["sources"].fields().items()})

    def to_json_obj(self) -> dict:
        return plain_record(self)


@dataclass(frozen=True)
class DocumentSample:
    """The documents the verdicts were scored on, and how their noise was measured."""

    num_draws: int
    """Draws of each verdict's paired document bootstrap."""
    bootstrap_seed: int
    """Their seed."""
    domains: Mapping[str, DomainSample]
    """Per target domain: documents and tokens scored, by source (empty: no run recorded per-document losses)."""

    @classmethod
    def from_json(cls, doc: Field) -> "DocumentSample":
        return cls(num_draws=doc["num_draws"].count(), bootstrap_seed=doc["bootstrap_seed"].count(),
                   domains={k: DomainSample.from_json(v) for k, v in doc["domains"].fields().items()})

    def to_json_obj(self) -> dict:
        return plain_record(self)


def document_sample(runs: Runs | None, target: Target, sources: Mapping[str, Sequence[str]], *,
                    num_draws: int = DEFAULT_NUM_DRAWS, seed: int = BOOTSTRAP_SEED) -> DocumentSample:
    """What the first of ``runs`` scored (every run scores the same tokens) on the target's domains (for the
    ``average`` target, every domain it scored), by source where ``sources`` knows them."""
    first = runs[0] if runs else {}
    names = [d for d in (target.needs or sorted(first)) if d in first]
    domains = {}
    for d in names:
        doc = first[d]
        shares: dict[str, SourceShare] = {}
        if d in sources:
            labels = np.asarray(scored_sources(doc, sources[d], d))
            shares = {s: SourceShare(int(np.count_nonzero(doc.num_tokens[labels == s])),
                                     int(doc.num_tokens[labels == s].sum())) for s in sorted(set(labels.tolist()))}
        domains[d] = DomainSample(doc.num_documents, doc.total_tokens, shares)
    return DocumentSample(num_draws=num_draws, bootstrap_seed=seed, domains=domains)

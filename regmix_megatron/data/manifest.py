"""``domains.json``: the registry of domains, their Megatron prefixes and exact token counts.

Written by preprocessing (``tools/preprocess_data.py`` / ``regmix-megatron preprocess``), read by everything
downstream. Prefix paths are stored relative to the manifest's directory and resolved on load.

Schema (``format: regmix-megatron/domains/v1``)::

    {
      "format": "regmix-megatron/domains/v1",
      "tokenizer": {"type": "sentencepiece", "model": "tokenizer/spm.model", "sha256": "...",
                    "vocab_size": 8000, "eod_id": 2,
                    "megatron": {"tokenizer_type": "GPTSentencePieceTokenizer",
                                 "tokenizer_model": "tokenizer/spm.model"}},
      "domains": [
        {"name": "code",
         "splits": {"train": [{"prefix": "code/train_text_document", "num_documents": 10,
                               "num_sequences": 10, "num_tokens": 12345}],
                    "valid": [...], "test": [...]}},
        {"name": "qa", "evaluation_only": true,
         "splits": {"valid": [{"prefix": "qa/valid_text_document", "num_documents": 5, "num_sequences": 5,
                               "num_tokens": 900,
                               "sources": {"fortunes": {"num_documents": 3, "num_tokens": 700},
                                           "perl-doc": {"num_documents": 2, "num_tokens": 200}},
                               "source_runs": [["fortunes", 2], ["perl-doc", 1], ["fortunes", 1],
                                               ["perl-doc", 1]]}],
                    "train": [...], "test": [...]}}
      ]
    }

**Sources** (optional, per prefix; written by preprocessing when the corpus lines name their ``source``, as
evaluation-only and user-added domains do): ``sources`` maps each source to its documents and exact tokens in
the prefix (they sum to the prefix's ``num_documents`` and ``num_tokens``); ``source_runs`` is the source of
every document in ``.bin`` document order, run-length encoded (``[source, number of consecutive documents]``;
the run lengths sum to ``num_documents``). Documents are those of the ``.idx``: one per JSONL line that was
preprocessed (a line without tokens is a document of no sequences; sentence splitting makes sequences, not
documents; a bad line skipped with ``--skip-bad`` is no document). A line without a source, in a file where
others have one, counts as :data:`UNKNOWN_SOURCE`. ``source_runs`` is left out beyond :data:`MAX_SOURCE_RUNS`
runs (``sources`` stays). Prefixes without the keys (manifests written before sources existed, or a corpus
whose lines name none) load with sources unknown: :meth:`Domain.sources` and :meth:`Domain.document_sources`
return None. :meth:`Domain.document_sources` gives each document's source over a split's prefixes in order,
e.g. to break a per-document loss down by source or to bootstrap over documents.

**Evaluation-only domains** (``"evaluation_only": true``; the key is absent for training domains): tokenized and
evaluated in every run (their ``valid`` and ``test`` splits), never sampled, trained on or put into a training
blend. :attr:`DomainRegistry.names` (the domains a mixture is over), :meth:`~DomainRegistry.tokens_per_domain`
and :meth:`~DomainRegistry.prior` cover the training domains only; :attr:`DomainRegistry.domains` and
:attr:`DomainRegistry.all_names` list every domain. :func:`regmix_megatron.mixtures.domains.check_trainable` is
the one check a mixture or schedule passes before it trains: a positive weight on an evaluation-only domain is
refused.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from ..errors import DataError
from ..fileio import atomic_write_json, file_or_in_folder, read_json
from .tokenizer_types import TokenizerSpec
from ..configs import Field

FORMAT = "regmix-megatron/domains/v1"
SPLITS = ("train", "valid", "test")
#: the source of a document whose corpus line names none, in a file where other lines do
UNKNOWN_SOURCE = "(unknown)"
#: ``source_runs`` of a prefix are recorded up to this many runs (a shuffled multi-source file would have one
#: run per document)
MAX_SOURCE_RUNS = 200_000


@dataclass(frozen=True)
class SourceCount:
    """One source's share of a prefix (or of a split, summed over its prefixes)."""

    name: str
    num_documents: int
    num_tokens: int


@dataclass(frozen=True)
class PrefixInfo:
    """One Megatron indexed dataset (``<prefix>.bin`` + ``<prefix>.idx``)."""

    path: str
    """Absolute prefix path (no extension)."""
    num_documents: int
    num_sequences: int
    num_tokens: int
    """Exact: the sum of sequence lengths in the ``.idx``."""
    sources: tuple[SourceCount, ...] | None = None
    """Documents and tokens per source, in source-name order (None: unknown)."""
    source_runs: tuple[tuple[str, int], ...] | None = None
    """Each document's source in ``.bin`` order, run-length encoded (None: unknown or not recorded)."""

    def check_sources(self, where: str) -> None:
        """Raise :class:`DataError` unless the source records add up to this prefix's counts."""
        if self.sources is not None:
            docs = sum(s.num_documents for s in self.sources)
            tokens = sum(s.num_tokens for s in self.sources)
            if (docs, tokens) != (self.num_documents, self.num_tokens):
                raise DataError(f"{where}: its sources count {docs} documents and {tokens} tokens, the prefix "
                                f"{self.num_documents} and {self.num_tokens}; regenerate it with "
                                "`regmix-megatron preprocess --overwrite`")
        if self.source_runs is not None:
            per_source: dict[str, int] = {}
            for name, count in self.source_runs:
                per_source[name] = per_source.get(name, 0) + count
            expected = {s.name: s.num_documents for s in self.sources or ()}
            if sum(per_source.values()) != self.num_documents or (self.sources is not None
                                                                   and per_source != expected):
                raise DataError(f"{where}: source_runs cover {sum(per_source.values())} documents ({per_source}), "
                                f"not the prefix's {self.num_documents} ({expected}); regenerate it with "
                                "`regmix-megatron preprocess --overwrite`")


@dataclass(frozen=True)
class Domain:
    name: str
    splits: Mapping[str, tuple[PrefixInfo, ...]]
    evaluation_only: bool = False
    """Evaluated in every run, never trained on (no mixture gives it weight)."""

    def prefixes(self, split: str = "train") -> tuple[PrefixInfo, ...]:
        return tuple(self.splits.get(split, ()))

    def num_tokens(self, split: str = "train") -> int:
        return int(sum(p.num_tokens for p in self.prefixes(split)))

    def num_documents(self, split: str = "train") -> int:
        return int(sum(p.num_documents for p in self.prefixes(split)))

    def sources(self, split: str = "train") -> dict[str, SourceCount] | None:
        """Documents and tokens per source over the split's prefixes (source-name order); None when no prefix
        records sources. A prefix without records counts as :data:`UNKNOWN_SOURCE`."""
        prefixes = self.prefixes(split)
        if not any(p.sources is not None for p in prefixes):
            return None
        totals: dict[str, list[int]] = {}
        for p in prefixes:
            for s in p.sources if p.sources is not None else (SourceCount(UNKNOWN_SOURCE, p.num_documents,
                                                                          p.num_tokens),):
                entry = totals.setdefault(s.name, [0, 0])
                entry[0] += s.num_documents
                entry[1] += s.num_tokens
        return {name: SourceCount(name, *totals[name]) for name in sorted(totals)}

    def document_sources(self, split: str = "train") -> list[str] | None:
        """The source of every document of the split, in document order over its prefixes (the order the
        evaluator reads them); None unless every prefix of the split records its ``source_runs``."""
        prefixes = self.prefixes(split)
        if not prefixes or any(p.source_runs is None for p in prefixes):
            return None
        return [name for p in prefixes for name, count in p.source_runs for _ in range(count)]


@dataclass(frozen=True)
class TokenizerInfo:
    type: str
    """The family: sentencepiece, gpt2-bpe, huggingface, tiktoken."""
    model: str
    """Absolute path of the tokenizer's main file (SentencePiece model, GPT-2 vocab.json, HF directory, ...)."""
    sha256: str
    vocab_size: int
    eod_id: int
    megatron: TokenizerSpec | None = None
    """The Megatron-LM flags naming the tokenizer (paths absolute); None: a SentencePiece ``model``."""

    @property
    def spec(self) -> TokenizerSpec:
        if self.megatron is not None:
            return self.megatron
        return TokenizerSpec(tokenizer_type="GPTSentencePieceTokenizer", tokenizer_model=self.model)

    @classmethod
    def from_identity(cls, ident) -> "TokenizerInfo":
        """From a :class:`~regmix_megatron.data.tokenizer_types.TokenizerIdentity`."""
        return cls(type=ident.type, model=ident.model, sha256=ident.sha256, vocab_size=ident.vocab_size,
                   eod_id=ident.eod_id, megatron=ident.spec)


def _absolute(path: str, base: Path) -> str:
    return str(path if os.path.isabs(path) else (base / path).resolve())


def _domain(d: Field, base: Path) -> Domain:
    """One entry of ``domains``: ``name``, ``splits`` (a mapping split -> list of prefixes) and
    ``evaluation_only`` (optional, true or false)."""
    name = d["name"].text()
    splits = {}
    for split, plist in d["splits"].fields().items():
        Field(split, plist.where, plist.fix, plist.path).choice(SPLITS)
        infos = []
        for p in plist.items():
            num_documents = p["num_documents"].count()
            info = PrefixInfo(path=_absolute(p["prefix"].text(), base), num_documents=num_documents,
                              num_sequences=p.get("num_sequences", num_documents).count(),
                              num_tokens=p["num_tokens"].count(), **_sources_from_json(p))
            info.check_sources(f"{p.where}: domain {name!r} {split} prefix {p['prefix'].value!r} ({p.path})")
            infos.append(info)
        splits[split] = tuple(infos)
    return Domain(name=name, splits=splits, evaluation_only=d.get("evaluation_only", False).flag())


@dataclass(frozen=True)
class DomainRegistry:
    """Domains in canonical (sorted-by-name) order: every domain (training and evaluation-only)."""

    domains: tuple[Domain, ...]
    tokenizer: TokenizerInfo
    path: str = ""
    """Where this registry was loaded from (empty when built in memory)."""

    def __post_init__(self) -> None:
        names = [d.name for d in self.domains]
        if names != sorted(names):
            object.__setattr__(self, "domains", tuple(sorted(self.domains, key=lambda d: d.name)))
        if len(set(names)) != len(names):
            raise DataError(f"{self.path or 'domains.json'}: duplicate domain names in {names}")
        if names and all(d.evaluation_only for d in self.domains):
            raise DataError(f"{self.path or 'domains.json'}: every domain is evaluation-only ({names}); at least "
                            "one domain must be trained on")

    @property
    def names(self) -> tuple[str, ...]:
        """The training domains: what a mixture is over (evaluation-only domains excluded)."""
        return tuple(d.name for d in self.domains if not d.evaluation_only)

    @property
    def all_names(self) -> tuple[str, ...]:
        """Every domain, training and evaluation-only (what a run evaluates), canonical order."""
        return tuple(d.name for d in self.domains)

    @property
    def eval_only_names(self) -> tuple[str, ...]:
        """The evaluation-only domains."""
        return tuple(d.name for d in self.domains if d.evaluation_only)

    @property
    def training_domains(self) -> tuple[Domain, ...]:
        return tuple(d for d in self.domains if not d.evaluation_only)

    def with_evaluation_only(self, names: Sequence[str]) -> "DomainRegistry":
        """The same registry with exactly ``names`` evaluation-only (every other domain a training domain)."""
        unknown = sorted(set(names) - set(self.all_names))
        if unknown:
            raise DataError(f"evaluation-only domain(s) {unknown} are not in {self.path or 'the registry'}; "
                            f"domains: {list(self.all_names)}")
        return DomainRegistry(domains=tuple(replace(d, evaluation_only=d.name in set(names)) for d in self.domains),
                              tokenizer=self.tokenizer, path=self.path)

    def get(self, name: str) -> Domain:
        for d in self.domains:
            if d.name == name:
                return d
        raise DataError(f"unknown domain {name!r} in {self.path or 'registry'}; known: {list(self.names)}")

    def tokens_per_domain(self, split: str = "train") -> np.ndarray:
        """Exact token counts per training domain (:attr:`names` order), int64."""
        return np.array([d.num_tokens(split) for d in self.training_domains], dtype=np.int64)

    def prior(self, split: str = "train") -> np.ndarray:
        """The natural mixture: each training domain's share of training tokens (float64, sums to 1)."""
        t = self.tokens_per_domain(split).astype(np.float64)
        if t.sum() <= 0:
            raise DataError(f"{self.path or 'registry'}: no {split} tokens in any domain")
        return t / t.sum()

    # ---- files --------------------------------------------------------------------------------------
    @classmethod
    def load(cls, path: str | os.PathLike) -> "DomainRegistry":
        """Read a ``domains.json`` (a folder: its ``domains.json``), every field checked against the schema above:
        an error names the field (``domains[2].splits``), what it must be and what it is."""
        path = file_or_in_folder(path, "domains.json")
        obj = read_json(path)
        where = str(path)
        if not isinstance(obj, dict) or obj.get("format") != FORMAT:
            raise DataError(f"{where}: not a domains manifest (expected \"format\": \"{FORMAT}\"); "
                            "create it with `regmix-megatron preprocess`")
        doc = Field(obj, where, "regenerate it with `regmix-megatron preprocess` (or `domains import`)")
        base = path.parent
        tok = doc["tokenizer"]
        megatron = tok.get("megatron").value
        tokenizer = TokenizerInfo(
            type=tok["type"].text(), model=_absolute(tok["model"].text(), base), sha256=tok["sha256"].text(),
            vocab_size=tok["vocab_size"].count(), eod_id=tok["eod_id"].count(),
            megatron=(TokenizerSpec.from_json(megatron, base=base, where=f"{where}: tokenizer.megatron")
                      if megatron else None))
        return cls(domains=tuple(_domain(d, base) for d in doc["domains"].items()), tokenizer=tokenizer,
                   path=str(path))

    def to_json_obj(self, base: str | os.PathLike | None = None) -> dict:
        """JSON form; paths relative to ``base`` (the manifest's directory) when given."""
        def rel(p: str) -> str:
            return os.path.relpath(p, base) if base is not None else p

        t = self.tokenizer
        return {
            "format": FORMAT,
            "tokenizer": {"type": t.type, "model": rel(t.model), "sha256": t.sha256,
                          "vocab_size": t.vocab_size, "eod_id": t.eod_id,
                          "megatron": t.spec.to_json(base=base)},
            "domains": [
                {"name": d.name,
                 **({"evaluation_only": True} if d.evaluation_only else {}),
                 "splits": {s: [{"prefix": rel(p.path), "num_documents": p.num_documents,
                                 "num_sequences": p.num_sequences, "num_tokens": p.num_tokens,
                                 **_sources_to_json(p)}
                                for p in plist]
                            for s, plist in d.splits.items()}}
                for d in self.domains
            ],
        }

    def save(self, path: str | os.PathLike) -> Path:
        path = Path(path)
        return atomic_write_json(path, self.to_json_obj(base=path.parent.resolve()))

    def verify_files(self, full: bool = True) -> int:
        """Check every prefix's ``.bin/.idx`` pair and the counts recorded here against its ``.idx``
        (:func:`regmix_megatron.data.index_files.verify_registry`): header and sizes, and with ``full`` (the default,
        before training) every pointer against the lengths, O(sequences) once per prefix. Raises
        :class:`DataError` naming the file and the fix; returns the number of prefixes checked. Call it before
        training (full), sampling or exporting (``full=False`` is enough: they read counts, not tokens)."""
        from .index_files import verify_registry

        return verify_registry(self, full=full)

    def check_domains(self, domains: Sequence[str], source: str) -> None:
        """Refuse a mixture/model whose domain set differs from this registry's training domains, naming the
        difference (an evaluation-only domain is named as such)."""
        held_out = sorted(set(domains) & set(self.eval_only_names))
        if held_out:
            raise DataError(f"{source}: domain(s) {held_out} are evaluation-only in {self.path or 'the manifest'}: "
                            f"they are never trained on; use a mixture over the training domains {list(self.names)}")
        missing = sorted(set(self.names) - set(domains))
        unknown = sorted(set(domains) - set(self.names))
        if missing or unknown:
            raise DataError(
                f"{source}: domains do not match {self.path or 'the manifest'}: "
                f"unknown {unknown}, missing {missing}; use a mixture over exactly {list(self.names)} "
                "(zero weights are allowed)"
            )


def _sources_from_json(p: Field) -> dict:
    """The ``sources`` / ``source_runs`` fields of a prefix (absent or null: None)."""
    out: dict = {}
    if p.get("sources").value is not None:
        out["sources"] = tuple(SourceCount(name, c["num_documents"].count(), c["num_tokens"].count())
                               for name, c in sorted(p["sources"].fields().items()))
    if p.get("source_runs").value is not None:
        runs = []
        for run in p["source_runs"].items():
            pair = run.items()
            if len(pair) != 2:
                raise DataError(f"{run.where}: {run.path} is {run.value!r}: expected a [source, num_documents] pair; "
                                f"{run.fix}")
            runs.append((pair[0].text(), pair[1].count()))
        out["source_runs"] = tuple(runs)
    return out


def _sources_to_json(p: PrefixInfo) -> dict:
    out: dict = {}
    if p.sources is not None:
        out["sources"] = {s.name: {"num_documents": s.num_documents, "num_tokens": s.num_tokens}
                          for s in p.sources}
    if p.source_runs is not None:
        out["source_runs"] = [[name, count] for name, count in p.source_runs]
    return out


def check_blend_prefix(prefix: str) -> str:
    """``prefix`` if a Megatron-LM blend list can hold it (no whitespace, not a number); else a :class:`DataError`
    naming it and the fix."""
    if not prefix or any(c.isspace() for c in prefix):
        raise DataError(f"prefix {prefix!r} is empty or contains whitespace: Megatron-LM splits blend lists on "
                        "whitespace; move the data to a path without spaces (an export can also rewrite the path: "
                        "--path-prefix OLD=NEW)")
    try:
        float(prefix)
    except ValueError:
        return prefix
    raise DataError(f"prefix {prefix!r} parses as a number, so Megatron would read it as a weight: rename it")


def check_prefix_paths(registry: DomainRegistry, source: str = "") -> None:
    """Refuse a registry whose prefixes Megatron-LM's blend lists cannot hold (whitespace, a number), naming the
    domain, split and prefix: the check of ``domains import``, ``preprocess``, ``sample`` and ``sweep plan``,
    so data under such a path is refused before anything trains on it."""
    for d in registry.domains:
        for split, prefixes in sorted(d.splits.items()):
            for p in prefixes:
                try:
                    check_blend_prefix(p.path)
                except DataError as exc:
                    where = source or registry.path or "domains.json"
                    raise DataError(f"{where}: domain {d.name!r} {split}: {exc}") from None

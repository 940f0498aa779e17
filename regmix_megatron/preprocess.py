"""JSONL -> Megatron indexed datasets (``.bin``/``.idx``) and the ``domains.json`` manifest.

Two entry points:

- :func:`preprocess_jsonl`: JSONL file(s) -> one prefix per JSON key, named like Megatron-LM's
  ``tools/preprocess_data.py``: ``<output_prefix>_<key>_document`` (``_sentence`` with sentence splitting).
- :func:`preprocess_corpus`: a corpus directory ``<corpus>/<domain>/<split>.jsonl`` ->
  ``<out>/<domain>/<split>_text_document.{bin,idx}`` and ``<out>/domains.json`` (token counts read back from
  the ``.idx`` files, tokenizer identity, and, where the lines name their ``source``, each document's source
  and the documents and tokens per source: ``manifest.py``).

Any tokenizer type of :mod:`regmix_megatron.tokenizer_types` (a :class:`~regmix_megatron.tokenizer_types.
TokenizerSpec`; a plain path means a SentencePiece model). Megatron-LM's semantics: each JSON value is one
document (a list of strings is a document of pre-split sentences), each non-empty sentence one sequence, EOD
appended to a non-empty document with ``append_eod``; a document without tokens is kept as a document of no
sequences (Megatron-LM 0.16.1 writes it so), and counted. With ``partitions`` > 1 documents are ordered as
Megatron-LM's merge of its partitions orders them.

Lines are parsed, validated and tokenized in a ``multiprocessing`` pool of ``workers`` processes; results
come back in input order, so 1 and N workers write byte-identical files. Bad lines (malformed JSON, missing
key, invalid UTF-8, non-string value) raise :class:`DataError` naming file and line, or with ``skip_bad`` are
skipped and counted.

Every ``.bin``/``.idx`` pair is written under a temporary prefix and renamed when complete (``.idx`` last);
``domains.json`` is written last. An interrupted run never leaves output that looks complete.

This module imports no megatron; writing goes through ``regmix_megatron.megatron.indexed`` (imported when
used), and so do the HuggingFace and tiktoken tokenizers (megatron-core's classes).
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np

from .corpus_reader import discover_corpus, iter_lines, parse_record
from .errors import DataError, RegmixError
from .sentences import split_pieces
from .tokenizer_types import TokenizerIdentity, TokenizerSpec, identify_spec, load_text_tokenizer

logger = logging.getLogger(__name__)

DOMAINS_FILE = "domains.json"


def as_spec(tokenizer: TokenizerSpec | str | os.PathLike) -> TokenizerSpec:
    """A :class:`TokenizerSpec` (paths resolved); a plain path is a SentencePiece model or tokenizer directory."""
    if not isinstance(tokenizer, TokenizerSpec):
        tokenizer = TokenizerSpec(tokenizer_type="GPTSentencePieceTokenizer", tokenizer_model=str(tokenizer))
    return tokenizer.resolved()


# ---- encoding (runs in worker processes) ------------------------------------------------------------
@dataclass(frozen=True)
class EncodeOptions:
    spec: TokenizerSpec
    json_keys: tuple[str, ...] = ("text",)
    append_eod: bool = False
    split_sentences: bool = False
    punkt_dir: str | None = None


_WORKER: dict = {}


def _init_worker(options: EncodeOptions) -> None:
    _WORKER.clear()
    _WORKER["options"] = options
    _WORKER["tok"] = load_text_tokenizer(options.spec)
    if options.split_sentences:
        from .sentences import load_splitter

        _WORKER["splitter"] = load_splitter(options.punkt_dir)


def _sentences(value, splitter) -> list[str]:
    """A JSON value's sentences: a list is pre-split (Megatron-LM's form); a string is one sentence, or its
    sentence pieces with a splitter."""
    if isinstance(value, list):
        return list(value)
    if splitter is not None:
        return split_pieces(splitter, value)
    return [value] if value else []


def _encode_batch(batch: list[tuple[str, int, bytes]]) -> list[tuple]:
    """Parse and tokenize a batch of ``(path, line_no, raw)`` lines. Each result is ``("ok", line_no,
    num_bytes, {key: (tokens, lengths)}, source)`` (``source``: what the line's ``source`` key names, or None)
    or ``("bad", line_no, message)``."""
    opts: EncodeOptions = _WORKER["options"]
    tok = _WORKER["tok"]
    splitter = _WORKER.get("splitter")
    results: list[tuple] = []
    pieces: list[str] = []  # every sentence of every document of the batch, encoded in one call
    layout: list[tuple[int, str, int]] = []  # (result index, key, number of pieces)
    for path, line_no, raw in batch:
        try:
            doc, source = parse_record(raw, path, line_no, opts.json_keys, allow_lists=True)
        except DataError as exc:
            results.append(("bad", line_no, str(exc)))
            continue
        for key in opts.json_keys:
            parts = _sentences(doc[key], splitter)
            pieces.extend(parts)
            layout.append((len(results), key, len(parts)))
        results.append(("ok", line_no, len(raw) + 1, {}, source))
    encoded = tok.encode_batch(pieces) if pieces else []
    cursor = 0
    for index, key, num_pieces in layout:
        ids = [e for e in encoded[cursor:cursor + num_pieces] if len(e)]
        cursor += num_pieces
        if ids and opts.append_eod:
            ids[-1] = list(ids[-1]) + [tok.eod]
        lengths = np.fromiter((len(e) for e in ids), dtype=np.int32, count=len(ids))
        tokens = (np.concatenate([np.asarray(e, dtype=np.int64) for e in ids]) if ids
                  else np.zeros(0, dtype=np.int64))
        results[index][3][key] = (tokens, lengths)
    return results


class Encoder:
    """Tokenizes JSONL lines with ``workers`` processes (in-process for 1), results in input order."""

    def __init__(self, options: EncodeOptions, workers: int = 1, batch_lines: int = 256,
                 batch_bytes: int = 1 << 16) -> None:
        if workers < 1:
            raise RegmixError(f"--workers {workers}: use 1 or more")
        self.options = options
        self.workers = workers
        self.batch_lines = batch_lines
        self.batch_bytes = batch_bytes
        """A task is at most ``batch_lines`` lines or about ``batch_bytes`` bytes (documents vary a lot)."""
        self._pool = None
        self.eod: int | None = None
        self.vocab_size: int | None = None

    def __enter__(self) -> "Encoder":
        # In-process first: a tokenizer or Punkt directory that fails to load raises here, instead of failing in
        # every pool initializer (multiprocessing would restart those forever).
        _init_worker(self.options)
        self.eod, self.vocab_size = int(_WORKER["tok"].eod), int(_WORKER["tok"].vocab_size)
        if self.workers > 1:
            import multiprocessing

            ctx = multiprocessing.get_context("spawn")  # safe even when torch/megatron are imported
            self._pool = ctx.Pool(self.workers, initializer=_init_worker, initargs=(self.options,))
        return self

    def __exit__(self, *exc) -> None:
        if self._pool is not None:
            self._pool.terminate()
            self._pool.join()
            self._pool = None

    def _tasks(self, lines: Iterable[tuple[str, int, bytes]]) -> Iterator[list[tuple[str, int, bytes]]]:
        batch: list[tuple[str, int, bytes]] = []
        num_bytes = 0
        for item in lines:
            batch.append(item)
            num_bytes += len(item[2])
            if len(batch) >= self.batch_lines or num_bytes >= self.batch_bytes:
                yield batch
                batch, num_bytes = [], 0
        if batch:
            yield batch

    def encode_lines(self, lines: Iterable[tuple[str, int, bytes]]) -> Iterator[tuple]:
        tasks = self._tasks(lines)
        if self._pool is None:
            batches = map(_encode_batch, tasks)
        else:
            batches = self._pool.imap(_encode_batch, tasks, chunksize=1)
        for results in batches:
            yield from results

    def encode_file(self, path: str | os.PathLike) -> Iterator[tuple]:
        return self.encode_lines(file_lines([path]))


def file_lines(paths: Sequence[str | os.PathLike], partitions: int = 1,
               keep_sequential_samples: bool = False) -> Iterator[tuple[str, int, bytes]]:
    """``(path, line_no, raw)`` of the files' lines in the order Megatron-LM's ``--partitions`` merge writes
    them: with ``partitions`` > 1 and no ``keep_sequential_samples``, line ``k`` (counted across files) goes to
    partition ``k % partitions`` and the partitions are concatenated in order; otherwise input order."""
    if partitions <= 1 or keep_sequential_samples:
        for path in paths:
            for line_no, raw in iter_lines(path):
                yield str(path), line_no, raw
        return
    for part in range(partitions):
        k = 0
        for path in paths:
            for line_no, raw in iter_lines(path):
                if k % partitions == part:
                    yield str(path), line_no, raw
                k += 1


# ---- one file ---------------------------------------------------------------------------------------
class SourceTally:
    """The source of each document written to one prefix, counted as documents are added (``manifest.py``:
    ``sources`` and ``source_runs``)."""

    def __init__(self) -> None:
        self.runs: list[list] | None = []
        self.counts: dict[str, list[int]] = {}
        self.any_named = False

    def add(self, source: str | None, num_tokens: int) -> None:
        from .manifest import MAX_SOURCE_RUNS, UNKNOWN_SOURCE

        name = source if source is not None else UNKNOWN_SOURCE
        self.any_named = self.any_named or source is not None
        if self.runs is not None:
            if self.runs and self.runs[-1][0] == name:
                self.runs[-1][1] += 1
            elif len(self.runs) < MAX_SOURCE_RUNS:
                self.runs.append([name, 1])
            else:
                self.runs = None
        entry = self.counts.setdefault(name, [0, 0])
        entry[0] += 1
        entry[1] += num_tokens

    def records(self) -> dict:
        """``{"sources": ..., "source_runs": ...}`` for :class:`~regmix_megatron.manifest.PrefixInfo`; empty
        when no document named a source."""
        from .manifest import SourceCount

        if not self.any_named:
            return {}
        return {"sources": tuple(SourceCount(n, *self.counts[n]) for n in sorted(self.counts)),
                "source_runs": tuple((n, c) for n, c in self.runs) if self.runs is not None else None}


@dataclass
class FileReport:
    """What preprocessing JSONL input (one file, or Megatron-LM's several with ``--partitions``) produced."""

    input: str
    prefixes: dict[str, str] = field(default_factory=dict)
    """JSON key -> output prefix."""
    num_documents: dict[str, int] = field(default_factory=dict)
    num_sequences: dict[str, int] = field(default_factory=dict)
    num_tokens: dict[str, int] = field(default_factory=dict)
    """Read back from the written ``.idx``."""
    num_lines: int = 0
    num_bad_lines: int = 0
    num_empty_documents: int = 0
    """Documents without tokens (kept as documents of no sequences, as Megatron-LM writes them)."""
    num_bytes: int = 0
    elapsed_s: float = 0.0
    bad_lines: list[str] = field(default_factory=list)
    """The first few skipped-line messages."""
    sources: dict[str, dict] = field(default_factory=dict)
    """JSON key -> its prefix's source records (:meth:`SourceTally.records`; empty when no line names one)."""


def output_prefixes(output_prefix: str | os.PathLike, json_keys: Sequence[str],
                    split_sentences: bool) -> dict[str, str]:
    level = "sentence" if split_sentences else "document"
    return {key: f"{output_prefix}_{key}_{level}" for key in json_keys}


def preprocess_file(input_path: str | os.PathLike | Sequence[str | os.PathLike], output_prefix: str | os.PathLike,
                    encoder: Encoder, vocab_size: int | None = None, skip_bad: bool = False,
                    overwrite: bool = False, prefixes: dict[str, str] | None = None, partitions: int = 1,
                    keep_sequential_samples: bool = False, log_interval: int = 0) -> FileReport:
    """Tokenize JSONL (a file, or files in Megatron-LM's ``--partitions`` order) into one indexed dataset per
    JSON key (``prefixes`` overrides the names). ``log_interval`` > 0 prints Megatron-LM's progress line."""
    from .megatron.indexed import IndexedWriter, check_prefix_free

    paths = [Path(p) for p in ([input_path] if isinstance(input_path, (str, os.PathLike)) else input_path)]
    for path in paths:
        if not path.is_file():
            raise RegmixError(f"--input {path}: no such file")
    keys = encoder.options.json_keys
    prefixes = prefixes or output_prefixes(output_prefix, keys, encoder.options.split_sentences)
    for prefix in prefixes.values():
        check_prefix_free(prefix, overwrite)
    where = ", ".join(str(p) for p in paths)
    report = FileReport(input=where, prefixes=dict(prefixes))
    started = time.perf_counter()
    vocab_size = vocab_size or encoder.vocab_size
    writers = {key: IndexedWriter(prefixes[key], vocab_size) for key in keys}
    tallies = {key: SourceTally() for key in keys}
    num_tokens = dict.fromkeys(keys, 0)
    try:
        for result in encoder.encode_lines(file_lines(paths, partitions, keep_sequential_samples)):
            report.num_lines += 1
            if result[0] == "bad":
                if not skip_bad:
                    raise DataError(result[2])
                report.num_bad_lines += 1
                if len(report.bad_lines) < 5:
                    report.bad_lines.append(result[2])
                continue
            _, _, num_bytes, encoded, source = result
            report.num_bytes += num_bytes
            for key in keys:
                tokens, lengths = encoded[key]
                report.num_empty_documents += len(tokens) == 0
                num_tokens[key] += len(tokens)
                writers[key].add_document(tokens, lengths)
                tallies[key].add(source, len(tokens))
            if log_interval and report.num_lines % log_interval == 0:
                _print_progress(report, started)
        for key in keys:
            if num_tokens[key] == 0:
                raise DataError(f"{where}: no documents with {key!r} tokens"
                                + (f" ({report.num_bad_lines} bad lines skipped)" if report.num_bad_lines else "")
                                + "; add documents or remove the file")
        counts_per_key = {key: writers[key].commit(overwrite=overwrite) for key in keys}
    finally:
        for w in writers.values():
            w.discard()
    for key, counts in counts_per_key.items():
        report.num_documents[key] = counts.num_documents
        report.num_sequences[key] = counts.num_sequences
        report.num_tokens[key] = counts.num_tokens
        report.sources[key] = tallies[key].records()
    report.elapsed_s = time.perf_counter() - started
    _log_skipped(report, where)
    return report


def _log_skipped(report: FileReport, where: str) -> None:
    if report.num_bad_lines:
        logger.warning("%s: skipped %d bad line(s) of %d; first: %s", where, report.num_bad_lines,
                       report.num_lines, report.bad_lines[0])
    if report.num_empty_documents:
        logger.info("%s: %d document(s) without tokens (kept as empty documents, as Megatron-LM does)", where,
                    report.num_empty_documents)


def _print_progress(report: FileReport, started: float) -> None:
    import sys

    elapsed = max(time.perf_counter() - started, 1e-9)
    print(f"Processed {report.num_lines} documents ({report.num_lines / elapsed:.1f} docs/s, "
          f"{report.num_bytes / elapsed / 1024 / 1024:.2f} MB/s).", file=sys.stderr)


# ---- a corpus directory -----------------------------------------------------------------------------
def check_manifest_tokenizer(manifest_path: Path, ident: TokenizerIdentity) -> None:
    """Refuse to add to an output directory whose ``domains.json`` used another tokenizer."""
    from .fileio import read_json

    obj = read_json(manifest_path)
    old = (obj.get("tokenizer") or {}) if isinstance(obj, dict) else {}
    if old.get("sha256") != ident.sha256:
        raise DataError(f"{manifest_path} was built with tokenizer {old.get('model')!r} (sha256 "
                        f"{str(old.get('sha256'))[:12]}...), but {' '.join(ident.spec.megatron_flags())} has sha256 "
                        f"{ident.sha256[:12]}...; use the same tokenizer, another --output-dir, or "
                        "--overwrite to rebuild everything with the new tokenizer")


def preprocess_corpus(corpus_dir: str | os.PathLike, output_dir: str | os.PathLike,
                      tokenizer: TokenizerSpec | str | os.PathLike, workers: int = 2, *, append_eod: bool = True,
                      split_sentences: bool = False, skip_bad: bool = False, overwrite: bool = False,
                      reuse: bool = False, domains: Sequence[str] | None = None,
                      punkt_dir: str | os.PathLike | None = None, reports: list | None = None,
                      eval_only: Sequence[str] = ()) -> Path:
    """Preprocess every ``<corpus_dir>/<domain>/<split>.jsonl``; return the path of ``domains.json``.

    ``tokenizer``: a :class:`TokenizerSpec`, or the path of a SentencePiece model. ``eval_only`` names domains
    marked evaluation-only in ``domains.json`` (tokenized and evaluated, never trained on; ``manifest.py``); they
    must be among the preprocessed domains. ``append_eod`` (default on) ends every document with the tokenizer's
    EOD id, as GPT training needs. ``reuse`` returns an existing, complete ``domains.json`` built with the same
    tokenizer without work. ``reports`` (a list) receives one :class:`FileReport` per file.
    """
    from .manifest import Domain, DomainRegistry, PrefixInfo, TokenizerInfo
    ident = identify_spec(as_spec(tokenizer))
    output_dir = Path(output_dir)
    manifest_path = output_dir / DOMAINS_FILE
    corpus = discover_corpus(corpus_dir, domains=domains)
    eval_only = tuple(sorted(set(eval_only)))
    missing = sorted(set(eval_only) - set(corpus))
    if missing:
        raise DataError(f"evaluation-only domain(s) {missing} are not among the preprocessed domains "
                        f"{sorted(corpus)}: add them to the corpus (or --domains), or drop them from --eval-only")
    if manifest_path.exists() and _settle_existing(manifest_path, corpus, corpus_dir, ident, eval_only,
                                                   overwrite=overwrite, reuse=reuse):
        return manifest_path
    level = "sentence" if split_sentences else "document"
    plan = {(name, split): str(output_dir / name / f"{split}_text_{level}")
            for name, files in corpus.items() for split in files}
    from .megatron.indexed import check_prefix_free

    for prefix in plan.values():
        check_prefix_free(prefix, overwrite)
    options = EncodeOptions(spec=ident.spec, json_keys=("text",), append_eod=append_eod,
                            split_sentences=split_sentences, punkt_dir=str(punkt_dir) if punkt_dir else None)
    splits_per_domain: dict[str, dict[str, tuple[PrefixInfo, ...]]] = {n: {} for n in corpus}
    with Encoder(options, workers=workers) as encoder:
        for (name, split), prefix in plan.items():
            report = preprocess_file(corpus[name][split], prefix, encoder, ident.vocab_size, skip_bad=skip_bad,
                                     overwrite=overwrite, prefixes={"text": prefix})
            if reports is not None:
                reports.append(report)
            logger.info("%s/%s: %d documents, %d tokens (%.1f MB in %.1f s)", name, split,
                        report.num_documents["text"], report.num_tokens["text"], report.num_bytes / 1e6,
                        report.elapsed_s)
            info = PrefixInfo(path=str(Path(prefix).resolve()), num_documents=report.num_documents["text"],
                              num_sequences=report.num_sequences["text"], num_tokens=report.num_tokens["text"],
                              **report.sources["text"])
            info.check_sources(prefix)  # the tally and the .idx agree
            splits_per_domain[name][split] = (info,)
    registry = DomainRegistry(
        domains=tuple(Domain(name=n, splits=s, evaluation_only=n in eval_only) for n, s in splits_per_domain.items()),
        tokenizer=TokenizerInfo.from_identity(ident),
    )
    return registry.save(manifest_path)


def _settle_existing(manifest_path: Path, corpus: dict[str, dict[str, Path]], corpus_dir, ident: TokenizerIdentity,
                     eval_only: tuple[str, ...], *, overwrite: bool, reuse: bool) -> bool:
    """Decide what an existing ``domains.json`` means: True when it can be reused as is (its evaluation-only
    roles updated if they changed); False when it was removed for a rebuild (``overwrite``) or is to be added to.
    Refuses another tokenizer, or a reuse that does not match the corpus."""
    from .manifest import DomainRegistry
    from .megatron.indexed import read_counts

    if overwrite:
        manifest_path.unlink()  # nothing may look complete while the new outputs are written
        return False
    check_manifest_tokenizer(manifest_path, ident)
    if not reuse:
        return False
    registry = DomainRegistry.load(manifest_path)
    if not _complete(registry, corpus, read_counts):
        raise DataError(f"{manifest_path}: does not match {corpus_dir} (domains, splits or .idx "
                        "files differ); pass --overwrite to rebuild")
    if registry.eval_only_names != eval_only:
        registry.with_evaluation_only(eval_only).save(manifest_path)  # same data, other roles
        logger.info("reusing %s (complete, same tokenizer); evaluation-only now %s", manifest_path, list(eval_only))
    else:
        logger.info("reusing %s (complete, same tokenizer)", manifest_path)
    return True


def _complete(registry, corpus: dict[str, dict[str, Path]], read_counts) -> bool:
    if set(registry.all_names) != set(corpus):
        return False
    for d in registry.domains:
        if set(d.splits) != set(corpus[d.name]):
            return False
        for plist in d.splits.values():
            for p in plist:
                try:
                    counts = read_counts(p.path)
                except (DataError, FileNotFoundError):
                    return False
                if (counts.num_tokens, counts.num_documents) != (p.num_tokens, p.num_documents):
                    return False
    return True


def preprocess_jsonl(input_path: str | os.PathLike | Sequence[str | os.PathLike], output_prefix: str | os.PathLike,
                     tokenizer: TokenizerSpec | str | os.PathLike, workers: int = 1, *,
                     json_keys: Sequence[str] = ("text",), append_eod: bool = False, split_sentences: bool = False,
                     skip_bad: bool = False, overwrite: bool = False, punkt_dir: str | os.PathLike | None = None,
                     partitions: int = 1, keep_sequential_samples: bool = False,
                     log_interval: int = 0) -> FileReport:
    """JSONL file(s) -> ``<output_prefix>_<key>_{document|sentence}`` per key (Megatron-LM's naming)."""
    spec = as_spec(tokenizer)
    if not json_keys or len(set(json_keys)) != len(json_keys):
        raise RegmixError(f"--json-keys {list(json_keys)}: give one or more distinct keys")
    options = EncodeOptions(spec=spec, json_keys=tuple(json_keys), append_eod=append_eod,
                            split_sentences=split_sentences, punkt_dir=str(punkt_dir) if punkt_dir else None)
    with Encoder(options, workers=workers) as encoder:
        return preprocess_file(input_path, output_prefix, encoder, skip_bad=skip_bad, overwrite=overwrite,
                               partitions=partitions, keep_sequential_samples=keep_sequential_samples,
                               log_interval=log_interval)

"""JSONL -> Megatron indexed datasets (``.bin``/``.idx``) and the ``domains.json`` manifest.

Two entry points:

- :func:`preprocess_file`: one JSONL file -> one prefix per JSON key, named like Megatron-LM's
  ``tools/preprocess_data.py``: ``<output_prefix>_<key>_document`` (``_sentence`` with sentence splitting).
- :func:`preprocess_corpus`: a corpus directory ``<corpus>/<domain>/<split>.jsonl`` ->
  ``<out>/<domain>/<split>_text_document.{bin,idx}`` and ``<out>/domains.json`` (token counts read back from
  the ``.idx`` files, tokenizer identity).

Lines are parsed, validated and tokenized in a ``multiprocessing`` pool of ``workers`` processes; results
come back in input order, so 1 and N workers write byte-identical files. Bad lines (malformed JSON, missing
key, invalid UTF-8, non-string value) raise :class:`DataError` naming file and line, or with ``skip_bad`` are
skipped and counted. Empty documents (no tokens) are skipped and counted: Megatron gains nothing from them.

Every ``.bin``/``.idx`` pair is written under a temporary prefix and renamed when complete (``.idx`` last);
``domains.json`` is written last. An interrupted run never leaves output that looks complete.

This module imports no megatron; writing goes through ``regmix_megatron.megatron.indexed`` (imported when
used).
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from .corpus_reader import discover_corpus, iter_lines, parse_line
from .errors import DataError, RegmixError
from .sentences import split_pieces
from .tokenizer import identify, load_processor

logger = logging.getLogger(__name__)

DOMAINS_FILE = "domains.json"


# ---- encoding (runs in worker processes) ------------------------------------------------------------
@dataclass(frozen=True)
class EncodeOptions:
    model_path: str
    json_keys: tuple[str, ...] = ("text",)
    append_eod: bool = False
    split_sentences: bool = False
    punkt_dir: str | None = None


_WORKER: dict = {}


def _init_worker(options: EncodeOptions) -> None:
    _WORKER.clear()
    _WORKER["options"] = options
    sp = load_processor(options.model_path)
    _WORKER["sp"] = sp
    _WORKER["eod"] = sp.eos_id()
    if options.split_sentences:
        from .sentences import load_splitter

        _WORKER["splitter"] = load_splitter(options.punkt_dir)


def _encode_batch(task: tuple[str, list[tuple[int, bytes]]]) -> list[tuple]:
    """Parse and tokenize a batch of lines. Each result is ``("ok", line_no, num_bytes, {key: (tokens,
    lengths)})`` or ``("bad", line_no, message)``."""
    path, batch = task
    opts: EncodeOptions = _WORKER["options"]
    sp, eod = _WORKER["sp"], _WORKER["eod"]
    splitter = _WORKER.get("splitter")
    results: list[tuple] = []
    pieces: list[str] = []  # every piece of every document of the batch, encoded in one call
    layout: list[tuple[int, str, int]] = []  # (result index, key, number of pieces)
    for line_no, raw in batch:
        try:
            doc = parse_line(raw, path, line_no, opts.json_keys)
        except DataError as exc:
            results.append(("bad", line_no, str(exc)))
            continue
        for key in opts.json_keys:
            text = doc[key]
            parts = split_pieces(splitter, text) if splitter is not None else ([text] if text else [])
            pieces.extend(parts)
            layout.append((len(results), key, len(parts)))
        results.append(("ok", line_no, len(raw) + 1, {}))
    encoded = sp.encode(pieces, num_threads=1) if pieces else []
    cursor = 0
    for index, key, num_pieces in layout:
        ids = [e for e in encoded[cursor:cursor + num_pieces] if e]
        cursor += num_pieces
        if ids and opts.append_eod:
            ids[-1] = list(ids[-1]) + [eod]
        lengths = np.fromiter((len(e) for e in ids), dtype=np.int32, count=len(ids))
        tokens = (np.concatenate([np.asarray(e, dtype=np.int32) for e in ids]) if ids
                  else np.zeros(0, dtype=np.int32))
        results[index][3][key] = (tokens, lengths)
    return results


class Encoder:
    """Tokenizes JSONL files with ``workers`` processes (in-process for 1), results in input order."""

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

    def __enter__(self) -> "Encoder":
        # In-process first: a model or Punkt directory that fails to load raises here, instead of failing in
        # every pool initializer (multiprocessing would restart those forever).
        _init_worker(self.options)
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

    def _tasks(self, path: Path) -> Iterator[tuple[str, list[tuple[int, bytes]]]]:
        batch: list[tuple[int, bytes]] = []
        num_bytes = 0
        for item in iter_lines(path):
            batch.append(item)
            num_bytes += len(item[1])
            if len(batch) >= self.batch_lines or num_bytes >= self.batch_bytes:
                yield str(path), batch
                batch, num_bytes = [], 0
        if batch:
            yield str(path), batch

    def encode_file(self, path: str | os.PathLike) -> Iterator[tuple]:
        tasks = self._tasks(Path(path))
        if self._pool is None:
            batches = map(_encode_batch, tasks)
        else:
            batches = self._pool.imap(_encode_batch, tasks, chunksize=1)
        for results in batches:
            yield from results


# ---- one file ---------------------------------------------------------------------------------------
@dataclass
class FileReport:
    """What preprocessing one JSONL file produced and skipped."""

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
    num_bytes: int = 0
    elapsed_s: float = 0.0
    bad_lines: list[str] = field(default_factory=list)
    """The first few skipped-line messages."""


def output_prefixes(output_prefix: str | os.PathLike, json_keys: Sequence[str],
                    split_sentences: bool) -> dict[str, str]:
    level = "sentence" if split_sentences else "document"
    return {key: f"{output_prefix}_{key}_{level}" for key in json_keys}


def preprocess_file(input_path: str | os.PathLike, output_prefix: str | os.PathLike, encoder: Encoder,
                    vocab_size: int, skip_bad: bool = False, overwrite: bool = False,
                    prefixes: dict[str, str] | None = None) -> FileReport:
    """Tokenize one JSONL file into one indexed dataset per JSON key (``prefixes`` overrides the names)."""
    from .megatron.indexed import IndexedWriter, check_prefix_free

    input_path = Path(input_path)
    if not input_path.is_file():
        raise RegmixError(f"--input {input_path}: no such file")
    keys = encoder.options.json_keys
    prefixes = prefixes or output_prefixes(output_prefix, keys, encoder.options.split_sentences)
    for prefix in prefixes.values():
        check_prefix_free(prefix, overwrite)
    report = FileReport(input=str(input_path), prefixes=dict(prefixes))
    started = time.perf_counter()
    writers = {key: IndexedWriter(prefixes[key], vocab_size) for key in keys}
    try:
        for result in encoder.encode_file(input_path):
            report.num_lines += 1
            if result[0] == "bad":
                if not skip_bad:
                    raise DataError(result[2])
                report.num_bad_lines += 1
                if len(report.bad_lines) < 5:
                    report.bad_lines.append(result[2])
                continue
            _, _, num_bytes, encoded = result
            report.num_bytes += num_bytes
            for key in keys:
                tokens, lengths = encoded[key]
                if len(tokens) == 0:
                    report.num_empty_documents += 1
                    continue
                writers[key].add_document(tokens, lengths)
        for key in keys:
            if writers[key].num_documents == 0:
                raise DataError(f"{input_path}: no documents with {key!r} text"
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
    report.elapsed_s = time.perf_counter() - started
    if report.num_bad_lines:
        logger.warning("%s: skipped %d bad line(s) of %d; first: %s", input_path, report.num_bad_lines,
                       report.num_lines, report.bad_lines[0])
    if report.num_empty_documents:
        logger.info("%s: skipped %d empty document(s)", input_path, report.num_empty_documents)
    return report


# ---- a corpus directory -----------------------------------------------------------------------------
def check_manifest_tokenizer(manifest_path: Path, sha256: str, model_path: str) -> None:
    """Refuse to add to an output directory whose ``domains.json`` used another tokenizer."""
    from .fileio import read_json

    obj = read_json(manifest_path)
    old = (obj.get("tokenizer") or {}) if isinstance(obj, dict) else {}
    if old.get("sha256") != sha256:
        raise DataError(f"{manifest_path} was built with tokenizer {old.get('model')!r} (sha256 "
                        f"{str(old.get('sha256'))[:12]}...), but --tokenizer-model {model_path} has sha256 "
                        f"{sha256[:12]}...; use the same --tokenizer-model, another --output-dir, or "
                        "--overwrite to rebuild everything with the new tokenizer")


def preprocess_corpus(corpus_dir: str | os.PathLike, output_dir: str | os.PathLike,
                      tokenizer_model: str | os.PathLike, workers: int = 2, *, append_eod: bool = True,
                      split_sentences: bool = False, skip_bad: bool = False, overwrite: bool = False,
                      reuse: bool = False, domains: Sequence[str] | None = None,
                      punkt_dir: str | os.PathLike | None = None, reports: list | None = None,
                      eval_only: Sequence[str] = ()) -> Path:
    """Preprocess every ``<corpus_dir>/<domain>/<split>.jsonl``; return the path of ``domains.json``.

    ``eval_only`` names domains marked evaluation-only in ``domains.json`` (tokenized and evaluated, never
    trained on; ``manifest.py``); they must be among the preprocessed domains.
    ``append_eod`` (default on) ends every document with the tokenizer's EOD id, as GPT training needs.
    ``reuse`` returns an existing, complete ``domains.json`` built with the same tokenizer without work.
    ``reports`` (a list) receives one :class:`FileReport` per file.
    """
    from .manifest import Domain, DomainRegistry, PrefixInfo, TokenizerInfo
    from .megatron.indexed import read_counts
    ident = identify(tokenizer_model)
    output_dir = Path(output_dir)
    manifest_path = output_dir / DOMAINS_FILE
    corpus = discover_corpus(corpus_dir, domains=domains)
    eval_only = tuple(sorted(set(eval_only)))
    missing = sorted(set(eval_only) - set(corpus))
    if missing:
        raise DataError(f"evaluation-only domain(s) {missing} are not among the preprocessed domains "
                        f"{sorted(corpus)}: add them to the corpus (or --domains), or drop them from --eval-only")
    if manifest_path.exists():
        if not overwrite:
            check_manifest_tokenizer(manifest_path, ident.sha256, ident.model)
            if reuse:
                registry = DomainRegistry.load(manifest_path)
                if _complete(registry, corpus, read_counts) and registry.eval_only_names != eval_only:
                    registry = registry.with_evaluation_only(eval_only)  # same data, other roles
                    registry.save(manifest_path)
                    logger.info("reusing %s (complete, same tokenizer); evaluation-only now %s", manifest_path,
                                list(eval_only))
                    return manifest_path
                if _complete(registry, corpus, read_counts):
                    logger.info("reusing %s (complete, same tokenizer)", manifest_path)
                    return manifest_path
                raise DataError(f"{manifest_path}: does not match {corpus_dir} (domains, splits or .idx "
                                "files differ); pass --overwrite to rebuild")
        else:
            manifest_path.unlink()  # nothing may look complete while the new outputs are written
    level = "sentence" if split_sentences else "document"
    plan = {(name, split): str(output_dir / name / f"{split}_text_{level}")
            for name, files in corpus.items() for split in files}
    from .megatron.indexed import check_prefix_free

    for prefix in plan.values():
        check_prefix_free(prefix, overwrite)
    options = EncodeOptions(model_path=ident.model, json_keys=("text",), append_eod=append_eod,
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
            splits_per_domain[name][split] = (PrefixInfo(
                path=str(Path(prefix).resolve()), num_documents=report.num_documents["text"],
                num_sequences=report.num_sequences["text"], num_tokens=report.num_tokens["text"]),)
    registry = DomainRegistry(
        domains=tuple(Domain(name=n, splits=s, evaluation_only=n in eval_only) for n, s in splits_per_domain.items()),
        tokenizer=TokenizerInfo(type=ident.type, model=ident.model, sha256=ident.sha256,
                                vocab_size=ident.vocab_size, eod_id=ident.eod_id),
    )
    return registry.save(manifest_path)


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


def preprocess_jsonl(input_path: str | os.PathLike, output_prefix: str | os.PathLike,
                     tokenizer_model: str | os.PathLike, workers: int = 1, *, json_keys: Sequence[str] = ("text",),
                     append_eod: bool = False, split_sentences: bool = False, skip_bad: bool = False,
                     overwrite: bool = False, punkt_dir: str | os.PathLike | None = None) -> FileReport:
    """One JSONL file -> ``<output_prefix>_<key>_{document|sentence}`` per key (Megatron-LM's naming)."""
    ident = identify(tokenizer_model)
    if not json_keys or len(set(json_keys)) != len(json_keys):
        raise RegmixError(f"--json-keys {list(json_keys)}: give one or more distinct keys")
    options = EncodeOptions(model_path=ident.model, json_keys=tuple(json_keys), append_eod=append_eod,
                            split_sentences=split_sentences, punkt_dir=str(punkt_dir) if punkt_dir else None)
    with Encoder(options, workers=workers) as encoder:
        return preprocess_file(input_path, output_prefix, encoder, ident.vocab_size, skip_bad=skip_bad,
                               overwrite=overwrite)

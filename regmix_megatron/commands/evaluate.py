"""``regmix-megatron evaluate RUN_DIR``: score a finished run on another split or other domains, no training."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "evaluate",
        help="score a finished run's last checkpoint on another split or other domains (no training)",
        description="Loads the newest checkpoint of RUN_DIR (a run directory of `regmix-megatron train`), "
        "evaluates the fixed windows of --split for the run's evaluated domains (or --domains), prints the "
        "per-domain losses and writes RUN_DIR/evaluations/<split>.json.",
    )
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run directory with config.yaml and checkpoints/")
    p.add_argument("--split", default="test", choices=("train", "valid", "test"), help="split to score (test)")
    p.add_argument("--domains", metavar="A,B,...", help="domains to score (default: those the run evaluated)")
    p.add_argument("--num-tokens", type=int, default=None, metavar="N",
                   help="tokens per domain (default: the run's eval.num_tokens_per_domain)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import logging

    from ..errors import RegmixError
    from ..megatron.rescore import EVALUATIONS_DIR, score_run

    if args.num_tokens is not None and args.num_tokens < 1:
        raise RegmixError(f"--num-tokens {args.num_tokens}: use a positive number of tokens")
    if not getattr(args, "verbose", False):
        logging.getLogger("megatron.core").setLevel(logging.WARNING)
    domains = [d.strip() for d in args.domains.split(",") if d.strip()] if args.domains else None
    doc = score_run(args.run_dir, split=args.split, domains=domains, num_tokens_per_domain=args.num_tokens)
    step = f"step {doc['step']}" + ("" if doc["final"] else " (not the final step: the run is unfinished)")
    print(f"run {doc['run_id']}, {step}, {args.split} split:")
    for name, loss in doc["loss"].items():
        print(f"  {name:<14} {loss:.4f}  ({doc['num_tokens'][name]:,} tokens)")
    print(f"wrote {args.run_dir}/{EVALUATIONS_DIR}/{args.split}.json")
    return 0

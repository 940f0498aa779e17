"""``regmix-megatron domains``: show a ``domains.json`` and set which domains are evaluation-only."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "domains",
        help="show domains.json (token counts, roles); mark domains evaluation-only",
        description="Evaluation-only domains are tokenized and evaluated in every run (valid and test splits) but "
        "never sampled, trained on, or put into a training blend.",
    )
    sub = p.add_subparsers(dest="domains_command", metavar="ACTION")
    show = sub.add_parser("show", help="token counts per domain and split, and each domain's role")
    show.add_argument("manifest", metavar="DOMAINS_JSON", help="domains.json (or its directory)")
    show.set_defaults(func=run_show)
    mark = sub.add_parser("eval-only", help="set exactly which domains are evaluation-only (rewrites domains.json)")
    mark.add_argument("manifest", metavar="DOMAINS_JSON", help="domains.json (or its directory)")
    mark.add_argument("names", nargs="*", metavar="DOMAIN",
                      help="the evaluation-only domains (none given: every domain is a training domain)")
    mark.set_defaults(func=run_eval_only)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def print_domains(registry) -> None:
    """The token table of a registry, one line per domain with its role."""
    print(f"{'domain':<14}{'role':>10}" + "".join(f"{s + ' tokens':>16}" for s in ("train", "valid", "test")))
    for d in registry.domains:
        role = "eval-only" if d.evaluation_only else "train"
        print(f"{d.name:<14}{role:>10}" + "".join(f"{d.num_tokens(s):>16,}" for s in ("train", "valid", "test")))


def run_show(args: argparse.Namespace) -> int:
    from ..manifest import DomainRegistry

    registry = DomainRegistry.load(args.manifest)
    print_domains(registry)
    return 0


def run_eval_only(args: argparse.Namespace) -> int:
    from ..manifest import DomainRegistry

    registry = DomainRegistry.load(args.manifest).with_evaluation_only(args.names)
    path = registry.save(registry.path)
    print_domains(registry)
    print(f"wrote {path} (run ids of runs on this data change with the roles: evaluation-only domains are part "
          "of the data's identity)")
    return 0

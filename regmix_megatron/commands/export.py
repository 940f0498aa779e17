"""``regmix-megatron export``: a mixture as the files Megatron-LM's command line reads.

Writes into ``--output-dir``: ``data_path.txt`` (the ``--data-path`` value), ``data_args.txt`` (for
``--data-args-path``), ``per_split_data_args.json`` (for ``--per-split-data-args-path``: weighted train
blend, every domain's valid/test prefixes unweighted for ``--multiple-validation-sets``) and ``mixture.json``.
"""

from __future__ import annotations

import argparse

from .mixture_flags import add_renormalize


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "export",
        help="write a mixture as Megatron-LM --data-path / --data-args-path / --per-split-data-args-path files",
        description="Export a mixture for Megatron-LM: zero-weight domains dropped, multi-prefix domains split by "
        "token count, weights written so they round-trip exactly. The mixture's domains must match domains.json.",
    )
    p.add_argument("--mixture", required=True, metavar="FILE",
                   help="mixture JSON/YAML ({domain: weight} or {'weights': {...}}), or FILE.jsonl:INDEX for line "
                        "INDEX (0-based) of `regmix-megatron sample` output")
    p.add_argument("--index", type=int, default=None,
                   help="with --mixture FILE.jsonl: the 0-based line to export (same as FILE.jsonl:INDEX)")
    p.add_argument("--domains", required=True, metavar="DOMAINS_JSON", help="domains.json from `preprocess`")
    p.add_argument("--output-dir", required=True, metavar="DIR")
    add_renormalize(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..errors import RegmixError
    from ..export import export_mixture, load_mixture_arg
    from ..manifest import DomainRegistry

    spec = args.mixture
    if args.index is not None:
        if not spec.endswith(".jsonl"):
            raise RegmixError(f"--index {args.index} needs --mixture FILE.jsonl (a `sample` output), got {spec}")
        if args.index < 0:
            raise RegmixError(f"--index {args.index}: use a 0-based line number >= 0")
        spec = f"{spec}:{args.index}"
    registry = DomainRegistry.load(args.domains)
    try:
        mixture = load_mixture_arg(spec, renormalize=args.renormalize)
    except RegmixError as exc:
        raise RegmixError(f"--mixture: {exc}") from None
    try:
        files = export_mixture(registry, mixture, args.output_dir, what="--output-dir")
    except RegmixError as exc:
        raise RegmixError(f"--mixture {spec} with --domains {args.domains}: {exc}") from None
    dropped = [d for d, w in mixture.as_dict().items() if w == 0]
    print(f"mixture {mixture.hash}: {len(mixture.nonzero())} domains in the training blend"
          + (f" (zero weight, dropped: {', '.join(dropped)})" if dropped else ""))
    for kind, path in files.items():
        print(f"  {kind}: {path}")
    print(f"use: --data-args-path {files['data_args']}   or   --per-split-data-args-path "
          f"{files['per_split_data_args']} --multiple-validation-sets")
    return 0

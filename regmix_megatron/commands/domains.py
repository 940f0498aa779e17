"""``regmix-megatron domains import|show|eval-only``: a ``domains.json`` from existing Megatron ``.bin/.idx``
prefixes, a look at one, or which of its domains are evaluation-only. ``import`` re-tokenizes nothing: counts come
from each ``.idx``, the tokenizer is the one you name with Megatron-LM's flags (or in the YAML); see
:mod:`regmix_megatron.data.domains_import` for the YAML layout. Evaluation-only domains are tokenized and evaluated in
every run (valid and test splits) but never sampled, trained on, or put into a training blend."""

from __future__ import annotations

import argparse

from .tokenizer_flags import add_tokenizer_arguments, spec_from_args

EXAMPLE = """example YAML (paths relative to the file):

  tokenizer: {type: GPT2BPETokenizer, vocab_file: tok/vocab.json, merge_file: tok/merges.txt}
  domains:
    web:  {train: [data/web_00_text_document, data/web_01_text_document], valid: data/web_valid_text_document}
    code: {train: data/code_train_text_document, valid: data/code_valid_text_document}

or the same with flags:
  regmix-megatron domains import --prefix web:train=data/web_00_text_document,data/web_01_text_document \\
      --prefix web:valid=data/web_valid_text_document --prefix code:train=... --prefix code:valid=... \\
      --tokenizer-type GPT2BPETokenizer --vocab-file tok/vocab.json --merge-file tok/merges.txt \\
      --output data/domains.json
"""


def register(subparsers) -> None:
    p = subparsers.add_parser("domains", help="domains.json from existing .bin/.idx prefixes (import), or show one",
                              description=__doc__)
    sub = p.add_subparsers(dest="domains_command", metavar="ACTION")
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])

    imp = sub.add_parser(
        "import", help="write domains.json for Megatron prefixes that exist (exact counts from each .idx)",
        description="Map domain names to existing Megatron .bin/.idx prefixes per split and name the tokenizer "
        "they were made with; writes domains.json (exact token counts read from each .idx, the tokenizer's files "
        "and sha256, vocabulary size and EOD id) without re-tokenizing. Every domain needs train and valid "
        "prefixes; test is optional (all domains or none).",
        epilog=EXAMPLE, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = imp.add_argument_group("prefixes (one form)")
    src.add_argument("--spec", metavar="YAML", help="YAML mapping of domains to prefixes (and the tokenizer)")
    src.add_argument("--prefix", action="append", default=[], metavar="DOMAIN:SPLIT=PREFIX[,PREFIX]",
                     help="a domain's prefix(es) of one split (repeatable; path without .bin/.idx)")
    add_tokenizer_arguments(imp)
    imp.add_argument("--output", required=True, metavar="DOMAINS_JSON", help="the domains.json to write")
    imp.add_argument("--scan-tokens", type=_scan_tokens, default=1_000_000, metavar="N",
                     help="check the first N token ids of each .bin against the vocabulary (default 1M; 0: no "
                          "scan; 'all': every token)")
    imp.add_argument("--overwrite", action="store_true", help="replace an existing --output")
    imp.set_defaults(func=_import)

    show = sub.add_parser("show", help="tokens per domain and split, and the tokenizer's Megatron-LM flags")
    show.add_argument("domains_json", metavar="DOMAINS_JSON", help="a domains.json (or its directory)")
    show.set_defaults(func=_show)

    mark = sub.add_parser("eval-only", help="set exactly which domains are evaluation-only (rewrites domains.json)")
    mark.add_argument("domains_json", metavar="DOMAINS_JSON", help="a domains.json (or its directory)")
    mark.add_argument("names", nargs="*", metavar="DOMAIN",
                      help="the evaluation-only domains (none given: every domain is a training domain)")
    mark.set_defaults(func=_eval_only)


def _scan_tokens(text: str) -> int | None:
    from .numbers import count

    return None if text.lower() == "all" else count(text)


def _import(args: argparse.Namespace) -> int:
    from ..data.domains_import import describe_registry, import_domains, load_import_spec, parse_prefix_args
    from ..errors import RegmixError
    from ..fileio import check_output_paths

    check_output_paths({"--spec": args.spec, "--tokenizer-model": args.tokenizer_model,
                        "--vocab-file": args.vocab_file, "--merge-file": args.merge_file}, files={"--output": args.output})
    if bool(args.spec) == bool(args.prefix):
        raise RegmixError("give the prefixes as --spec FILE.yaml or as --prefix DOMAIN:SPLIT=PREFIX flags (one form)")
    spec = load_import_spec(args.spec) if args.spec else parse_prefix_args(args.prefix)
    flags_given = args.tokenizer_type or args.tokenizer_model or args.vocab_file or args.merge_file
    if spec.tokenizer is not None and flags_given:
        raise RegmixError(f"{args.spec} names the tokenizer already: drop the --tokenizer-*/--vocab-file flags, or "
                          "the 'tokenizer:' mapping")
    if spec.tokenizer is None:
        if not flags_given:
            raise RegmixError("name the tokenizer the data was made with: --tokenizer-type TYPE and its files "
                              "(--tokenizer-model, or --vocab-file/--merge-file for GPT2BPETokenizer)")
        from dataclasses import replace

        spec = replace(spec, tokenizer=spec_from_args(args))
    registry = import_domains(spec, args.output, scan_tokens=args.scan_tokens, overwrite=args.overwrite)
    print("\n".join(describe_registry(registry)))
    print(f"wrote {args.output}")
    print(f"next: regmix-megatron sample --domains-json {args.output} --output mixtures.jsonl")
    return 0


def _show(args: argparse.Namespace) -> int:
    from ..data.manifest import DomainRegistry

    registry = DomainRegistry.load(args.domains_json)
    print(f"{registry.path}:")
    print_domains(registry)
    return 0


def print_domains(registry) -> None:
    """The token table of a registry: one line per domain with its role, then the tokenizer."""
    from ..data.domains_import import describe_registry

    print("\n".join(describe_registry(registry)))


def _eval_only(args: argparse.Namespace) -> int:
    from ..data.manifest import DomainRegistry

    registry = DomainRegistry.load(args.domains_json).with_evaluation_only(args.names)
    path = registry.save(registry.path)
    print_domains(registry)
    print(f"wrote {path} (run ids of runs on this data change with the roles: evaluation-only domains are part "
          "of the data's identity)")
    return 0

"""``regmix-megatron tokenizer train``: train (or adopt) the SentencePiece tokenizer and write its metadata.

Also the engine of ``tools/train_tokenizer.py`` (same flags, see :func:`add_train_arguments`).
"""

from __future__ import annotations

import argparse
import json

from .flags import add_renamed
from .numbers import count


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("tokenizer", help="train a SentencePiece BPE tokenizer, or show one",
                              description="Tokenizer commands.")
    sub = p.add_subparsers(dest="tokenizer_command", metavar="ACTION")
    t = sub.add_parser(
        "train", help="train a SentencePiece BPE on a domain-balanced sample (or adopt an existing .model)",
        description="Writes OUT/tokenizer.model, OUT/tokenizer_metadata.json (read by megatron-core's "
        "MegatronTokenizer.from_pretrained) and OUT/tokenizer_info.json (sha256, special ids, training sample).",
    )
    add_train_arguments(t)
    t.set_defaults(func=run_train)
    i = sub.add_parser("info", help="print a tokenizer's identity (sha256, vocab size, special ids)")
    i.add_argument("--tokenizer-model", required=True, metavar="MODEL", help=".model file or tokenizer dir")
    i.set_defaults(func=run_info)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def add_train_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--input", metavar="CORPUS_DIR", help="corpus directory of <domain>/<split>.jsonl")
    p.add_argument("--output-dir", required=True, metavar="DIR", help="where tokenizer.model + metadata go")
    p.add_argument("--vocab-size", type=count, default=8000, help="vocabulary size incl. specials (default 8000)")
    p.add_argument("--tokenizer-model", metavar="MODEL",
                   help="use this existing SentencePiece .model instead of training (copied to --output-dir)")
    p.add_argument("--sample-bytes-per-domain", type=count, default=4_000_000,
                   help="UTF-8 bytes sampled from each domain (capped to the smallest domain; default 4e6)")
    p.add_argument("--split", default="train", help="corpus split to sample (default train)")
    p.add_argument("--domains", metavar="A,B,...", help="only these domains")
    p.add_argument("--seed", type=count, default=1234, help="sampling seed (default 1234)")
    add_renamed(p, "--num-threads", "--threads", dest="num_threads", type=count, default=2,
                help="SentencePiece training threads (default 2)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing tokenizer in --output-dir")
    p.add_argument("--skip-bad", action="store_true", help="skip malformed JSONL lines (counted in the log)")


def run_train(args: argparse.Namespace) -> int:
    from ..data.tokenizer_training import (
        MIN_VOCAB_SIZE,
        TokenizerTrainConfig,
        adopt_tokenizer,
        identify,
        train_tokenizer,
    )
    from ..errors import RegmixError
    from ..fileio import check_output_paths

    check_output_paths({"--input": args.input, "--tokenizer-model": args.tokenizer_model},
                       dirs={"--output-dir": args.output_dir})
    if args.tokenizer_model:
        if args.input:
            raise RegmixError("give either --input CORPUS_DIR (train) or --tokenizer-model MODEL (adopt), not both")
        model = adopt_tokenizer(args.tokenizer_model, args.output_dir, overwrite=args.overwrite)
    else:
        if not args.input:
            raise RegmixError("--input CORPUS_DIR is required to train (or pass --tokenizer-model MODEL)")
        if args.vocab_size < MIN_VOCAB_SIZE:
            raise RegmixError(f"--vocab-size {args.vocab_size}: use at least {MIN_VOCAB_SIZE} (256 byte pieces, "
                              "4 specials and the corpus' characters)")
        if args.sample_bytes_per_domain <= 0:
            raise RegmixError(f"--sample-bytes-per-domain {args.sample_bytes_per_domain}: use a positive number")
        config = TokenizerTrainConfig(vocab_size=args.vocab_size, sample_bytes_per_domain=args.sample_bytes_per_domain,
                                      seed=args.seed, split=args.split, num_threads=args.num_threads)
        model = train_tokenizer(args.input, args.output_dir, config,
                                domains=args.domains.split(",") if args.domains else None, overwrite=args.overwrite,
                                skip_bad=args.skip_bad)
    ident = identify(model)
    print(f"wrote {model} (vocab {ident.vocab_size}, eod {ident.eod_id}, sha256 {ident.sha256[:12]}...)")
    return 0


def run_info(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from ..data.tokenizer_training import identify, read_info

    out = asdict(identify(args.tokenizer_model))
    del out["spec"]  # the model path and its sha256 say it all for a SentencePiece model
    info = read_info(args.tokenizer_model)
    if info is not None:
        out["training"] = info.get("training")
    print(json.dumps(out, indent=2))
    return 0

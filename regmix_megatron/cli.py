"""``regmix-megatron``: one console script, one subcommand per pipeline stage.

Each subcommand lives in ``regmix_megatron/commands/<name>.py`` and exposes ``register(subparsers)``, which
adds its parser and sets ``func`` (called with the parsed args; returns an exit code). Command modules import
heavy libraries (torch, megatron, lightgbm) inside ``func`` only, so ``--help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from . import __version__
from .errors import RegmixError

#: (module under regmix_megatron.commands) in the order shown by --help.
COMMANDS = (
    "corpus",
    "tokenizer",
    "preprocess",
    "domains",
    "sample",
    "export",
    "train",
    "evaluate",
    "sweep",
    "fit",
    "search",
    "report",
    "run",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="regmix-megatron",
        description="RegMix data-mixture search for Megatron-LM: corpus -> tokenizer -> indexed datasets -> "
        "sample -> sweep -> fit -> search -> export.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"regmix_megatron.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"regmix_megatron.commands.{name}":
                continue  # not built yet
            raise
        module.register(sub)
    return parser


def setup_logging(verbose: bool = False) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )


def run_tool(prog: str, description: str, add_arguments, handler, argv: list[str] | None = None) -> int:
    """Entry point of a standalone ``tools/*.py`` script with Megatron-style flags: parse, log, run
    ``handler(args)``, and turn a ``RegmixError`` into ``prog: error: ...`` with exit status 2."""
    parser = argparse.ArgumentParser(prog=prog, description=description,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    args = parser.parse_args(argv)
    setup_logging()
    try:
        return int(handler(args) or 0)
    except RegmixError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except RegmixError as exc:
        print(f"regmix-megatron {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

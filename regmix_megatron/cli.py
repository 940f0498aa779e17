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
from .errors import run_guarded

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


class SuggestingParser(argparse.ArgumentParser):
    """argparse with "did you mean" for a mistyped subcommand, choice or flag (subparsers inherit the class)."""

    def error(self, message: str):
        import re

        from .errors import did_you_mean

        m = re.search(r"invalid choice: '([^']*)' \(choose from (.*)\)", message)
        if m:
            choices = re.findall(r"'([^']*)'", m.group(2))
            message += did_you_mean(m.group(1), choices)
        m = re.match(r"unrecognized arguments: (.*)", message)
        if m:
            flags = sorted(self._all_flags())
            for word in m.group(1).split():
                if word.startswith("--"):
                    hint = did_you_mean(word.split("=", 1)[0], flags)
                    if hint:
                        message += f" ({word}{hint})"
        super().error(message)

    def _all_flags(self) -> set[str]:
        """Every ``--flag`` of this parser and its subcommands (argparse reports a subcommand's unknown flag
        from the top-level parser)."""
        flags = {o for a in self._actions for o in a.option_strings if o.startswith("--")}
        for action in self._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub in action.choices.values():
                    flags |= sub._all_flags() if isinstance(sub, SuggestingParser) else set()
        return flags


def build_parser() -> argparse.ArgumentParser:
    parser = SuggestingParser(
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


#: Libraries whose INFO/DEBUG lines say nothing to a user (matplotlib's font search floods ``-v`` output).
QUIET_LIBRARIES = ("matplotlib", "PIL", "numba", "urllib3", "filelock", "fsspec", "asyncio")


def setup_logging(verbose: bool = False) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    for name in QUIET_LIBRARIES:
        logging.getLogger(name).setLevel(logging.WARNING)


def run_tool(prog: str, description: str, add_arguments, handler, argv: list[str] | None = None) -> int:
    """Entry point of a standalone ``tools/*.py`` script with Megatron-style flags: parse, log, run
    ``handler(args)``, and turn a ``RegmixError`` into ``prog: error: ...`` with exit status 2."""
    parser = SuggestingParser(prog=prog, description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    args = parser.parse_args(argv)
    setup_logging()
    return run_guarded(prog, lambda: handler(args))


def main(argv: list[str] | None = None) -> int:
    """The ``regmix-megatron`` entry point. Ctrl-C at any point, the start-up included (importing the command
    modules takes a moment), ends with one line and exit status 130, never a traceback."""
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        setup_logging(args.verbose)
    except KeyboardInterrupt:
        print("regmix-megatron: interrupted", file=sys.stderr)
        return 130
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    return run_guarded(f"regmix-megatron {args.command}", lambda: args.func(args), verbose=args.verbose)


if __name__ == "__main__":
    sys.exit(main())

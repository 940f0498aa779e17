"""Flag spelling shared by the commands: one name per concept (``--output-dir`` for folders, ``--output`` for the one
file a command writes, ``--domains-json`` for a ``domains.json`` path, ``--domains A,B`` for names, ``--num-*``
for counts), with the old spellings still accepted and a deprecation warning naming the new one."""

from __future__ import annotations

import argparse
import sys

#: Old flag -> new flag, for the help texts and the docs (the actions below enforce them per parser).
RENAMED_FLAGS = {
    "--domains (a domains.json path)": "--domains-json",
    "--cv-folds": "--num-folds",
    "--output-json": "--metrics-json",
    "--parallel": "--num-parallel",
    "--threads": "--num-threads",
    "sweep plan --output": "sweep plan --output-dir",
}


def warn_renamed(old: str, new: str) -> None:
    print(f"warning: {old} is deprecated and will be removed; use {new}", file=sys.stderr)


def _renamed_action(base: type, new: str, old: tuple[str, ...]) -> type:
    class Renamed(base):  # type: ignore[misc, valid-type]
        def __call__(self, parser, namespace, values, option_string=None):
            if option_string in old:
                warn_renamed(option_string, new)
            super().__call__(parser, namespace, values, option_string)

    return Renamed


def add_renamed(parser, new: str, *old: str, action: str = "store", **kwargs) -> argparse.Action:
    """``parser.add_argument(new, *old, ...)`` where the ``old`` spellings still work and warn."""
    base = {"store": argparse._StoreAction, "store_true": argparse._StoreTrueAction,
            "append": argparse._AppendAction}[action]
    return parser.add_argument(new, *old, action=_renamed_action(base, new, old), **kwargs)

"""The one flag every command that reads mixtures has: ``--renormalize`` (the mixture rule of
:mod:`regmix_megatron.mixtures.mixture`: weights sum to 1 within 1e-3, else an error that names this flag)."""

from __future__ import annotations

import argparse

from ..mixtures.mixture import RENORMALIZE_FLAG, SUM_TOLERANCE


def add_renormalize(parser: argparse.ArgumentParser | argparse._ArgumentGroup, what: str = "mixture") -> None:
    parser.add_argument(RENORMALIZE_FLAG, action="store_true",
                        help=f"rescale {what} weights that do not sum to 1 (within {SUM_TOLERANCE:g}) so that they "
                             "do, on purpose (default: refuse them, naming the file)")

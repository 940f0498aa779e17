"""The sampler's command-line flags, shared by ``sample`` and ``search`` (flag syntax only; the
:class:`~regmix_megatron.mixtures.sampler_config.SamplerConfig` is assembled by
:func:`regmix_megatron.mixtures.sampler_config.build_sampler_config`)."""

from __future__ import annotations

import argparse

from .numbers import count, number

#: SamplerConfig field -> CLI flag (errors name the flag the user typed).
FLAGS = {
    "num_samples": "--num-samples", "seed": "--seed", "max_epochs": "--max-epochs",
    "target_tokens": "--target-tokens", "cap_multiplier": "--cap-multiplier", "temperature": "--temperature",
    "min_weight": "--min-weight", "dedup_min_distance": "--dedup-min-distance", "fallback": "--fallback",
}
#: The default of ``--cap-multiplier`` ("not given"; None means "no cap").
UNSET = object()


def optional_float(text: str) -> float | None:
    """A number, or ``none``/``null``/``off`` for None."""
    if text.lower() in ("none", "null", "off"):
        return None
    try:
        return number(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number (or 'none')") from None


#: Token counts like 1000000, 1e9, 25B, 300M, 50k: the one number parser (``regmix_megatron.numbers``).
token_count = count


def add_cap_arguments(group) -> None:
    """The flags of the caps and the prior's shape, which the sweep's mixtures and the search pool share."""
    group.add_argument("--max-epochs", type=number, default=None,
                       help="epoch limit per domain; needs --target-tokens (cap = E * tokens_i / T)")
    group.add_argument("--target-tokens", type=token_count, default=None, metavar="T",
                       help="token budget of the run the mixtures are for (e.g. 25B, 300M)")
    group.add_argument("--cap-multiplier", type=optional_float, default=UNSET, metavar="X",
                       help="cap weight_i <= X * prior_i (default 15; 'none' disables)")
    group.add_argument("--temperature", type=number, default=None, help="prior temperature (default 0.5)")
    group.add_argument("--min-weight", type=number, default=None, help="zero weights below this (default 2e-4)")


def given_overrides(args: argparse.Namespace, fields) -> dict:
    """The SamplerConfig ``fields`` given on the command line (flags left at their default are absent)."""
    out = {}
    for name in fields:
        value = getattr(args, name)
        if name == "cap_multiplier":
            if value is not UNSET:
                out[name] = value
        elif value is not None:
            out[name] = value
    return out


def flag_error(exc: Exception) -> str:
    """An error message with each ``sampler.<field>`` it names followed by the flag that sets it."""
    msg = str(exc)
    for field, flag in FLAGS.items():
        if f"sampler.{field}" in msg:
            msg = msg.replace(f"sampler.{field}", f"{flag} (sampler.{field})")
    return msg

"""``regmix-megatron sample``: draw RegMix mixtures for the domains of a ``domains.json``.

Writes ``--output`` (JSONL, one mixture a line: ``{"index", "hash", "weights": {domain: weight}}``) and,
beside it, ``<output>.sampler.yaml`` (the resolved sampler config, registry, prior, bounds and statistics).
Both atomically; with ``--plot`` also a PNG of the per-domain weight distributions.
"""

from __future__ import annotations

import argparse
import logging
import re
from pathlib import Path

logger = logging.getLogger(__name__)

#: SamplerConfig field -> CLI flag (errors name the flag the user typed).
FLAGS = {
    "num_samples": "--num-samples", "seed": "--seed", "max_epochs": "--max-epochs",
    "target_tokens": "--target-tokens", "cap_multiplier": "--cap-multiplier", "temperature": "--temperature",
    "min_weight": "--min-weight", "dedup_min_distance": "--dedup-min-distance", "fallback": "--fallback",
}


_UNSET = object()


def _optional_float(text: str) -> float | None:
    if text.lower() in ("none", "null", "off"):
        return None
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number (or 'none')") from None


def _tokens(text: str) -> int:
    """Token counts like 1000000, 1e9, 25B, 300M, 50k."""
    m = re.fullmatch(r"\s*([0-9.eE+]+)\s*([kKmMbBtT]?)\s*", text)
    if not m:
        raise argparse.ArgumentTypeError(f"{text!r} is not a token count (e.g. 25000000000, 25B, 300M)")
    try:
        value = float(m.group(1))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a token count") from None
    value *= {"": 1, "k": 1e3, "m": 1e6, "b": 1e9, "t": 1e12}[m.group(2).lower()]
    return int(round(value))


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "sample",
        help="sample RegMix mixtures (Dirichlet around the token prior, with token/epoch caps)",
        description="Sample distinct mixtures with the RegMix sampler: prior from exact token counts, tempered "
        "prior, log-spaced Dirichlet strengths, minimum-weight zeroing, per-domain caps (cap multiplier, epoch "
        "limit for a target token budget, explicit bounds), pairwise deduplication. Reproducible by --seed.",
    )
    p.add_argument("--domains", required=True, metavar="DOMAINS_JSON", help="domains.json from `preprocess`")
    p.add_argument("--output", required=True, metavar="JSONL", help="mixtures file to write (one JSON a line)")
    p.add_argument("--config", metavar="YAML", help="sampler config (SamplerConfig fields); flags override it")
    p.add_argument("--num-samples", type=int, default=None, help="number of mixtures (default 512)")
    p.add_argument("--seed", type=int, default=None, help="random seed (default 0)")
    p.add_argument("--max-epochs", type=float, default=None,
                   help="epoch limit per domain; needs --target-tokens (cap = E * tokens_i / T)")
    p.add_argument("--target-tokens", type=_tokens, default=None, metavar="T",
                   help="token budget of the run the mixtures are for (e.g. 25B, 300M)")
    p.add_argument("--cap-multiplier", type=_optional_float, default=_UNSET, metavar="X",
                   help="cap weight_i <= X * prior_i (default 15; 'none' disables)")
    p.add_argument("--temperature", type=float, default=None, help="prior temperature (default 0.5)")
    p.add_argument("--min-weight", type=float, default=None, help="zero weights below this (default 2e-4)")
    p.add_argument("--dedup-min-distance", type=float, default=None,
                   help="minimum L1 distance between kept mixtures (default 1e-3)")
    p.add_argument("--fallback", choices=("project", "raise"), default=None,
                   help="when rejection sampling is hopeless: sample within the feasible region (project, "
                        "default) or fail naming the binding constraint (raise)")
    p.add_argument("--plot", metavar="PNG", help="also write a plot of the per-domain weight distributions")
    p.set_defaults(func=run)


def _flag_error(exc: Exception, given: set[str]) -> str:
    msg = str(exc)
    for field, flag in FLAGS.items():
        if f"sampler.{field}" in msg:
            msg = msg.replace(f"sampler.{field}", f"{flag} (sampler.{field})")
    return msg


def run(args: argparse.Namespace) -> int:
    import json

    from ..configs import config_to_dict, load_config
    from ..errors import ConfigError, RegmixError
    from ..fileio import atomic_write_text, atomic_write_yaml, read_yaml
    from ..manifest import DomainRegistry
    from ..mixture import Mixture
    from ..sampling import SampleStats, SamplerConfig, domain_caps, sample_mixtures

    registry = DomainRegistry.load(args.domains)
    data = dict(read_yaml(args.config) or {}) if args.config else {}
    if args.config and "sampler" in data and isinstance(data["sampler"], dict) and len(data) == 1:
        data = dict(data["sampler"])
    overrides = {
        "num_samples": args.num_samples, "seed": args.seed, "max_epochs": args.max_epochs,
        "target_tokens": args.target_tokens, "temperature": args.temperature, "min_weight": args.min_weight,
        "dedup_min_distance": args.dedup_min_distance, "fallback": args.fallback,
    }
    given = {k for k, v in overrides.items() if v is not None}
    data.update({k: v for k, v in overrides.items() if v is not None})
    if args.cap_multiplier is not _UNSET:
        data["cap_multiplier"] = args.cap_multiplier
        given.add("cap_multiplier")
    try:
        config = load_config(SamplerConfig, data, source=args.config or "sample flags")
        tokens = registry.tokens_per_domain("train")
        lower, upper = domain_caps(tokens, config, domains=registry.names)
        stats = SampleStats()
        mixtures = sample_mixtures(tokens, config, domains=registry.names, stats=stats)
    except ConfigError as exc:
        raise ConfigError(_flag_error(exc, given)) from None
    except RegmixError as exc:
        raise RegmixError(_flag_error(exc, given)) from None

    output = Path(args.output)
    lines = []
    for i, row in enumerate(mixtures):
        m = Mixture.from_array(registry.names, row)
        lines.append(json.dumps({"index": i, "hash": m.hash, "weights": {d: w for d, w in m.as_dict().items()}}))
    atomic_write_text(output, "\n".join(lines) + "\n")
    prior = registry.prior("train")
    resolved = {
        "format": "regmix-megatron/sampler-run/v1",
        "sampler": config_to_dict(config),
        "domains_json": str(Path(registry.path).resolve()) if registry.path else None,
        "domains": list(registry.names),
        "tokens_per_domain": [int(t) for t in tokens],
        "prior": [float(x) for x in prior],
        "lower": [float(x) for x in lower],
        "upper": [float(x) for x in upper],
        "num_mixtures": int(len(mixtures)),
        "stats": {"num_drawn": stats.num_drawn, "num_accepted": stats.num_accepted,
                  "num_projected": stats.num_projected, "num_duplicates": stats.num_duplicates,
                  "acceptance_rate": stats.acceptance_rate},
        "output": str(output.resolve()),
    }
    config_path = output.with_name(output.name + ".sampler.yaml")
    atomic_write_yaml(config_path, resolved)
    print(f"wrote {len(mixtures)} mixtures to {output} (config: {config_path})")
    if stats.num_projected:
        print(f"note: {stats.num_projected} mixtures were sampled within the feasible region by projection "
              f"(rejection sampling accepted {stats.acceptance_rate:.2e} of draws)")
    if args.plot:
        from ..plots import plot_mixture_distributions

        plot_mixture_distributions(mixtures, registry.names, args.plot, prior=prior, upper=upper, lower=lower,
                                   min_weight=config.min_weight,
                                   title=f"{len(mixtures)} sampled mixtures (seed {config.seed})")
        print(f"wrote plot {args.plot}")
    return 0

"""``regmix-megatron sample``: draw RegMix mixtures for the domains of a ``domains.json``.

Writes ``--output`` (mixtures JSONL, one a line: ``{"format", "hash", "weights": {domain: weight}}``, see
:mod:`regmix_megatron.mixtures.mixture`) and, beside it, ``<output>.sampler.yaml`` (the resolved sampler config, registry,
prior, bounds and statistics: :func:`regmix_megatron.mixtures.sampler_config.sampler_run_record`). Both atomically; with
``--plot`` also a PNG of the per-domain weight distributions.
"""

from __future__ import annotations

import argparse
import logging

from .flags import add_renamed
from .numbers import count, number
from .sampler_flags import FLAGS, add_cap_arguments

logger = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "sample",
        help="sample RegMix mixtures (Dirichlet around the token prior, with token/epoch caps)",
        description="Sample distinct mixtures with the RegMix sampler: prior from exact token counts, tempered "
        "prior, log-spaced Dirichlet strengths, minimum-weight zeroing, per-domain caps (cap multiplier, epoch "
        "limit for a target token budget, explicit bounds), pairwise deduplication. Reproducible by --seed.",
    )
    add_renamed(p, "--domains-json", "--domains", dest="domains_json", required=True, metavar="DOMAINS_JSON",
                help="domains.json (from `preprocess` or `domains import`)")
    p.add_argument("--output", required=True, metavar="JSONL", help="mixtures file to write (one JSON a line)")
    p.add_argument("--config", metavar="YAML", help="sampler config (SamplerConfig fields); flags override it")
    p.add_argument("--num-samples", type=count, default=None, help="number of mixtures (default 512)")
    p.add_argument("--seed", type=count, default=None, help="random seed (default 0)")
    add_cap_arguments(p)
    p.add_argument("--dedup-min-distance", type=number, default=None,
                   help="minimum L1 distance between kept mixtures (default 1e-3)")
    p.add_argument("--fallback", choices=("project", "raise"), default=None,
                   help="when rejection sampling is hopeless: sample within the feasible region (project, "
                        "default) or fail naming the binding constraint (raise)")
    p.add_argument("--plot", metavar="PNG", help="also write a plot of the per-domain weight distributions")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..data.manifest import DomainRegistry
    from ..errors import ConfigError, RegmixError
    from ..data.manifest import check_prefix_paths
    from ..fileio import atomic_files, atomic_write_yaml, check_output_paths, read_yaml
    from ..mixtures.mixture import Mixture, write_mixtures
    from ..mixtures.caps import domain_caps
    from ..mixtures.sampler import SampleStats, sample_rows
    from ..mixtures.sampler_config import build_sampler_config, sampler_run_record
    from .sampler_flags import flag_error, given_overrides

    output = Path(args.output)
    config_path = output.with_name(output.name + ".sampler.yaml")
    check_output_paths({"--domains-json": args.domains_json, "--config": args.config},
                       files={"--output": output, "the sampler record beside --output": config_path, "--plot": args.plot})
    registry = DomainRegistry.load(args.domains_json)
    registry.verify_files(full=False)  # the prior and the caps come from its token counts
    check_prefix_paths(registry, f"--domains-json {args.domains_json}")  # what trains on them must read them
    fields = read_yaml(args.config) if args.config else None
    try:
        config = build_sampler_config(fields, overrides=given_overrides(args, FLAGS),
                                      source=args.config or "sample flags")
        tokens = registry.tokens_per_domain("train")
        lower, upper = domain_caps(tokens, config, domains=registry.names)
        stats = SampleStats()
        rows = sample_rows(tokens, config, domains=registry.names, stats=stats)[:, 0]  # one phase: mixtures
    except ConfigError as exc:
        raise ConfigError(flag_error(exc)) from None
    except RegmixError as exc:
        raise RegmixError(flag_error(exc)) from None

    record = sampler_run_record(config, registry, lower, upper, stats, len(rows), output)
    with atomic_files(config_path, output) as (config_tmp, output_tmp):  # both or neither; the JSONL last
        write_mixtures(output_tmp, [Mixture.from_array(registry.names, row) for row in rows])
        atomic_write_yaml(config_tmp, record)
    print(f"wrote {len(rows)} mixtures to {output} (config: {config_path})")
    if stats.num_projected:
        print(f"note: {stats.num_projected} mixtures were sampled within the feasible region by projection "
              f"(rejection sampling accepted {stats.acceptance_rate:.2e} of draws)")
    if args.plot:
        from ..report.figures import plot_mixture_distributions

        plot_mixture_distributions(rows, registry.names, args.plot, prior=registry.prior("train"), upper=upper,
                                   lower=lower, min_weight=config.min_weight,
                                   title=f"{len(rows)} sampled mixtures (seed {config.seed})")
        print(f"wrote plot {args.plot}")
    return 0

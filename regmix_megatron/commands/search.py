"""``regmix-megatron search``: simulate a large candidate pool, predict, average the top-k, export the mixture.

Writes into ``--output-dir``: ``mixture.json`` (the result), ``search.json`` (predicted target of the result and
of the baselines, caps, timings), ``top_k.csv``, and with ``--domains`` the Megatron-LM files under
``megatron/`` (``--data-path`` list, ``--data-args-path`` file, ``--per-split-data-args-path`` JSON).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

logger = logging.getLogger(__name__)

#: Scale applied to a prior given as fractions, so it can stand in for token counts (share-based caps only).
PRIOR_TOKEN_SCALE = 1e12


def register(subparsers: argparse._SubParsersAction) -> None:
    from .sample import _UNSET, _optional_float, _tokens

    p = subparsers.add_parser(
        "search",
        help="simulate candidate mixtures with the sweep's sampler and caps, average the predicted top-k",
        description="Draw a large pool of candidates with the RegMix sampler (same caps as the sweep), predict "
        "the target with a fitted model, average the best top-k into the RegMix mixture, and compare it with "
        "baselines (natural, uniform, target-domain-only, mixture files).",
    )
    m = p.add_argument_group("model (one form)")
    m.add_argument("--model", metavar="FILE", help="a model written by `fit` (lightgbm .txt or linear .json)")
    m.add_argument("--fit-dir", metavar="DIR", help="the --output-dir of `fit` (pick with --regressor/--target)")
    m.add_argument("--regressor", default="lightgbm", help="with --fit-dir: lightgbm (default) or linear")
    m.add_argument("--target", help="with --fit-dir: which target's model (default: the only one)")
    d = p.add_argument_group("domains, prior and caps (one of --domains, --tokens-per-domain, --prior)")
    d.add_argument("--domains", metavar="DOMAINS_JSON", help="domains.json: exact token counts, enables export")
    d.add_argument("--tokens-per-domain", metavar="FILE", help="JSON/YAML mapping domain -> training tokens")
    d.add_argument("--prior", metavar="FILE",
                   help="mixture file giving the natural token shares (e.g. a RegMix config); share-based caps only")
    d.add_argument("--sampler-config", metavar="YAML",
                   help="the sweep's sampler config (SamplerConfig fields, or a `sample` .sampler.yaml)")
    d.add_argument("--max-epochs", type=float, default=None, help="epoch cap (needs --target-tokens)")
    d.add_argument("--target-tokens", type=_tokens, default=None, metavar="T", help="target run token budget")
    d.add_argument("--cap-multiplier", type=_optional_float, default=_UNSET, metavar="X",
                   help="cap weight_i <= X * prior_i (default 15; 'none' disables)")
    d.add_argument("--temperature", type=float, default=None, help="prior temperature (default 0.5)")
    d.add_argument("--min-weight", type=float, default=None, help="zero weights below this (default 2e-4)")
    s = p.add_argument_group("search")
    s.add_argument("--num-candidates", type=int, default=1_000_000, help="pool size (default 1,000,000)")
    s.add_argument("--top-k", type=int, default=100, help="candidates averaged (default 100)")
    s.add_argument("--chunk-size", type=int, default=100_000, help="candidates per chunk (memory bound)")
    s.add_argument("--seed", type=int, default=0, help="seed of the candidate pool")
    s.add_argument("--maximize", action="store_true", help="higher target is better (default: lower)")
    s.add_argument("--baseline-mixture", action="append", default=[], metavar="FILE",
                   help="also predict this mixture (repeatable; name = file stem)")
    s.add_argument("--plain-predict", action="store_true",
                   help="use LightGBM's own predict instead of the (identical, faster) compiled evaluator")
    p.add_argument("--output-dir", required=True, metavar="DIR")
    p.set_defaults(func=run)


def _model_from_fit_dir(fit_dir: str, regressor: str, target: str | None) -> Path:
    from ..errors import RegmixError
    from ..fileio import read_json

    metrics = read_json(Path(fit_dir) / "metrics.json")
    block = metrics.get("regressors", {}).get(regressor)
    if not block:
        raise RegmixError(f"--fit-dir {fit_dir}: no {regressor!r} models; fitted: {sorted(metrics.get('regressors', {}))}"
                          " (fix --regressor)")
    targets = block.get("targets", {})
    if target is None:
        if len(targets) != 1:
            raise RegmixError(f"--fit-dir {fit_dir} holds models for targets {sorted(targets)}: pick one with --target")
        target = next(iter(targets))
    if target not in targets:
        raise RegmixError(f"--target {target!r}: not fitted in {fit_dir}; fitted: {sorted(targets)}")
    rel = targets[target].get("model")
    if not rel:
        raise RegmixError(f"--fit-dir {fit_dir}: metrics.json lists no model file for {target!r}")
    return Path(fit_dir) / rel


def run(args: argparse.Namespace) -> int:
    from ..configs import load_config
    from ..errors import ConfigError, RegmixError
    from ..fileio import read_yaml
    from ..manifest import DomainRegistry
    from ..mixture import Mixture
    from ..regression.models import load_regressor
    from ..sampling import SamplerConfig
    from ..search import SearchConfig, load_weights_file, search_and_write, tokens_from_mapping
    from .sample import _UNSET, _flag_error

    if bool(args.model) == bool(args.fit_dir):
        raise RegmixError("give the model: --model FILE or --fit-dir DIR (one of them)")
    model_path = Path(args.model) if args.model else _model_from_fit_dir(args.fit_dir, args.regressor, args.target)
    regressor = load_regressor(model_path)
    domains = list(regressor.domains)

    given = [f for f, v in (("--domains", args.domains), ("--tokens-per-domain", args.tokens_per_domain),
                            ("--prior", args.prior)) if v]
    if len(given) != 1:
        raise RegmixError("give exactly one of --domains DOMAINS_JSON, --tokens-per-domain FILE, --prior FILE "
                          f"(got {given or 'none'})")
    registry = None
    if args.domains:
        registry = DomainRegistry.load(args.domains)
        regressor.check_domains(registry.names, f"--domains {args.domains}")
        tokens = registry.tokens_per_domain("train").astype("float64")
        prior_mixture = Mixture.from_array(registry.names, registry.prior("train"))
    elif args.tokens_per_domain:
        tokens = tokens_from_mapping(load_weights_file(args.tokens_per_domain, "--tokens-per-domain"), domains,
                                     f"--tokens-per-domain {args.tokens_per_domain}")
        prior_mixture = Mixture.from_array(domains, tokens)
    else:
        shares = load_weights_file(args.prior, "--prior")
        tokens = tokens_from_mapping(shares, domains, f"--prior {args.prior}")
        tokens = tokens / tokens.sum() * PRIOR_TOKEN_SCALE
        prior_mixture = Mixture.from_array(domains, tokens)

    data = dict(read_yaml(args.sampler_config) or {}) if args.sampler_config else {}
    if isinstance(data.get("sampler"), dict):
        data = dict(data["sampler"])  # a `sample` .sampler.yaml, or {sampler: {...}}
    overrides = {"max_epochs": args.max_epochs, "target_tokens": args.target_tokens,
                 "temperature": args.temperature, "min_weight": args.min_weight}
    data.update({k: v for k, v in overrides.items() if v is not None})
    if args.cap_multiplier is not _UNSET:
        data["cap_multiplier"] = args.cap_multiplier
    if args.prior and data.get("max_epochs") is not None:
        raise RegmixError("--prior gives token shares, not counts, so epoch caps (--max-epochs/--target-tokens) "
                          "cannot be computed: give --domains or --tokens-per-domain instead")
    try:
        sampler = load_config(SamplerConfig, data, source=args.sampler_config or "search flags")
        config = SearchConfig(num_candidates=args.num_candidates, top_k=args.top_k, chunk_size=args.chunk_size,
                              seed=args.seed, maximize=args.maximize)
    except ConfigError as exc:
        msg = _flag_error(exc, set())
        for field in ("num_candidates", "top_k", "chunk_size", "seed"):
            msg = msg.replace(f"search.{field}", "--" + field.replace("_", "-"))
        raise ConfigError(msg) from None

    extra = {}
    for path in args.baseline_mixture:
        extra[Path(path).stem] = Mixture.from_dict(load_weights_file(path, "--baseline-mixture"), tolerance=None,
                                                   source=path)
    progress = _progress_bar(config.num_candidates)
    try:
        doc = search_and_write(regressor, tokens, sampler, config, args.output_dir, registry=registry,
                               prior=prior_mixture, extra_baselines=extra, fast=not args.plain_predict,
                               progress=progress.update,
                               extra={"model": str(model_path),
                                      "prior_source": args.domains or args.tokens_per_domain or args.prior,
                                      "sampler": dict(data)})
    except ConfigError as exc:
        raise ConfigError(_flag_error(exc, set())) from None
    finally:
        progress.close()

    out = Path(args.output_dir)
    print(f"searched {config.num_candidates:,} candidates (seed {config.seed}); top-{config.top_k} averaged")
    print(f"predicted {regressor.target}: regmix {doc['result']['predicted']:.6f}")
    for name, b in doc["baselines"].items():
        note = "" if b["within_caps"] else "  (outside the caps)"
        print(f"  {name:12s} {b['predicted']:.6f}{note}")
    print(f"wrote {out / 'mixture.json'} and {out / 'search.json'}")
    return 0


class _progress_bar:
    """tqdm in the CLI (quiet when not a terminal)."""

    def __init__(self, total: int) -> None:
        import sys

        self.bar = None
        self.last = 0
        if sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=total, unit="cand", unit_scale=True, desc="search")

    def update(self, done: int, total: int) -> None:
        if self.bar is not None:
            self.bar.update(done - self.last)
        self.last = done

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()

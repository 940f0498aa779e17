"""``regmix-megatron search``: simulate a large candidate pool, predict, average the top-k, export the mixture.

Writes into ``--output-dir``: ``mixture.json`` (the result), ``search.json`` (predicted target of the result and
of the baselines, caps, timings), ``top_k.csv``, and with ``--domains-json`` the Megatron-LM files under
``export/`` (``--data-path`` list, ``--data-args-path`` file, ``--per-split-data-args-path`` JSON, the flags in
``megatron_args.txt``; ``megatron/`` before, kept as a link to ``export/`` for old scripts). Prints the answer
first: the mixture, the export files, the Megatron-LM flags to paste, then how far to trust it.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from .flags import add_renamed
from .numbers import count

logger = logging.getLogger(__name__)

#: SamplerConfig fields the search takes from flags (the pool's seed is --seed, the search's own).
SAMPLER_FLAGS = ("max_epochs", "target_tokens", "temperature", "min_weight", "cap_multiplier")
#: SearchConfig fields named by flags.
SEARCH_FLAGS = ("num_candidates", "top_k", "chunk_size", "seed")


def register(subparsers: argparse._SubParsersAction) -> None:
    from .mixture_flags import add_renormalize
    from .sampler_flags import add_cap_arguments

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
    m.add_argument("--regressor", default="lightgbm",
                   help="with --fit-dir: lightgbm (default), linear, quadratic or ensemble (whichever the fit wrote; "
                   "the ensemble also predicts an sd)")
    m.add_argument("--target", help="with --fit-dir: which target's model (default: the only one)")
    d = p.add_argument_group("domains, prior and caps (one of --domains-json, --tokens-per-domain, --prior)")
    add_renamed(d, "--domains-json", "--domains", dest="domains_json", metavar="DOMAINS_JSON",
                help="domains.json: exact token counts, enables export")
    d.add_argument("--tokens-per-domain", metavar="FILE", help="JSON/YAML mapping domain -> training tokens")
    d.add_argument("--prior", metavar="FILE",
                   help="mixture file giving the natural token shares (e.g. a RegMix config); share-based caps only")
    d.add_argument("--sampler-config", metavar="YAML",
                   help="the sweep's sampler config (SamplerConfig fields, or a `sample` .sampler.yaml)")
    add_cap_arguments(d)
    s = p.add_argument_group("search")
    s.add_argument("--num-candidates", type=count, default=1_000_000, help="pool size (default 1,000,000)")
    s.add_argument("--top-k", type=top_k, default=100, metavar="K|auto",
                   help="candidates averaged (default 100), or auto: k chosen by the model's uncertainty (the "
                   "largest k whose average is predicted within 1 sd of the best average; needs --regressor ensemble)")
    s.add_argument("--chunk-size", type=count, default=100_000, help="candidates per chunk (memory bound)")
    s.add_argument("--seed", type=count, default=0, help="seed of the candidate pool")
    s.add_argument("--maximize", action="store_true", help="higher target is better (default: lower)")
    s.add_argument("--baseline-mixture", action="append", default=[], metavar="FILE",
                   help="also predict this mixture (repeatable; name = file stem)")
    add_renormalize(s, "--baseline-mixture")
    s.add_argument("--plain-predict", action="store_true",
                   help="use LightGBM's own predict instead of the (identical, faster) compiled evaluator")
    p.add_argument("--path-prefix", action="append", default=[], metavar="OLD=NEW",
                   help="in the export files, rewrite paths starting with OLD to start with NEW (repeatable)")
    p.add_argument("--output-dir", required=True, metavar="DIR")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..configs import config_to_dict
    from ..errors import ConfigError, RegmixError
    from ..export.files import PathMap, search_export_files
    from ..fileio import check_output_paths
    from ..mixtures.mixture import Mixture
    from ..regression.models import load_regressor
    from ..search.outputs import check_search_folder
    from ..search.prior import load_prior, load_weights_file

    check_output_paths({"--model": args.model, "--fit-dir": args.fit_dir, "--domains-json": args.domains_json,
                        "--tokens-per-domain": args.tokens_per_domain, "--prior": args.prior,
                        "--sampler-config": args.sampler_config, "--baseline-mixture": args.baseline_mixture},
                       dirs={"--output-dir": args.output_dir})
    if bool(args.model) == bool(args.fit_dir):
        raise RegmixError("give the model: --model FILE or --fit-dir DIR (one of them)")
    model_path = Path(args.model) if args.model else _fit_dir_model(args)
    regressor = load_regressor(model_path)
    given = [f for f, v in (("--domains-json", args.domains_json), ("--tokens-per-domain", args.tokens_per_domain),
                            ("--prior", args.prior)) if v]
    if len(given) != 1:
        raise RegmixError("give exactly one of --domains-json DOMAINS_JSON, --tokens-per-domain FILE, --prior FILE "
                          f"(got {given or 'none'})")
    prior = load_prior(regressor.domains, domains_json=args.domains_json, tokens_file=args.tokens_per_domain,
                       prior_file=args.prior)
    if prior.registry is not None:
        regressor.check_domains(prior.registry.names, f"--domains-json {args.domains_json}")
    sampler, config = _configs(args, prior.shares_only)
    extra = {Path(path).stem: Mixture.from_dict(load_weights_file(path, "--baseline-mixture"),
                                                renormalize=args.renormalize, source=f"--baseline-mixture {path}")
             for path in args.baseline_mixture}
    record = {"model": str(model_path), "prior_source": args.domains_json or args.tokens_per_domain or args.prior,
              "sampler": config_to_dict(sampler)}
    path_map = PathMap.parse(args.path_prefix)
    check_search_folder(args.output_dir, search_export_files())  # before the work, not after
    try:
        summary = _search_and_export(args, regressor, prior, sampler, config, extra, record, path_map)
    except ConfigError as exc:
        raise ConfigError(_flag_error(exc)) from None
    out = Path(args.output_dir)
    if prior.registry is not None:
        _link_old_export_dir(out)
    print("\n".join(answer_lines(summary, regressor.target, config, fit_dir=args.fit_dir)))
    return 0


def _search_and_export(args: argparse.Namespace, regressor, prior, sampler, config, extra: dict, record: dict,
                       path_map):
    """The search (step 5), then the export of its result (step 6, with ``--domains-json``): one search folder,
    written whole."""
    from ..export.files import search_export_files, write_search_export
    from ..search.baselines import baseline_mixtures
    from ..search.outputs import search_folder, write_search_files
    from ..search.pool import search_model
    from .progress_bar import ProgressBar

    baselines = baseline_mixtures(prior.mixture, regressor.definition, extra)
    with ProgressBar(config.num_candidates, desc="search", unit="cand", unit_scale=True) as bar:
        outcome = search_model(regressor, prior.tokens, sampler, config, fast=not args.plain_predict,
                               progress=lambda done, total: bar.update_to(done))
    out = Path(args.output_dir)
    with search_folder(out, search_export_files()) as stage:
        exported = None
        if prior.registry is not None:
            exported = write_search_export(prior.registry, outcome.schedule, outcome.static_mixture, stage,
                                           final_dir=out, path_map=path_map)
        return write_search_files(stage, out, outcome, regressor, baselines, config, tokens_per_domain=prior.tokens,
                                  sampler_config=sampler, exported=exported, extra=record)


def answer_lines(summary, target: str, config, fit_dir: str | None = None) -> list[str]:
    """What ``search`` prints, the answer first: the mixture, the export files, the Megatron-LM flags; then the
    confidence (the fit's cross-validated Spearman when the fit directory is known) and the baselines."""
    from ..mixtures.mixture import Mixture
    from .export import describe_export

    result = summary.result
    mixture = Mixture.from_dict(result.weights)
    choice = summary.top_k_choice
    lines = [f"RegMix mixture (predicted {target} {result.predicted_loss:.4f}{_sd(result.predicted_sd)}; mean of the "
             f"best {choice.k} of {config.num_candidates:,} candidates):"]
    exported = summary.export_files
    if exported:
        lines += describe_export(mixture, exported)
    else:
        lines.append("  " + ", ".join(f"{d} {w:.4f}" for d, w in sorted(mixture.nonzero().items(),
                                                                          key=lambda kv: -kv[1])))
        lines.append("no export files: give --domains-json to write the Megatron-LM files")
    lines.append("confidence: " + _confidence(fit_dir, summary.regressor))
    if choice.rule == "auto":
        lines.append(f"top-k: {choice.k} chosen: {choice.reason}")
    lines.append(f"predicted {target} of the baselines (lower is better"
                 + (", higher" if summary.objective == "maximize" else "") + "):")
    for name, b in summary.baselines.items():
        note = "" if b.within_caps else "  (outside the caps)"
        lines.append(f"  {name:12s} {b.predicted_loss:.4f}{_sd(b.predicted_sd)}{note}")
    lines.append(f"RegMix beats {len(summary.result_beats)} of {len(summary.baselines)} baselines in prediction "
                 "(predictions of the regressor, not trained models)")
    return lines


def _sd(sd: float | None) -> str:
    return "" if sd is None else f" +- {sd:.4f}"


def top_k(text: str) -> int | str:
    """``--top-k``: a whole number, or ``auto``."""
    if text.strip().lower() == "auto":
        return "auto"
    try:
        return count(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"{text!r}: give a whole number of candidates (e.g. 100) or auto") from None


def _confidence(fit_dir: str | None, regressor: str | None) -> str:
    from ..regression.fitting import read_fit_metrics

    if not fit_dir:
        return "n/a (give --fit-dir to show the fit's cross-validated Spearman)"
    fits = read_fit_metrics(fit_dir).regressors.get(regressor or "lightgbm") or {}
    parts = []
    for name, entry in fits.items():
        rho = entry.spearman
        parts.append(f"{name}: Spearman {'n/a' if rho is None else f'{rho:.3f}'} ({entry.evaluated_on})")
    return f"{regressor} fit, " + "; ".join(parts) if parts else "n/a (no metrics in the fit directory)"


def _link_old_export_dir(out: Path) -> None:
    """``megatron/`` was the export folder before ``export/``: keep a link for scripts that read it."""
    import os

    from ..export.files import EXPORT_DIR, OLD_EXPORT_DIR

    old = out / OLD_EXPORT_DIR
    if old.is_symlink() or not old.exists():
        if old.is_symlink():
            old.unlink()
        os.symlink(EXPORT_DIR, old)
        logger.info("%s is a link to %s/ (the export folder's old name; deprecated)", old, EXPORT_DIR)


def _fit_dir_model(args: argparse.Namespace) -> Path:
    from ..errors import RegmixError
    from ..regression.fitting import find_model

    try:
        return find_model(args.fit_dir, args.regressor, args.target)
    except RegmixError as exc:
        raise RegmixError(f"--fit-dir {args.fit_dir} (--regressor {args.regressor}, --target): {exc}") from None


def _configs(args: argparse.Namespace, shares_only: bool):
    """The pool's SamplerConfig (--sampler-config, then the cap flags) and the SearchConfig, errors naming flags."""
    from ..errors import ConfigError, RegmixError
    from ..fileio import read_yaml
    from ..mixtures.sampler_config import build_sampler_config
    from ..search.pool import SearchConfig
    from .sampler_flags import given_overrides

    fields = read_yaml(args.sampler_config) if args.sampler_config else None
    try:
        sampler = build_sampler_config(fields, overrides=given_overrides(args, SAMPLER_FLAGS),
                                       source=args.sampler_config or "search flags")
        config = SearchConfig(num_candidates=args.num_candidates, top_k=args.top_k, chunk_size=args.chunk_size,
                              seed=args.seed, maximize=args.maximize)
    except ConfigError as exc:
        raise ConfigError(_flag_error(exc)) from None
    if shares_only and sampler.max_epochs is not None:
        raise RegmixError("--prior gives token shares, not counts, so epoch caps (--max-epochs/--target-tokens) "
                          "cannot be computed: give --domains-json or --tokens-per-domain instead")
    return sampler, config


def _flag_error(exc: Exception) -> str:
    from .sampler_flags import flag_error

    msg = flag_error(exc)
    for field in SEARCH_FLAGS:
        msg = msg.replace(f"search.{field}", "--" + field.replace("_", "-"))
    return msg

"""``regmix-megatron fit``: regress target metrics on mixture weights; cross-validate; evaluate on test runs."""

from __future__ import annotations

import argparse
import json
import logging
from typing import TYPE_CHECKING

from .mixture_flags import add_renormalize
from .flags import add_renamed
from .numbers import count, number

if TYPE_CHECKING:
    from ..regression.fitting import FitMetrics

logger = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    from ..regression.ensemble import DEFAULT_NUM_BOOTSTRAP

    p = subparsers.add_parser(
        "fit",
        help="fit regressors (LightGBM, linear, quadratic, ensemble) from mixture weights to target losses",
        description="Fit one model per target and regressor on the training runs; report Spearman (headline), "
        "Pearson and MSE on test runs and/or by K-fold cross-validation on the training runs.",
    )
    src = p.add_argument_group("training runs (one form)")
    src.add_argument("--results", metavar="TABLE", help="sweep results table (CSV/Parquet: weight/<d>, val_loss/<d>)")
    src.add_argument("--mixtures", metavar="CSV", help="RegMix-format mixture CSV (index, train_the_pile_<d>)")
    src.add_argument("--losses", metavar="CSV", help="RegMix-format loss CSV (index, metric/the_pile_<d>_val_loss)")
    tst = p.add_argument_group("test runs (optional; never used for fitting)")
    tst.add_argument("--test-results", metavar="TABLE")
    tst.add_argument("--test-mixtures", metavar="CSV")
    tst.add_argument("--test-losses", metavar="CSV")
    tgt = p.add_argument_group("targets")
    tgt.add_argument("--target", action="append", default=[], metavar="COLUMN",
                     help="metric column (or domain name) to predict; repeatable, one model each")
    tgt.add_argument("--target-average", action="store_true",
                     help="also fit the plain average of all per-domain validation losses")
    tgt.add_argument("--target-weights", metavar="D=W,...",
                     help="also fit a weighted sum of per-domain losses, e.g. pile_cc=0.7,github=0.3")
    p.add_argument("--regressors", default="lightgbm,linear",
                   help="comma-separated among lightgbm, linear, quadratic, ensemble (default lightgbm,linear); "
                   "ensemble: the others combined as cross-validation chooses, with an uncertainty per prediction")
    p.add_argument("--num-bootstrap", type=count, default=DEFAULT_NUM_BOOTSTRAP, metavar="B",
                   help="ensemble: refits of each member on bootstrap resamples of the runs, whose spread is part of "
                   f"the uncertainty (default {DEFAULT_NUM_BOOTSTRAP}; 0: the members' spread only)")
    add_renamed(p, "--num-folds", "--cv-folds", dest="num_folds", type=count, default=None, metavar="K",
                   help="K-fold cross-validation on the training runs (default 5 without a test set, else 0)")
    p.add_argument("--repeats", choices=("average", "group"), default="average",
                   help="runs of the same mixture (seed repeats, retrained runs): average them into one row "
                        "(default), or keep them as a group; either way cross-validation never puts one mixture on "
                        "both sides of a fold")
    p.add_argument("--seed", type=count, default=0)
    p.add_argument("--num-rounds", type=count, default=1000, help="LightGBM boosting rounds (paper: 1000)")
    p.add_argument("--learning-rate", type=number, default=0.01, help="LightGBM learning rate (paper: 0.01)")
    p.add_argument("--early-stopping-rounds", type=count, default=None,
                   help="LightGBM early stopping on a held-out slice of the TRAINING runs (off by default)")
    p.add_argument("--validation-fraction", type=number, default=0.1,
                   help="fraction of training runs held out for early stopping (default 0.1)")
    p.add_argument("--max-nan-fraction", type=number, default=0.1,
                   help="exclude runs with a NaN target up to this fraction, refuse above (default 0.1)")
    add_renormalize(p, "each run's mixture")
    p.add_argument("--output-dir", metavar="DIR", help="write models/, metrics.json, predictions.csv here")
    add_renamed(p, "--metrics-json", "--output-json", dest="metrics_json", metavar="FILE",
                help="also write the metrics JSON to this file")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..errors import RegmixError
    from ..fileio import atomic_write_json, check_output_paths
    from ..regression.data import load_runs, parse_target_weights
    from ..regression.fitting import FIT_FILES, FitMetrics, fit_models, resolve_targets, write_outputs

    check_output_paths({f"--{k.replace('_', '-')}": getattr(args, k) for k in
                        ("results", "mixtures", "losses", "test_results", "test_mixtures", "test_losses")},
                       files={"--metrics-json": args.metrics_json}, dirs={"--output-dir": args.output_dir})
    if args.output_dir:
        from ..output_folder import check_output_folder

        check_output_folder(args.output_dir, FIT_FILES, "--output-dir")  # before the work
    if args.results is None and args.mixtures is None and args.losses is None:
        raise RegmixError("give the training runs: --results TABLE, or --mixtures CSV --losses CSV")
    train = load_runs(args.results, args.mixtures, args.losses, what="training (--results/--mixtures/--losses)",
                      renormalize=args.renormalize)
    test = None
    if args.test_results or args.test_mixtures or args.test_losses:
        test = load_runs(args.test_results, args.test_mixtures, args.test_losses,
                         what="test (--test-results/--test-mixtures/--test-losses)", renormalize=args.renormalize)
    kinds = [k.strip() for k in args.regressors.split(",") if k.strip()]
    if not kinds:
        raise RegmixError("--regressors: empty; use e.g. lightgbm,linear,quadratic")
    cv_folds = args.num_folds if args.num_folds is not None else (0 if test is not None else 5)
    if cv_folds < 0 or cv_folds == 1:
        raise RegmixError(f"--num-folds {cv_folds}: use 0 (off) or at least 2")
    if not 0 <= args.max_nan_fraction <= 1:
        raise RegmixError(f"--max-nan-fraction {args.max_nan_fraction}: use a fraction in [0, 1]")
    combination = parse_target_weights(args.target_weights) if args.target_weights else None
    targets = resolve_targets(train, test, args.target, average=args.target_average, combination=combination)
    options = {"num_rounds": args.num_rounds, "learning_rate": args.learning_rate,
               "early_stopping_rounds": args.early_stopping_rounds,
               "validation_fraction": args.validation_fraction}
    outcome = fit_models(train, targets, kinds, test=test, cv_folds=cv_folds, seed=args.seed,
                         max_nan_fraction=args.max_nan_fraction, lightgbm_options=options, repeats=args.repeats,
                         num_bootstrap=args.num_bootstrap)
    outcome.summary["inputs"] = {
        "results": args.results, "mixtures": args.mixtures, "losses": args.losses,
        "test_results": args.test_results, "test_mixtures": args.test_mixtures, "test_losses": args.test_losses,
        "renormalize": args.renormalize,
    }
    outcome.summary["lightgbm_options"] = options
    if "ensemble" in kinds:
        outcome.summary["num_bootstrap"] = args.num_bootstrap
    if args.output_dir:
        write_outputs(outcome, args.output_dir)
        logger.info("wrote models and metrics to %s", args.output_dir)
    if args.metrics_json:
        atomic_write_json(args.metrics_json, outcome.summary)
    metrics = FitMetrics.from_json_obj(outcome.summary, "the fit's metrics")
    print(repeats_line(metrics))
    for kind, fits in metrics.regressors.items():
        for target, entry in fits.items():
            print(f"{kind:9s} {target:40s} spearman={_fmt(entry.spearman)} pearson={_fmt(entry.pearson)} "
                  f"mse={_fmt(entry.mse, 6)} ({entry.evaluated_on})")
    if not (args.output_dir or args.metrics_json):
        print(json.dumps(outcome.summary["regressors"], indent=2))
    return 0


def repeats_line(metrics: "FitMetrics") -> str:
    """What the fit did with repeated mixtures, and the noise ceiling their repeats measure."""
    rep = metrics.repeats
    line = (f"runs: {rep['num_runs']} of {rep['num_mixtures']} distinct mixtures; ")
    if not rep["num_repeated_mixtures"]:
        return line + "no repeats (cross-validation folds by mixture)"
    line += (f"{rep['num_repeated_mixtures']} mixtures have several runs ({rep['num_runs_of_repeated_mixtures']} "
             f"runs): {rep['note']}; cross-validation never puts a mixture on both sides of a fold")
    for name, info in metrics.targets.items():
        noise = info.noise or {}
        if noise.get("ceiling") is not None:
            line += (f"\n{name}: seed noise sd {noise['sd']:.4g} from the repeats, CV Spearman ceiling "
                     f"{noise['ceiling']:.3f} for one run per mixture")
            if noise.get("ceiling_of_averages") is not None:
                line += f", {noise['ceiling_of_averages']:.3f} for the averaged rows the CV scores"
    return line


def _fmt(x, digits: int = 4) -> str:
    return "n/a" if x is None else f"{x:.{digits}f}"

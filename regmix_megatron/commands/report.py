"""``regmix-megatron report``: one self-contained HTML report of the regression and search stages."""

from __future__ import annotations

import argparse

from .mixture_flags import add_renormalize


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "report",
        help="write an HTML report: predicted vs true, optimized weights, weight-loss correlations, importance",
        description="One self-contained HTML file (plots embedded as PNG) from the outputs of `fit` and `search`.",
    )
    p.add_argument("--fit-dir", metavar="DIR", help="the --output-dir of `fit`")
    p.add_argument("--search-dir", metavar="DIR", help="the --output-dir of `search`")
    p.add_argument("--results", metavar="TABLE", help="training runs for the correlation heatmap (default: the "
                   "ones recorded in FIT_DIR/metrics.json)")
    p.add_argument("--mixtures", metavar="CSV", help="RegMix-format training mixtures (with --losses)")
    p.add_argument("--losses", metavar="CSV")
    add_renormalize(p, "each run's mixture")
    p.add_argument("--target", help="target to show (default: the search's, or the first fitted)")
    p.add_argument("--title", default="RegMix report")
    p.add_argument("--png-dir", metavar="DIR", help="also write each plot as a PNG file here")
    p.add_argument("--output", required=True, metavar="HTML")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..errors import RegmixError
    from ..fileio import check_output_paths
    from ..regression.data import load_runs
    from pathlib import Path

    from ..regression.fitting import METRICS_FILE, read_fit_metrics
    from ..report.page import build_report
    from ..report.regmix import regmix_sections

    check_output_paths({"--fit-dir": args.fit_dir, "--search-dir": args.search_dir, "--results": args.results,
                        "--mixtures": args.mixtures, "--losses": args.losses},
                       files={"--output": args.output}, dirs={"--png-dir": args.png_dir})
    if not (args.fit_dir or args.search_dir):
        raise RegmixError("give --fit-dir and/or --search-dir (outputs of `fit` and `search`)")
    runs = None
    if args.results or args.mixtures or args.losses:
        runs = load_runs(args.results, args.mixtures, args.losses, what="--results/--mixtures/--losses",
                         renormalize=args.renormalize)
    elif args.fit_dir:
        inputs = read_fit_metrics(args.fit_dir).inputs
        if inputs.get("results") or inputs.get("mixtures"):
            try:
                runs = load_runs(inputs.get("results"), inputs.get("mixtures"), inputs.get("losses"),
                                 what=f"training runs recorded in {Path(args.fit_dir) / METRICS_FILE}",
                                 renormalize=bool(inputs.get("renormalize")) or args.renormalize)
            except RegmixError as exc:
                print(f"note: no correlation heatmap ({exc}); pass --results or --mixtures/--losses")
    sections = regmix_sections(args.fit_dir, args.search_dir, runs, args.target)
    lead = []
    if args.search_dir:
        from ..report.answer import answer_section

        lead = [answer_section(args.search_dir, metrics=read_fit_metrics(args.fit_dir) if args.fit_dir else None)]
    path = build_report(sections, args.output, title=args.title, png_dir=args.png_dir, lead=lead)
    print(f"wrote {path} ({len(lead) + len(sections)} sections)")
    return 0

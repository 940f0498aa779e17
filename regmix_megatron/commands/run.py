"""``regmix-megatron run CONFIG``: the whole pipeline, resumable (see docs/PIPELINE.md)."""

from __future__ import annotations

import argparse
import sys

from ..pipeline.stages import STAGE_NAMES as STAGES  # light: no torch/megatron at import time


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "run", help="run the whole RegMix pipeline from one YAML config (resumable)",
        description="corpus -> tokenizer -> indexed -> sample -> sweep -> fit -> search -> full_scale -> evaluate "
                    "-> report. Each stage records the hash of its inputs in OUT/stages/<stage>.json; running "
                    "again skips stages whose inputs are unchanged, redoes those that changed (and what depends "
                    "on them), and resumes a killed run.",
    )
    p.add_argument("config", help="pipeline YAML (e.g. examples/demo.yaml)")
    p.add_argument("--output-dir", help="write here instead of the config's output_dir")
    p.add_argument("--until", choices=STAGES, metavar="STAGE",
                   help=f"stop after this stage (one of: {', '.join(STAGES)})")
    p.add_argument("--force-stage", action="append", default=[], choices=STAGES, metavar="STAGE",
                   help="redo this stage even if its inputs are unchanged (repeatable); later stages are redone "
                        "when its outputs change")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (log lines only)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..pipeline import CONFIG_FILE, format_summary, load_pipeline_config, run_pipeline
    from ..pipeline.framework import read_summary_results

    from ..fileio import check_output_paths

    check_output_paths({"CONFIG": args.config}, dirs={"--output-dir": args.output_dir}, own_records=(CONFIG_FILE,))
    cfg = load_pipeline_config(args.config, output_dir=args.output_dir)
    check_output_paths({"CONFIG": args.config}, dirs={"the output directory": cfg.output_dir},
                       own_records=(CONFIG_FILE,))
    progress = None
    if not args.no_progress:
        from .pipeline_bar import BarProgress
        from .progress_bar import route_logging_above_bars

        progress = BarProgress()
        route_logging_above_bars()
    print(f"regmix-megatron run: {args.config} -> {cfg.output_dir}", file=sys.stderr)
    try:
        results = run_pipeline(cfg, until=args.until, force=args.force_stage, progress=progress)
    except BaseException:
        print(format_summary(read_summary_results(cfg.output_dir)), file=sys.stderr)
        raise
    print(format_summary(results))
    print_verdicts(cfg.output_dir)
    report = [r for r in results if r.stage == "report" and r.status in ("done", "skipped")]
    if report:
        print(f"report: {cfg.output_dir}/report.html")
    return 0


def print_verdicts(output_dir) -> None:
    """The evaluation's verdicts under the summary table (when the evaluate stage has run)."""
    from pathlib import Path

    from ..fileio import read_json
    from ..full_scale.evaluation import FILE_NAME, FORMAT, Evaluation
    from ..full_scale.verdict import verdict_lines

    path = Path(output_dir) / FILE_NAME
    if not path.is_file():
        return
    doc = read_json(path)
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:  # an older evaluation: the summary says enough
        return
    evaluation = Evaluation.from_json_obj(doc, str(path))
    confirmation = evaluation.confirmation
    if confirmation is not None:
        what = f"{confirmation.chosen} replaced the search's pick and trained as regmix: " if confirmation.replaced \
            else ""
        print(f"confirmation round (proxy scale, {confirmation.split} split, {len(confirmation.candidates)} "
              f"candidates): {what}{confirmation.reason}")
    print("verdicts (target-scale test loss; a win needs more than the stated sd):")
    for line in verdict_lines(evaluation):
        print(f"  {line}")

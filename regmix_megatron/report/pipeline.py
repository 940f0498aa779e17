"""The pipeline's report (``OUT/report.html``): stage timings, the target comparison, rank invariance and the
sweep's loss table, then the RegMix sections (:mod:`.regmix`: metrics, predicted vs true, weights vs prior,
correlations, importance), written as one page by :func:`.page.build_report` (PNGs also written beside it).

Reads the pipeline's files and documents (stage records, ``evaluation.json``, the results table, the fit and
search directories); imports nothing of :mod:`regmix_megatron.pipeline`.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Mapping, Sequence

import pandas as pd

from ..results import read_results
from ..target import Target
from . import figures
from .page import Section, build_report, figure_section, table_html
from .regmix import regmix_sections

#: Sweep rows shown in the report table (best first); the CSV has all of them.
MAX_SWEEP_ROWS = 64


def stage_timing_sections(records: Sequence[Mapping]) -> list[Section]:
    timings = [(r["stage"], float(r.get("seconds", 0.0))) for r in records]
    frame = pd.DataFrame({"stage": [r["stage"] for r in records],
                          "seconds": [float(r.get("seconds", 0.0)) for r in records],
                          "finished (UTC)": [r.get("finished_at", "") for r in records],
                          "key output": [r["outputs"].get("summary", "") for r in records]})
    fig = figure_section("Pipeline stages", figures.plot_stage_timings(timings),
                         "Seconds each stage took when it last ran (a stage skipped on a rerun keeps the time of "
                         "the run that produced its outputs). Measured on the machine that ran the pipeline; "
                         "other work on it makes them noisy.", name="stage_timings")
    return [Section(fig.title, fig.html + table_html(frame, "{:.1f}"), fig.images)]


def sweep_frame(results_csv: Path, target: Target) -> pd.DataFrame:
    """The sweep's results with a ``target`` column, best (lowest target loss) first."""
    results = read_results(results_csv)
    frame = results.frame.copy()
    frame["target"] = target.values(results.losses(), where=str(results_csv))
    return frame.sort_values("target", kind="stable").reset_index(drop=True)


def sweep_section(results_csv: Path, target: Target) -> Section:
    results = read_results(results_csv)
    frame = sweep_frame(results_csv, target)
    shown = frame.head(MAX_SWEEP_ROWS)
    table = pd.DataFrame({"#": range(1, len(shown) + 1), "run": shown["run_id"].astype(str).str[:8]})
    for c, d in results.weight_columns.items():
        table[f"w {d}"] = shown[c]
    for c, d in results.loss_columns.items():
        table[f"loss {d}"] = shown[c]
    table[f"target ({target.label})"] = shown["target"]
    losses = frame["target"].to_numpy()
    note = (f"<p>{len(frame)} proxy runs sorted by the target loss, best first"
            + (f" (the best {MAX_SWEEP_ROWS} are shown)" if len(frame) > MAX_SWEEP_ROWS else "")
            + f". Target loss {losses.min():.4f} .. {losses.max():.4f} (spread {losses.max() - losses.min():.4f})."
            f" Full table: <code>{html.escape(str(results_csv))}</code>.</p>")
    return Section("Sweep: proxy losses", note + '<div style="overflow-x:auto">'
                   + table_html(table, "{:.3f}") + "</div>")


def target_sections(evaluation: Mapping) -> list[Section]:
    comp = evaluation["comparison"]
    target = figures.target_label(evaluation)
    lines = [f"RegMix reaches {comp['regmix_target_loss']:.4f} on the target ({target}) and ranks "
             f"{comp['regmix_rank']} of {comp['num_target_runs']} target-scale runs."]
    for name, b in comp["baselines"].items():
        verdict = "lower (better) than" if b["regmix_minus_baseline"] < 0 else "higher (worse) than"
        lines.append(f"vs {name}: {b['target_loss']:.4f}; RegMix is {abs(b['regmix_minus_baseline']):.4f} "
                     f"{verdict} it.")
    fig = figure_section("Target runs: RegMix vs baselines", figures.plot_target_comparison(evaluation),
                         "Validation loss on the target of the target-scale runs (lower is better); grey bars are "
                         "sweep mixtures trained at target scale for the rank-invariance check.",
                         name="target_comparison")
    domains = sorted({d for r in evaluation["runs"] for d in r["val_loss"]})
    rows = []
    for r in evaluation["runs"]:
        row = {"mixture": figures.short_label(r["label"]), "target loss": r["target_loss"],
               "proxy-scale loss": r["proxy_loss"], "predicted (proxy scale)": r["predicted_loss"]}
        row.update({f"loss {d}": r["val_loss"].get(d) for d in domains})
        rows.append(row)
    body = ("<ul>" + "".join(f"<li>{html.escape(x)}</li>" for x in lines) + "</ul>" + fig.html
            + '<div style="overflow-x:auto">' + table_html(pd.DataFrame(rows), "{:.4f}") + "</div>")
    return [Section(fig.title, body, fig.images)]


def rank_sections(evaluation: Mapping) -> list[Section]:
    rank = evaluation["rank_invariance"]
    rho = rank.get("spearman")
    fig = figure_section(
        "Rank invariance", figures.plot_rank_invariance(evaluation),
        f"Mixtures trained at both scales: proxy-scale vs target-scale loss on the target. Spearman rho = "
        f"{'n/a' if rho is None else f'{rho:.3f}'} over {rank['num_mixtures']} mixtures. RegMix rests on the "
        "ranking transferring from small to large models; with a handful of mixtures rho is a coarse estimate.",
        name="rank_invariance")
    table = pd.DataFrame([{"mixture": figures.short_label(m["label"]), "proxy-scale loss": m["proxy_loss"],
                           "target-scale loss": m["target_loss"]} for m in rank["mixtures"]])
    return [Section(fig.title, fig.html + table_html(table, "{:.4f}"), fig.images)]


def headline(evaluation: Mapping) -> str:
    comp = evaluation["comparison"]
    rho = evaluation["rank_invariance"].get("spearman")
    beats = comp["regmix_beats"]
    target = figures.target_label(evaluation)
    return (f"Target: {target}. RegMix target-scale loss {comp['regmix_target_loss']:.4f}; it beats "
            f"{len(beats)} of {len(comp['baselines'])} baselines" + (f" ({', '.join(beats)})" if beats else "")
            + f". Rank invariance (Spearman, proxy vs target scale): {'n/a' if rho is None else f'{rho:.2f}'} over "
            f"{evaluation['rank_invariance']['num_mixtures']} mixtures.")


def write_pipeline_report(path: Path, png_dir: Path, *, records: Sequence[Mapping], evaluation: Mapping,
                          results_csv: Path, fit_dir: Path, search_dir: Path, fit_target: str,
                          target: Target, target_runs: Mapping | None = None) -> Path:
    """The whole report: headline, pipeline view, then the regression/search sections. ``target_runs`` (the
    targets stage's ``runs.json``) adds the schedule's validation curves when RegMix trained a schedule."""
    from ..regression.data import load_results_table
    from .schedule import labelled_run_dirs, schedule_sections

    sections: list[Section] = []
    sections += stage_timing_sections(records)
    sections += target_sections(evaluation)
    if target_runs and (target_runs.get("runs", {}).get("regmix") or {}).get("schedule"):
        dirs = labelled_run_dirs(target_runs, ["regmix", "regmix_static", "natural"])
        sections += schedule_sections(dirs, highlight=target.single_domain,
                                      title="Schedule vs static at target scale: validation curves by phase")
    sections += rank_sections(evaluation)
    sections.append(sweep_section(results_csv, target))
    sections += regmix_sections(fit_dir=fit_dir, search_dir=search_dir, runs=load_results_table(results_csv),
                                target=fit_target)
    return build_report(sections, path, title="RegMix pipeline report", subtitle=headline(evaluation),
                        png_dir=png_dir)


def numbers_for_log(evaluation: Mapping) -> dict:
    """The headline numbers (recorded in the report stage's record, for docs/LOG.md)."""
    comp = evaluation["comparison"]
    return {"regmix": comp["regmix_target_loss"],
            **{k: v["target_loss"] for k, v in comp["baselines"].items()},
            "rank_spearman": evaluation["rank_invariance"].get("spearman"),
            "rank_num_mixtures": evaluation["rank_invariance"]["num_mixtures"]}

"""The pipeline's report (``OUT/report.html``): the answer first (:mod:`.answer`: the mixture, the export files,
the Megatron-LM flags to paste, and how far to trust it), then the target comparison, rank invariance, the
sweep's loss table, the RegMix sections (:mod:`.regmix`: metrics, predicted vs true, weights vs prior,
correlations, importance), and the stage timings last; written as one page by :func:`.page.build_report`
(PNGs also written beside it).

Reads the pipeline's files and documents (stage records, ``evaluation.json``, the results table, the fit and
search directories); imports nothing of :mod:`regmix_megatron.pipeline`.
"""

from __future__ import annotations

import html
import math
from pathlib import Path
from typing import Mapping, Sequence

import pandas as pd

from ..full_scale.evaluation import Evaluation, lowest_loss_by_source
from ..full_scale.verdict import BETTER, WORSE, verdict_lines
from ..regression.target import Target
from ..runs.results import read_results
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
    table = pd.DataFrame({"#": range(1, len(shown) + 1), "run": shown["run_id"].astype(str)})
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
    return Section("Sweep: proxy losses", note + table_html(table, "{:.3f}"))


def target_sections(evaluation: Evaluation) -> list[Section]:
    """The answer: each compared mixture's per-seed test losses at target scale, and a verdict per baseline
    (never a win within noise)."""
    noise = evaluation.noise
    lines = verdict_lines(evaluation)
    fig = figure_section("Target runs: RegMix vs baselines", figures.plot_target_comparison(evaluation),
                         f"Loss on the target ({evaluation.target_label}) on the {evaluation.split} "
                         "split at target scale (lower is better); each dot is one seed, the tick the mean. The "
                         "mixtures were chosen on the validation split, so these numbers were never used to choose "
                         "them. The loss axis shows only the range of the runs (it does not start at 0): compare "
                         f"positions, not lengths. Unit of sd: {noise.unit}.", name="target_comparison")
    mixtures = evaluation.mixtures.values()
    seeds = sorted({s for m in mixtures for s in m.target_losses}, key=int)
    rows = []
    for m in sorted(mixtures, key=lambda m: m.mean):
        verdict = evaluation.comparison.baselines.get(m.label)
        row = {"mixture": figures.short_label(m.label), "mean": m.mean, "sd": m.sd, "seeds": m.num_seeds}
        row.update({f"seed {s}": m.target_losses.get(s) for s in seeds})
        row.update({"proxy-scale (valid)": m.proxy_loss, "predicted": m.predicted_loss,
                    "predicted sd": m.predicted_sd, "RegMix vs it": verdict.text if verdict is not None else ""})
        rows.append(row)
    weights = sorted({d for m in mixtures for d in m.mixture})
    mix = pd.DataFrame([{"mixture": figures.short_label(m.label), **{d: m.mixture.get(d, 0.0) for d in weights}}
                        for m in mixtures])
    body = ("<ul>" + "".join(f"<li>{html.escape(x)}</li>" for x in lines) + "</ul>" + fig.html
            + table_html(pd.DataFrame(rows), "{:.4f}") + noise_parts_html(evaluation) + by_source_html(evaluation)
            + "<p>The compared mixtures (token fractions of each training domain):</p>"
            + table_html(mix, "{:.3f}"))
    if noise.sd is None:
        body = "<p><b>Seed noise was not measured (fewer than two seeds): no verdict claims a win.</b></p>" + body
    return [Section(fig.title, body, fig.images)]


def noise_parts_html(evaluation: Evaluation) -> str:
    """Each verdict's sd by part: the seeds', the test documents' (paired bootstrap) and their combination."""
    rows = [{"RegMix vs": figures.short_label(b), "difference": c.difference,
             "seed sd": c.noise.seed_sd if c.noise else None, "document sd": c.noise.document_sd if c.noise else None,
             "combined sd": c.sd, "dominant": c.noise.dominant if c.noise else "unmeasured",
             "verdict": c.text} for b, c in evaluation.comparison.baselines.items()]
    if not rows:
        return ""
    docs = evaluation.documents
    sample = "" if docs is None or not docs.domains else " Scored: " + "; ".join(
        f"{d} {s.num_documents} documents, {s.num_tokens:,} tokens" for d, s in docs.domains.items()) + (
        f"; {docs.num_draws} bootstrap draws.")
    return ("<p>The sd of each verdict, by part: the seeds' (how far the difference of the two means moves when "
            "only the seeds change) and the test documents' (how far it moves with which documents were drawn: "
            "a paired bootstrap, the same documents for both mixtures; empty where a run recorded no per-document "
            f"losses, and the verdict then rests on the seeds alone).{sample}</p>" + table_html(pd.DataFrame(rows),
                                                                                            "{:.4f}"))


def by_source_html(evaluation: Evaluation) -> str:
    """The test loss of each compared mixture by the source of the target's documents, and the sources on which
    each has the lowest loss: which part of the target each mixture wins (a description, not a verdict: no noise
    is measured per source)."""
    measured = sorted((m for m in evaluation.mixtures.values() if m.test_loss_by_source), key=lambda m: m.mean)
    if not measured:
        return ""
    shares = evaluation.documents.domains if evaluation.documents is not None else {}
    columns = sorted({(d, s) for m in measured for d, per in m.test_loss_by_source.items() for s in per})

    def name(d: str, s: str) -> str:
        share = shares[d].sources.get(s) if d in shares else None
        return (f"{d}/{s}" if len(shares) > 1 else s) + ("" if share is None else f" ({share.num_documents} docs)")

    loss = {(m.label, c): m.test_loss_by_source.get(c[0], {}).get(c[1], math.inf) for m in measured for c in columns}
    lowest = lowest_loss_by_source(measured)
    rows = [{"mixture": figures.short_label(m.label),
             **{name(*c): loss[(m.label, c)] for c in columns},
             "lowest loss on": ", ".join(name(*c) for c in columns if lowest[c] == m.label)} for m in measured]
    return ("<p>The test loss by source of the target's documents (mean over seeds), and where each mixture has the "
            "lowest: which part of the target each mixture wins. A description, not a verdict: no noise is "
            "measured per source.</p>" + table_html(pd.DataFrame(rows), "{:.4f}"))


def confirmation_section(evaluation: Evaluation) -> Section | None:
    """What the confirmation round measured at proxy scale (each candidate's seeds, mean and sd, and how far it is
    from the search's pick in combined sd), and which candidate went on to the target runs."""
    conf = evaluation.confirmation
    if conf is None:
        return None
    seeds = sorted({s for c in conf.candidates for s in c.losses}, key=int)
    pick = next(c.mean for c in conf.candidates if c.label == "regmix")
    rows = []
    for c in conf.candidates:
        row = {"candidate": c.label, "mean": c.mean, "sd": c.sd}
        row.update({f"seed {s}": c.losses.get(s) for s in seeds})
        row.update({"pick - it": None if c.label == "regmix" else pick - c.mean,
                    "combined sd": c.combined_sd, "in sd": c.num_sd,
                    "went on": "yes" if c.label == conf.chosen else ""})
        rows.append(row)
    what = (f"<b>{html.escape(conf.chosen)}</b> replaced the search's pick and was trained at target scale as RegMix"
            if conf.replaced else "the search's pick (<b>regmix</b>) stands")
    text = (f"<p>Before the target runs, the search's pick, its top-1 candidate and the best measured sweep mixtures "
            f"were trained at proxy scale with {len(seeds)} seeds each and compared on the {conf.split} split (the "
            f"test split judges only the final pick): {what}. {html.escape(conf.reason)}.</p><p>A candidate replaces "
            f"the pick only when better by more than {conf.threshold_sd:g} combined sd (seed and document noise); "
            "\"pick - it\" is positive when the candidate is better.</p>")
    return Section("Confirmation round: the pick against measured candidates",
                   text + table_html(pd.DataFrame(rows), "{:.4f}"))


def fit_choice_section(evaluation: Evaluation) -> Section | None:
    """Which regressor drove the search and why; its CV Spearman per fold next to the noise ceiling."""
    fit = evaluation.fit
    if fit is None or not fit.cv:
        return None
    noise = fit.noise
    ceiling = noise.get("ceiling")
    rows = [{"regressor": k, "CV Spearman (pooled)": v.get("spearman"), "fold mean": v.get("fold_mean"),
             "fold sd": v.get("fold_sd"), "folds": ", ".join(f"{x:.2f}" for x in v.get("folds") or []),
             "used": "yes" if k == fit.regressor else ""} for k, v in fit.cv.items()]
    sd = noise.get("sd")
    text = (f"<p>The search used <b>{html.escape(str(fit.regressor))}</b>: "
            f"{html.escape(str(fit.regressor_reason or ''))}.</p><p>Noise ceiling: proxy seed sd "
            + ("not measured" if sd is None else f"{sd:.4f} ({noise.get('dof')} dof, {noise.get('num_mixtures')} "
               f"sweep mixtures trained with several seeds) against a sweep spread of sd "
               f"{noise.get('spread_sd'):.4f}")
            + "; the best CV Spearman a perfect model could reach against such noisy proxies is "
            + ("n/a" if ceiling is None else f"<b>{ceiling:.2f}</b>") + ".</p>"
            + ("" if fit.uncertainty is None else
               f"<p>The predictions' sd (\"predicted sd\"): {html.escape(fit.uncertainty)}.</p>"))
    return Section("Fit: the regressor, its cross-validation and the noise ceiling",
                   text + table_html(pd.DataFrame(rows), "{:.3f}"))


def rank_sections(evaluation: Evaluation) -> list[Section]:
    rank = evaluation.rank_invariance
    rho = rank.spearman
    chance = rank.chance_level
    verdict = "n/a" if rho is None else ("passes" if rank.passed else "fails")
    fig = figure_section(
        "Rank invariance", figures.plot_rank_invariance(evaluation),
        f"Mixtures trained at both scales: proxy-scale vs target-scale loss on the target ({rank.split} split; "
        f"target scale: mean over seeds). Spearman rho = {'n/a' if rho is None else f'{rho:.3f}'} over "
        f"{rank.num_mixtures} mixtures: it {verdict} the stated threshold of {rank.threshold:.2f}"
        + ("" if chance is None else f" (chance alone reaches {chance:.2f} for {rank.num_mixtures} mixtures in "
           "5% of orderings)")
        + ". RegMix rests on the ranking transferring from small to large models.",
        name="rank_invariance")
    table = pd.DataFrame([{"mixture": figures.short_label(p.label), "proxy-scale loss": p.proxy_loss,
                           "target-scale loss": p.target_loss} for p in rank.mixtures])
    return [Section(fig.title, fig.html + table_html(table, "{:.4f}"), fig.images)]


def headline(evaluation: Evaluation) -> str:
    """One sentence: the verdicts against natural and uniform (never a win within noise) and rank invariance."""
    comp = evaluation.comparison
    rank = evaluation.rank_invariance
    rho = rank.spearman
    parts = [f"{b}: {c.text}" for b, c in comp.baselines.items()]
    measured = bool(comp.baselines) and all(c.noise is not None and c.noise.document_sd is not None
                                             for c in comp.baselines.values())
    noise = "noise (seeds and test documents)" if measured else "seed noise (test documents not measured)"
    answer = "RegMix beats " + " and ".join(comp.must_beat) + f" beyond {noise} and loses to no baseline"
    if not comp.aim_met:
        beats = [b for b in comp.must_beat if comp.baselines[b].verdict == BETTER]
        misses = [b for b in comp.must_beat if b not in beats]
        losses = [b for b, c in comp.baselines.items() if c.verdict == WORSE]
        answer = "Aim not met: " + "; ".join(
            ([f"RegMix beats {' and '.join(beats)} beyond {noise}"] if beats else [])
            + ([f"not {' or '.join(misses)}"] if misses else [])
            + ([f"it loses to {' and '.join(losses)}"] if losses else []))
    return (f"Target: {evaluation.target_label} ({evaluation.split} split). {answer}: "
            + "; ".join(parts) + f". Rank invariance: Spearman {'n/a' if rho is None else f'{rho:.2f}'} over "
            f"{rank.num_mixtures} mixtures ({'pass' if rank.passed else 'fail'} at {rank.threshold:.2f}).")


def write_pipeline_report(path: Path, png_dir: Path, *, records: Sequence[Mapping], evaluation: Evaluation,
                          results_csv: Path, fit_dir: Path, search_dir: Path, fit_target: str,
                          target: Target, target_runs: Mapping | None = None,
                          runs_root: Path | None = None) -> Path:
    """The whole report: the answer and its confidence first, the pipeline view, the regression/search sections,
    and the stage timings last. ``target_runs`` (the full_scale stage's ``runs.json``) adds the schedule's validation
    curves when RegMix trained a schedule; its relative run directories are under ``runs_root``."""
    from ..regression.data import load_results_table
    from ..regression.fitting import read_fit_metrics
    from .answer import answer_section
    from .regmix import curves_sections, labelled_run_dirs

    lead = [answer_section(search_dir, metrics=read_fit_metrics(fit_dir), evaluation=evaluation,
                           target_label=target.label)]
    sections: list[Section] = []
    sections += target_sections(evaluation)
    confirmation = confirmation_section(evaluation)
    sections += [confirmation] if confirmation is not None else []
    choice = fit_choice_section(evaluation)
    sections += [choice] if choice is not None else []
    if target_runs and (target_runs.get("runs", {}).get("regmix") or {}).get("schedule"):
        dirs = labelled_run_dirs(target_runs, ["regmix", "regmix_static", "natural"], root=runs_root)
        sections += curves_sections(dirs, highlight=target.single_domain,
                                    title="Schedule vs static at target scale: validation curves by phase")
    sections += rank_sections(evaluation)
    sections.append(sweep_section(results_csv, target))
    sections += regmix_sections(fit_dir=fit_dir, search_dir=search_dir, runs=load_results_table(results_csv),
                                target=fit_target)
    sections += stage_timing_sections(records)
    return build_report(sections, path, title="RegMix pipeline report", subtitle=headline(evaluation),
                        png_dir=png_dir, lead=lead)


def numbers_for_log(evaluation: Evaluation) -> dict:
    """The headline numbers (recorded in the report stage's record, for docs/LOG.md)."""
    comp = evaluation.comparison
    fit = evaluation.fit
    return {**{label: {"mean": m.mean, "sd": m.sd, "seeds": m.num_seeds}
               for label, m in evaluation.mixtures.items() if not label.startswith("sweep:")},
            "sd_unit": evaluation.noise.sd,
            "verdicts": {b: c.text for b, c in comp.baselines.items()},
            "verdict_sd": {b: c.noise.to_json() if c.noise is not None else None for b, c in comp.baselines.items()},
            "by_source": {label: m.test_loss_by_source for label, m in evaluation.mixtures.items()
                          if m.test_loss_by_source and not label.startswith("sweep:")},
            "aim_met": comp.aim_met,
            "rank_spearman": evaluation.rank_invariance.spearman,
            "rank_num_mixtures": evaluation.rank_invariance.num_mixtures,
            "regressor": fit.regressor if fit is not None else None,
            "cv_spearman": {k: v.get("spearman") for k, v in (fit.cv if fit is not None else {}).items()},
            "noise_ceiling": fit.noise.get("ceiling") if fit is not None else None}

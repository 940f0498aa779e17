"""The RegMix sections of a report: the regression (a ``fit`` output directory), the search (a ``search`` output
directory) and the training runs.

Predicted vs true on held-out runs (with Spearman rho), feature importance, optimized weights vs the prior and
baselines (a schedule search: its features, phase by phase), per-domain correlation of weight with loss (heatmap),
the validation curves of labelled runs by phase (run directories: ``metrics.jsonl``, and ``result.json``'s
``phases`` table of a run of several phases; a static mixture is one phase, with no boundary to mark), and tables
of the numbers behind them.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Mapping, Sequence

import numpy as np

from ..runs.run_dir import read_metrics, read_result
from . import figures
from .page import Section, figure_section, table_html, table_section

if TYPE_CHECKING:
    from ..search.outputs import SearchSummary

if TYPE_CHECKING:
    import pandas as pd

    from ..regression.data import RunTable
    from ..regression.fitting import FitMetrics


def regmix_sections(fit_dir: str | Path | None = None, search_dir: str | Path | None = None,
                    runs: "RunTable | None" = None, target: str | None = None) -> list[Section]:
    """Sections for the regression (``fit_dir``) and search (``search_dir``) outputs and the training runs
    (a :class:`~regmix_megatron.regression.data.RunTable`). ``target`` is the fit's name of the target to show
    (default: the search's, else the first fitted)."""
    from ..regression.fitting import read_fit_metrics
    from ..search.outputs import read_search

    metrics = read_fit_metrics(fit_dir) if fit_dir else None
    search = read_search(search_dir) if search_dir else None
    if target is None:
        if search is not None:
            target = search.target
        elif metrics is not None:
            target = next(iter(metrics.targets))
    sections: list[Section] = []
    if metrics is not None:
        sections += fit_sections(Path(fit_dir), metrics, target)
    if search is not None:
        sections += search_sections(search)
    if runs is not None:
        sections.append(correlation_section(runs, target))
    return sections


def fit_sections(fit_dir: Path, metrics: "FitMetrics", target: str | None) -> list[Section]:
    """The metrics table, predicted vs true on held-out runs, and feature importance."""
    import pandas as pd

    rows = []
    for kind, fits in metrics.regressors.items():
        for t, e in fits.items():
            cv = e.cv
            rows.append({"regressor": kind, "target": t, "evaluated on": e.evaluated_on,
                         "Spearman x100": None if e.spearman is None else f"{100 * e.spearman:.2f}",
                         "Pearson": e.pearson, "MSE": e.mse, "CV Spearman (mean)": cv.spearman_mean if cv else None,
                         "CV folds": cv.num_folds if cv else None})
    train, test = metrics.train, metrics.test
    note = (f"Training runs: {train.get('num_runs')} ({train.get('source')}). "
            + (f"Test runs: {test['num_runs']} ({test['source']})." if test is not None else
               "No separate test set: metrics are out-of-fold cross-validation."))
    sections = [table_section("Regression metrics", pd.DataFrame(rows), note)]
    pred_path = fit_dir / "predictions.csv"
    if pred_path.exists():
        predictions = pd.read_csv(pred_path)
        if target in set(predictions["target"]):
            sections.append(figure_section(
                "Predicted vs true on held-out runs", figures.plot_predicted_vs_true(predictions, target),
                "Each point is a run the model did not see while fitting. Rank correlation (Spearman) is "
                "what matters for search.", name="predicted_vs_true"))
    importance = importance_section(fit_dir, metrics, target)
    return sections + ([importance] if importance is not None else [])


def importance_section(fit_dir: Path, metrics: "FitMetrics", target: str | None) -> Section | None:
    """Feature importance of every fitted model of ``target`` (None when it has no model)."""
    from ..regression.fitting import find_model
    from ..regression.models import load_regressor

    importances = {}
    domains = None
    for kind, fits in metrics.regressors.items():
        if target not in fits or not fits[target].model:
            continue
        model = load_regressor(find_model(fit_dir, kind, target))
        domains = list(model.domains)
        importances[f"{kind} ({'gain' if kind == 'lightgbm' else '|coefficient|'})"] = model.feature_importance()
    if not importances:
        return None
    return figure_section("Feature importance", figures.plot_feature_importance(domains, importances),
                          f"Which domain weights the models rely on to predict {target}. "
                          "LightGBM: total split gain. Linear: |coefficient|; since weights "
                          "sum to 1 the coefficients are only defined relative to each other "
                          "(large ones often belong to rarely-sampled domains).",
                          name="feature_importance")


def search_sections(search: "SearchSummary") -> list[Section]:
    """The optimized weights vs prior and baselines (figure and table) and the predicted targets."""
    import pandas as pd

    domains = list(search.domains)
    mixtures = {"regmix (search result)": [search.result.weights.get(d, 0.0) for d in domains]}
    for name, b in search.baselines.items():
        mixtures[name] = [b.weights.get(d, 0.0) for d in domains]
    upper = [search.upper[d] for d in domains]
    sections = [figure_section("Optimized weights vs prior and baselines",
                               figures.plot_weights(domains, mixtures, upper),
                               "Black ticks: the per-domain caps the search respected.", name="weights")]
    column = f"predicted {search.target}"
    entries = {"regmix (search result)": search.result, **search.baselines}
    rows = [{"mixture": n, column: e.predicted_loss, "sd": e.predicted_sd, "within caps": e.within_caps}
            for n, e in entries.items()]
    frame = pd.DataFrame(rows)
    if frame["sd"].isna().all():  # a regressor without uncertainty
        frame = frame.drop(columns="sd")
    choice = search.top_k_choice
    how = f"top-{choice.k} averaged" + (f" (k chosen: {choice.reason})" if choice.rule == "auto" else "")
    sections.append(table_section(
        "Search result and baselines", frame,
        f"{search.num_candidates:,} candidates (seed {search.seed}), {how}; objective: "
        f"{search.objective} the predicted target.", float_format="{:.5f}"))
    weights = pd.DataFrame({"domain": domains, **{k: v for k, v in mixtures.items()}, "cap": upper})
    sections.append(table_section("Weights", weights, float_format="{:.4f}"))
    return sections


def correlation_section(runs: "RunTable", target: str | None) -> Section:
    corr = weight_loss_correlation(runs)
    short = {c: runs.metric_domains.get(c, c) for c in corr.columns}
    return figure_section(
        "Correlation of domain weight with loss", figures.plot_weight_loss_heatmap(corr, target, short),
        f"Spearman correlation over {runs.num_runs} training runs; the target column is outlined.",
        name="weight_loss_heatmap")


def weight_loss_correlation(runs: "RunTable") -> "pd.DataFrame":
    """DataFrame (domains x loss columns) of Spearman correlation between a domain's weight and a loss."""
    import pandas as pd

    from ..regression.metrics import spearman

    columns = list(runs.metric_domains) or list(runs.metrics.columns)
    out = pd.DataFrame(index=list(runs.domains), columns=columns, dtype=float)
    for col in columns:
        y = runs.metrics[col].to_numpy(float)
        ok = np.isfinite(y)
        for i, d in enumerate(runs.domains):
            w = runs.weights[ok, i]
            out.loc[d, col] = spearman(w, y[ok]) if ok.sum() > 2 and np.ptp(w) > 0 else np.nan
    return out


# ---- training runs: validation curves by phase ---------------------------------------------------------------
def validation_curve(run_dir: str | Path) -> list[tuple[int, dict]]:
    """``[(step, {domain: loss})]`` of a run's evaluations (``metrics.jsonl``)."""
    return [(int(r["step"]), dict(r["val_loss"])) for r in read_metrics(run_dir) if r.get("val_loss")]


def phase_boundaries(phases: Sequence[Mapping] | None) -> list[int]:
    """The steps at which the phases after the first start (``result.json``'s ``phases``)."""
    return [int(p["start_step"]) for p in (phases or [])[1:] if "start_step" in p]


def phase_table_rows(phases: Sequence[Mapping] | None) -> list[dict]:
    """One row per (phase, domain) with a requested or realized weight: requested, realized, samples."""
    rows = []
    for p in phases or []:
        span = f"steps {p['start_step']}..{p['end_step'] - 1}" if "start_step" in p else \
            f"samples {p['start_sample']}..{p['end_sample'] - 1}"
        for d, w in p["requested"].items():
            if w > 0 or p["samples"].get(d, 0) > 0:
                rows.append({"phase": f"{p['phase']} ({span})", "domain": d, "requested": w,
                             "realized": p["realized"][d], "samples": p["samples"][d]})
    return rows


def curves_sections(runs: Mapping[str, str | Path], *, highlight: str | None = None,
                    title: str = "Validation curves by phase") -> list[Section]:
    """Sections for labelled run directories: the curves figure (every run's curves, the first run's phase
    boundaries: none for a static mixture, one phase) and the first run's per-phase requested-vs-realized table
    (a run of several phases)."""
    if not runs:
        return []
    first = next(iter(runs.values()))
    phases = read_result(first).phases
    curves = {label: validation_curve(d) for label, d in runs.items()}
    domains = sorted({d for points in curves.values() for _, losses in points for d in losses})
    boundaries = phase_boundaries(phases)
    fig = figure_section(title, figures.plot_phase_curves(curves, boundaries, domains, highlight),
                         "Validation loss per domain at each evaluation; dotted lines mark where a phase starts "
                         f"(step {', '.join(map(str, boundaries)) or '-'}). Solid: "
                         f"{figures.short_label(next(iter(runs)))}; dashed: the others.", name="phase_curves")
    body = fig.html
    rows = phase_table_rows(phases)
    if rows:
        body += ("<p>Requested vs realized token fractions per phase of that run (from its scheduled blend index; "
                 "megatron's greedy rounding).</p>" + table_html(rows, "{:.4f}"))
    return [Section(fig.title, body, fig.images)]


def labelled_run_dirs(runs_json: Mapping, labels: Sequence[str], scale: str = "target",
                      root: str | Path | None = None) -> dict[str, str]:
    """``{label: run_dir}`` of a pipeline's ``full_scale/runs.json`` document, for the labels present; relative
    run directories (the pipeline writes them relative to its output directory) are joined to ``root``."""
    out = {}
    for label in labels:
        run = runs_json.get("runs", {}).get(label) or {}
        record = run.get(scale) or {}
        if record and "run_dir" not in record:  # target scale: one record per seed; the first seed's run
            record = record[min(record, key=int)]
        if record.get("run_dir"):
            out[label] = str(Path(root) / record["run_dir"]) if root is not None else record["run_dir"]
    return out


__all__ = ["regmix_sections", "fit_sections", "importance_section", "search_sections", "correlation_section",
           "weight_loss_correlation", "validation_curve", "phase_boundaries", "phase_table_rows", "curves_sections",
           "labelled_run_dirs"]

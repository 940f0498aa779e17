"""One self-contained HTML report (PNG plots embedded as base64), readable without running Python.

Building blocks, so other stages can add their own sections::

    sections = [text_section("Setup", "<p>...</p>"), figure_section("Losses", fig), table_section("Runs", df)]
    build_report(sections, "report.html", title="RegMix")

:func:`regmix_sections` makes the regression/search sections from a ``fit`` output directory, a ``search``
output directory and the training runs: predicted vs true on held-out runs (with Spearman rho), optimized
weights vs the prior and baselines, per-domain correlation of weight with loss (heatmap), feature importance,
and tables of the numbers behind them. Plots use matplotlib's Agg backend (no display needed).
"""

from __future__ import annotations

import base64
import html
import io
import logging
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Section:
    """A titled block of HTML. ``images`` are (file name, PNG bytes) already embedded in ``html``; they are
    also written as files when :func:`build_report` gets a ``png_dir``."""

    title: str
    html: str
    images: tuple[tuple[str, bytes], ...] = field(default=(), repr=False)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower() or "figure"


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def figure_png(fig: Any, dpi: int = 110) -> bytes:
    """PNG bytes of a matplotlib figure (closed afterwards)."""
    plt = _pyplot()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def figure_section(title: str, fig: Any, caption: str = "", name: str | None = None, dpi: int = 110) -> Section:
    """A section holding one figure (embedded as a base64 PNG) and an optional caption (plain text)."""
    png = figure_png(fig, dpi=dpi)
    data = base64.b64encode(png).decode("ascii")
    body = f'<figure><img alt="{html.escape(title)}" src="data:image/png;base64,{data}">'
    if caption:
        body += f"<figcaption>{html.escape(caption)}</figcaption>"
    body += "</figure>"
    return Section(title, body, (((name or _slug(title)) + ".png", png),))


def table_html(frame: Any, float_format: str = "{:.4g}") -> str:
    """An HTML table from a pandas DataFrame (or a list of dict rows)."""
    import pandas as pd

    if not isinstance(frame, pd.DataFrame):
        frame = pd.DataFrame(list(frame))
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    rows = []
    for _, row in frame.iterrows():
        cells = []
        for v in row.tolist():
            if isinstance(v, (float, np.floating)):
                text = "" if not np.isfinite(v) else float_format.format(v)
            else:
                text = "" if v is None else str(v)
            cells.append(f"<td>{html.escape(text)}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def table_section(title: str, frame: Any, caption: str = "", float_format: str = "{:.4g}") -> Section:
    body = table_html(frame, float_format)
    if caption:
        body = f"<p>{html.escape(caption)}</p>" + body
    return Section(title, body)


def text_section(title: str, text: str, *, raw_html: bool = False) -> Section:
    """Plain text (escaped, paragraphs split on blank lines) or ``raw_html``."""
    if raw_html:
        return Section(title, text)
    paras = [p.strip() for p in text.split("\n\n") if p.strip()]
    return Section(title, "".join(f"<p>{html.escape(p)}</p>" for p in paras))


_STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;
color:#222;line-height:1.45}
h1{border-bottom:2px solid #333;padding-bottom:.2em}h2{margin-top:2em;border-bottom:1px solid #ccc}
table{border-collapse:collapse;margin:1em 0;font-size:.9em}th,td{border:1px solid #ccc;padding:.25em .6em;
text-align:right}th{background:#f2f2f2}td:first-child,th:first-child{text-align:left}
figure{margin:1em 0}img{max-width:100%;height:auto}figcaption{color:#555;font-size:.9em}
nav ul{columns:2}.meta{color:#666;font-size:.9em}
"""


def build_report(sections: Sequence[Section], path: str | Path, title: str = "RegMix report",
                 subtitle: str = "", png_dir: str | Path | None = None) -> Path:
    """Write one self-contained HTML file atomically (and the PNGs into ``png_dir`` when given)."""
    from .fileio import atomic_write_bytes, atomic_write_text

    ids = []
    for i, s in enumerate(sections):
        ids.append(f"s{i + 1}-{_slug(s.title)}")
    toc = "".join(f'<li><a href="#{i}">{html.escape(s.title)}</a></li>' for i, s in zip(ids, sections))
    body = "".join(f'<section id="{i}"><h2>{html.escape(s.title)}</h2>{s.html}</section>'
                   for i, s in zip(ids, sections))
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    doc = (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
           f"<style>{_STYLE}</style></head><body><h1>{html.escape(title)}</h1>"
           f"<p class='meta'>{html.escape(subtitle)}{' - ' if subtitle else ''}generated {stamp} by "
           f"regmix-megatron</p><nav><ul>{toc}</ul></nav>{body}</body></html>\n")
    if png_dir is not None:
        for s in sections:
            for name, png in s.images:
                atomic_write_bytes(Path(png_dir) / name, png)
    return atomic_write_text(path, doc)


# ---- the regression / search plots ----------------------------------------------------------------------
def plot_predicted_vs_true(predictions: Any, target: str) -> Any:
    """Scatter of held-out predicted vs true target, one panel per regressor, Spearman rho in each title."""
    from .regression.metrics import pearson, spearman

    plt = _pyplot()
    frame = predictions[predictions["target"] == target]
    kinds = list(dict.fromkeys(frame["regressor"]))
    fig, axes = plt.subplots(1, max(1, len(kinds)), figsize=(5.2 * max(1, len(kinds)), 4.8), squeeze=False)
    for ax, kind in zip(axes[0], kinds):
        part = frame[frame["regressor"] == kind]
        split = "test" if (part["split"] == "test").any() else "cv"
        part = part[part["split"] == split]
        y, p = part["true"].to_numpy(float), part["predicted"].to_numpy(float)
        ax.scatter(y, p, s=12, alpha=0.6, edgecolors="none")
        lo, hi = float(min(y.min(), p.min())), float(max(y.max(), p.max()))
        pad = 0.03 * (hi - lo or 1.0)
        ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], color="grey", lw=1, ls="--", label="y = x")
        rho = spearman(y, p) if len(y) > 1 else float("nan")
        r = pearson(y, p) if len(y) > 1 else float("nan")
        where = "test runs" if split == "test" else "out-of-fold (CV)"
        ax.set_title(f"{kind}: Spearman rho = {rho:.4f} (x100 {100 * rho:.2f})\nPearson r = {r:.4f}, "
                     f"{len(y)} {where}", fontsize=10)
        ax.set_xlabel(f"true {target}")
        ax.set_ylabel("predicted")
        ax.legend(loc="upper left", fontsize=8)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def plot_weights(domains: Sequence[str], mixtures: Mapping[str, Sequence[float]],
                 upper: Sequence[float] | None = None) -> Any:
    """Grouped horizontal bars: weight per domain for each labelled mixture (first = the search result)."""
    plt = _pyplot()
    domains = list(domains)
    labels = list(mixtures)
    height = 0.8 / max(1, len(labels))
    fig, ax = plt.subplots(figsize=(9, min(16.0, 0.13 * len(domains) * max(3, len(labels)) + 2.0)))
    y = np.arange(len(domains))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, label in enumerate(labels):
        w = np.asarray(mixtures[label], dtype=float)
        ax.barh(y + (i - (len(labels) - 1) / 2) * height, w, height=height, label=label,
                color=colors[i % len(colors)], edgecolor="black" if i == 0 else "none", linewidth=0.6)
    if upper is not None:
        u = np.minimum(np.asarray(upper, dtype=float), 1.0)
        ax.scatter(u, y, marker="|", s=300, color="black", label="cap (upper bound)", zorder=5)
    ax.set_yticks(y)
    ax.set_yticklabels(domains)
    ax.invert_yaxis()
    ax.set_xscale("function", functions=(np.sqrt, np.square))  # small weights stay visible
    ax.set_xlim(0, 1.0)
    ax.set_xticks([0, 0.001, 0.01, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0])
    ax.set_xticklabels(["0", ".001", ".01", ".05", ".1", ".2", ".4", ".6", ".8", "1"])
    ax.set_xlabel("weight (fraction of training tokens, square-root scale)")
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(axis="x", alpha=0.3)
    ax.set_title("Optimized mixture vs prior and baselines")
    fig.tight_layout()
    return fig


def weight_loss_correlation(runs: Any) -> Any:
    """DataFrame (domains x loss columns) of Spearman correlation between a domain's weight and a loss."""
    import pandas as pd

    from .regression.metrics import spearman

    columns = list(runs.metric_domains) or list(runs.metrics.columns)
    out = pd.DataFrame(index=list(runs.domains), columns=columns, dtype=float)
    for j, col in enumerate(columns):
        y = runs.metrics[col].to_numpy(float)
        ok = np.isfinite(y)
        for i, d in enumerate(runs.domains):
            w = runs.weights[ok, i]
            out.loc[d, col] = spearman(w, y[ok]) if ok.sum() > 2 and np.ptp(w) > 0 else np.nan
    return out


def plot_weight_loss_heatmap(corr: Any, target: str | None = None, short_names: Mapping[str, str] | None = None
                             ) -> Any:
    plt = _pyplot()
    values = corr.to_numpy(dtype=float)
    cols = [(short_names or {}).get(c, c) for c in corr.columns]
    fig, ax = plt.subplots(figsize=(1.0 + 0.55 * len(cols) + 2.5, 0.45 * len(corr.index) + 2.5))
    im = ax.imshow(values, cmap="RdBu_r", vmin=-1, vmax=1, aspect="auto")
    ax.set_xticks(range(len(cols)))
    ax.set_xticklabels(cols, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(len(corr.index)))
    ax.set_yticklabels(corr.index, fontsize=8)
    ax.set_xlabel("validation loss of")
    ax.set_ylabel("training weight of")
    for i in range(values.shape[0]):
        for j in range(values.shape[1]):
            if np.isfinite(values[i, j]):
                ax.text(j, i, f"{values[i, j]:.2f}", ha="center", va="center", fontsize=6,
                        color="white" if abs(values[i, j]) > 0.6 else "black")
    if target is not None and target in list(corr.columns):
        j = list(corr.columns).index(target)
        ax.add_patch(plt.Rectangle((j - 0.5, -0.5), 1, len(corr.index), fill=False, lw=2, ec="black"))
    fig.colorbar(im, ax=ax, label="Spearman rho (weight, loss)", shrink=0.8)
    ax.set_title("Per-domain correlation of weight with loss (training runs)\nnegative = more weight, lower loss")
    fig.tight_layout()
    return fig


def plot_feature_importance(domains: Sequence[str], importances: Mapping[str, Sequence[float]]) -> Any:
    """Horizontal bars of normalized importance per domain, one panel per model."""
    plt = _pyplot()
    labels = list(importances)
    fig, axes = plt.subplots(1, max(1, len(labels)), figsize=(5.2 * max(1, len(labels)),
                                                           0.35 * len(domains) + 1.8), squeeze=False)
    for ax, label in zip(axes[0], labels):
        imp = np.asarray(importances[label], dtype=float)
        imp = imp / imp.sum() if imp.sum() > 0 else imp
        order = np.argsort(imp)
        ax.barh(np.arange(len(domains)), imp[order])
        ax.set_yticks(np.arange(len(domains)))
        ax.set_yticklabels([domains[i] for i in order], fontsize=8)
        ax.set_xlabel("share of total importance")
        ax.set_title(label, fontsize=10)
        ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return fig


def _short_loss_name(column: str, mapping: Mapping[str, str]) -> str:
    return mapping.get(column, column)


def regmix_sections(fit_dir: str | Path | None = None, search_dir: str | Path | None = None,
                    runs: Any = None, target: str | None = None) -> list[Section]:
    """Sections for the regression (``fit_dir``) and search (``search_dir``) outputs and the training runs."""
    import pandas as pd

    from .fileio import read_json
    from .regression.models import load_regressor

    sections: list[Section] = []
    metrics = read_json(Path(fit_dir) / "metrics.json") if fit_dir else None
    search = read_json(Path(search_dir) / "search.json") if search_dir else None
    if target is None:
        if search is not None:
            target = search["target"]
        elif metrics is not None:
            target = next(iter(metrics["targets"]))
    if metrics is not None:
        rows = []
        for kind, block in metrics["regressors"].items():
            for t, e in block["targets"].items():
                cv = e.get("cv") or {}
                rows.append({"regressor": kind, "target": t, "evaluated on": e.get("evaluated_on"),
                             "Spearman x100": None if e.get("spearman") is None else f"{100 * e['spearman']:.2f}",
                             "Pearson": e.get("pearson"), "MSE": e.get("mse"),
                             "CV Spearman (mean)": cv.get("spearman_mean"), "CV folds": cv.get("num_folds")})
        data = metrics.get("data", {})
        note = (f"Training runs: {data.get('train', {}).get('num_runs')} ({data.get('train', {}).get('source')}). "
                + (f"Test runs: {data['test']['num_runs']} ({data['test']['source']})." if "test" in data else
                   "No separate test set: metrics are out-of-fold cross-validation."))
        sections.append(table_section("Regression metrics", pd.DataFrame(rows), note))
        pred_path = Path(fit_dir) / "predictions.csv"
        if pred_path.exists():
            predictions = pd.read_csv(pred_path)
            if target in set(predictions["target"]):
                sections.append(figure_section(
                    "Predicted vs true on held-out runs", plot_predicted_vs_true(predictions, target),
                    "Each point is a run the model did not see while fitting. Rank correlation (Spearman) is "
                    "what matters for search.", name="predicted_vs_true"))
        importances = {}
        domains = None
        for kind, block in metrics["regressors"].items():
            entry = block["targets"].get(target)
            if entry and entry.get("model"):
                model = load_regressor(Path(fit_dir) / entry["model"])
                domains = list(model.domains)
                label = f"{kind} ({'gain' if kind == 'lightgbm' else '|coefficient|'})"
                importances[label] = model.feature_importance()
        if importances:
            sections.append(figure_section("Feature importance", plot_feature_importance(domains, importances),
                                           f"Which domain weights the models rely on to predict {target}. "
                                           "LightGBM: total split gain. Linear: |coefficient|; since weights "
                                           "sum to 1 the coefficients are only defined relative to each other "
                                           "(large ones often belong to rarely-sampled domains).",
                                           name="feature_importance"))
    if search is not None:
        domains = search["domains"]
        mixtures = {"regmix (search result)": [search["result"]["weights"].get(d, 0.0) for d in domains]}
        for name, b in search["baselines"].items():
            mixtures[name] = [b["weights"].get(d, 0.0) for d in domains]
        upper = [search["bounds"]["upper"][d] for d in domains]
        sections.append(figure_section("Optimized weights vs prior and baselines",
                                       plot_weights(domains, mixtures, upper),
                                       "Black ticks: the per-domain caps the search respected.", name="weights"))
        rows = [{"mixture": "regmix (search result)", f"predicted {search['target']}": search["result"]["predicted"],
                 "within caps": search["result"]["within_caps"]}]
        rows += [{"mixture": n, f"predicted {search['target']}": b["predicted"], "within caps": b["within_caps"]}
                 for n, b in search["baselines"].items()]
        cfg = search["config"]
        sections.append(table_section(
            "Search result and baselines", pd.DataFrame(rows),
            f"{cfg['num_candidates']:,} candidates (seed {cfg['seed']}), top-{cfg['top_k']} averaged; objective: "
            f"{search['objective']} the predicted target.", float_format="{:.5f}"))
        wt = pd.DataFrame({"domain": domains, **{k: v for k, v in mixtures.items()}, "cap": upper})
        sections.append(table_section("Weights", wt, float_format="{:.4f}"))
    if runs is not None:
        corr = weight_loss_correlation(runs)
        short = {c: runs.metric_domains.get(c, c) for c in corr.columns}
        sections.append(figure_section(
            "Correlation of domain weight with loss", plot_weight_loss_heatmap(corr, target, short),
            f"Spearman correlation over {runs.num_runs} training runs; the target column is outlined.",
            name="weight_loss_heatmap"))
    return sections

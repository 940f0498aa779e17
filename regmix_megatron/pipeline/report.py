"""The pipeline view of the report: stage timings, the sweep's loss table, the search result, the target
comparison and the rank-invariance figure. PNGs go to ``OUT/report/``; the HTML embeds them (one file that
reads without Python).
"""

from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import Mapping, Sequence

import pandas as pd

from ..fileio import read_json
from . import figures
from .config import AVERAGE

#: Sweep rows shown in the report table (best first); the CSV has all of them.
MAX_SWEEP_ROWS = 64


def img(path: Path, alt: str) -> str:
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def section(title: str, body: str, anchor: str) -> tuple[str, str, str]:
    return (anchor, title, body)


def stage_timing_section(records: Sequence[Mapping], fig_dir: Path) -> tuple[str, str, str]:
    timings = [(r["stage"], float(r.get("seconds", 0.0))) for r in records]
    png = figures.plot_stage_timings(timings, fig_dir / "stage_timings.png")
    rows = [(r["stage"], float(r.get("seconds", 0.0)), r.get("finished_at", ""),
             r["outputs"].get("summary", "")) for r in records]
    body = (f"<p>Seconds each stage took when it last ran (stages skipped on a rerun keep the time of the run "
            f"that produced their outputs). Measured on this machine; other work on it makes them noisy.</p>"
            + img(png, "stage timings")
            + figures.html_table(["stage", "seconds", "finished (UTC)", "key output"], rows, 1))
    return section("Pipeline stages", body, "stages")


def sweep_section(results_csv: Path, target: str) -> tuple[str, str, str]:
    frame = pd.read_csv(results_csv)
    weight_cols = [c for c in frame.columns if c.startswith("weight/")]
    loss_cols = [c for c in frame.columns if c.startswith("val_loss/")]
    domains = [c.split("/", 1)[1] for c in weight_cols]
    if target == AVERAGE:
        frame["target"] = frame[loss_cols].mean(axis=1)
    else:
        frame["target"] = frame[f"val_loss/{target}"]
    frame = frame.sort_values("target", kind="stable").reset_index(drop=True)
    shown = frame.head(MAX_SWEEP_ROWS)
    header = ["#", "run"] + [f"w {d}" for d in domains] + [f"loss {d}" for d in domains] + [f"target ({target})"]
    rows = []
    for i, r in shown.iterrows():
        rows.append([i + 1, str(r["run_id"])[:8]] + [float(r[c]) for c in weight_cols]
                    + [float(r[c]) for c in loss_cols] + [float(r["target"])])
    losses = frame["target"].to_numpy()
    note = (f"<p>{len(frame)} proxy runs, sorted by the target loss (best first)"
            + (f"; the best {MAX_SWEEP_ROWS} are shown" if len(frame) > MAX_SWEEP_ROWS else "")
            + f". Target loss range {losses.min():.4f} .. {losses.max():.4f} (spread "
            f"{losses.max() - losses.min():.4f}). Full table: <code>{html.escape(str(results_csv))}</code>.</p>")
    return section("Sweep: proxy losses", note + '<div class="wide">' + figures.html_table(header, rows, 3)
                   + "</div>", "sweep")


def fit_section(metrics_json: Path) -> tuple[str, str, str]:
    m = read_json(metrics_json)
    rows = []
    for kind, block in m.get("regressors", {}).items():
        rows.append([kind, block.get("spearman"), block.get("pearson"), block.get("mse"),
                     block.get("evaluated_on", "")])
    rows = [[("n/a" if v is None else v) for v in r] for r in rows]
    body = (f"<p>Regressors from mixture weights to the target loss, {m.get('cv_folds')}-fold cross-validation on "
            "the sweep (Spearman rank correlation is the headline: the search only needs the ranking).</p>"
            + figures.html_table(["regressor", "Spearman", "Pearson", "MSE", "evaluated on"], rows, 4))
    return section("Fit", body, "fit")


def search_section(search_json: Path) -> tuple[str, str, str]:
    doc = read_json(search_json)
    domains = doc["domains"]
    header = ["mixture", "predicted"] + domains
    rows = [["RegMix", doc["result"]["predicted"]] + [doc["result"]["weights"].get(d, 0.0) for d in domains]]
    for name, b in doc["baselines"].items():
        rows.append([name, b["predicted"]] + [b["weights"].get(d, 0.0) for d in domains])
    body = (f"<p>{doc['config']['num_candidates']:,} candidate mixtures simulated with the sweep's sampler and "
            f"caps; the top {doc['config']['top_k']} by predicted {html.escape(str(doc['target']))} averaged. "
            "Predictions are the proxy-scale regressor's.</p>"
            + '<div class="wide">' + figures.html_table(header, rows, 3) + "</div>")
    return section("Search: the RegMix mixture", body, "search")


def target_section(evaluation: Mapping, fig_dir: Path) -> tuple[str, str, str]:
    png = figures.plot_target_comparison(evaluation, fig_dir / "target_comparison.png")
    comp = evaluation["comparison"]
    domains = sorted({d for r in evaluation["runs"] for d in r["val_loss"]})
    header = ["mixture", "target loss", "proxy loss", "predicted"] + [f"loss {d}" for d in domains]
    rows = []
    for r in evaluation["runs"]:
        rows.append([figures.short_label(r["label"]), r["target_loss"],
                     "-" if r["proxy_loss"] is None else r["proxy_loss"],
                     "-" if r["predicted_loss"] is None else r["predicted_loss"]]
                    + [r["val_loss"].get(d, float("nan")) for d in domains])
    lines = [f"RegMix reaches {comp['regmix_target_loss']:.4f} on the target ({html.escape(evaluation['target'])}) "
             f"and ranks {comp['regmix_rank']} of {comp['num_target_runs']} target-scale runs."]
    for name, b in comp["baselines"].items():
        verdict = "better than" if b["regmix_minus_baseline"] < 0 else "worse than"
        lines.append(f"vs {name}: {b['target_loss']:.4f} (RegMix {verdict} it by "
                     f"{abs(b['regmix_minus_baseline']):.4f})")
    body = ("<ul>" + "".join(f"<li>{html.escape(x)}</li>" for x in lines) + "</ul>" + img(png, "target comparison")
            + '<div class="wide">' + figures.html_table(header, rows, 4) + "</div>")
    return section("Target runs: RegMix vs baselines", body, "targets")


def rank_section(evaluation: Mapping, fig_dir: Path) -> tuple[str, str, str]:
    png = figures.plot_rank_invariance(evaluation, fig_dir / "rank_invariance.png")
    rank = evaluation["rank_invariance"]
    rho = rank.get("spearman")
    body = (f"<p>Mixtures trained at both scales, ranked by proxy-scale and by target-scale target loss. Spearman "
            f"rho = {'n/a' if rho is None else f'{rho:.3f}'} over {rank['num_mixtures']} mixtures (RegMix rests on "
            "this ranking transferring from small to large models; with a handful of mixtures rho is a coarse "
            "estimate).</p>" + img(png, "rank invariance")
            + figures.html_table(["mixture", "proxy loss", "target loss"],
                                 [[figures.short_label(m["label"]), m["proxy_loss"], m["target_loss"]]
                                  for m in rank["mixtures"]], 4))
    return section("Rank invariance", body, "rank")


CSS = """
body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;font-size:12px;margin:.5em 0}td,th{border:1px solid #ccc;padding:2px 6px;
text-align:right}th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}
.wide{overflow-x:auto}img{max-width:100%;display:block;margin:.5em 0}code{font-size:12px}
"""


def render_page(title: str, intro: str, sections: Sequence[tuple[str, str, str]]) -> str:
    toc = "".join(f'<li><a href="#{a}">{html.escape(t)}</a></li>' for a, t, _ in sections)
    body = "".join(f'<h2 id="{a}">{html.escape(t)}</h2>\n{b}\n' for a, t, b in sections)
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{CSS}</style></head><body><h1>{html.escape(title)}</h1>{intro}<ul>{toc}</ul>{body}"
            "</body></html>\n")


def headline(evaluation: Mapping) -> str:
    comp = evaluation["comparison"]
    rank = evaluation["rank_invariance"]
    beats = comp["regmix_beats"]
    others = sorted(comp["baselines"])
    rho = rank.get("spearman")
    return (f"<p><b>Target:</b> {html.escape(evaluation['target'])}. <b>RegMix</b> target-scale loss "
            f"{comp['regmix_target_loss']:.4f}; it beats {len(beats)} of {len(others)} baselines"
            + (f" ({', '.join(beats)})" if beats else "")
            + f". Rank invariance (Spearman, proxy vs target scale): {'n/a' if rho is None else f'{rho:.2f}'} "
            f"over {rank['num_mixtures']} mixtures.</p>")


def numbers_for_log(evaluation: Mapping) -> dict:
    """The headline numbers (for docs/LOG.md and the CLI)."""
    comp = evaluation["comparison"]
    return {"regmix": comp["regmix_target_loss"],
            **{k: v["target_loss"] for k, v in comp["baselines"].items()},
            "rank_spearman": evaluation["rank_invariance"].get("spearman")}


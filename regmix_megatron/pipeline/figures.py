"""Figures of the pipeline view in the report (matplotlib Agg figures; ``regmix_megatron.report`` embeds them).

- stage timings (horizontal bars, seconds per stage of the run that produced each output);
- the target comparison: target-scale validation loss of RegMix and each baseline (bars), the sweep mixtures
  trained at target scale in grey;
- rank invariance: proxy-scale vs target-scale target loss of the mixtures trained at both scales, with rho.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

COLORS = {"regmix": "#d62728", "natural": "#1f77b4", "uniform": "#2ca02c", "target_only": "#9467bd"}
SWEEP_COLOR = "#7f7f7f"


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def short_label(label: str) -> str:
    return label if not label.startswith("sweep:") else f"sweep {label.split(':', 1)[1][:6]}"


def plot_stage_timings(timings: Sequence[tuple[str, float]]) -> Any:
    plt = _plt()
    names = [n for n, _ in timings]
    secs = np.array([s for _, s in timings], dtype=float)
    fig, ax = plt.subplots(figsize=(6.5, 0.35 * len(names) + 1.0))
    y = np.arange(len(names))[::-1]
    ax.barh(y, secs, color="#4c72b0")
    ax.set_yticks(y, names)
    for yi, s in zip(y, secs):
        ax.text(s, yi, f" {s:.0f} s", va="center", fontsize=8)
    ax.set_xlabel("seconds (when the stage last ran)")
    ax.set_title(f"Stage timings (total {secs.sum() / 60:.1f} min)")
    ax.set_xlim(0, max(secs.max(), 1.0) * 1.2)
    return fig


def plot_target_comparison(evaluation: Mapping) -> Any:
    plt = _plt()
    rows = list(evaluation["runs"])
    labels = [short_label(r["label"]) for r in rows]
    losses = np.array([r["target_loss"] for r in rows])
    colors = [COLORS.get(r["label"], SWEEP_COLOR) for r in rows]
    fig, ax = plt.subplots(figsize=(max(5.0, 0.8 * len(rows) + 1.5), 3.8))
    x = np.arange(len(rows))
    bars = ax.bar(x, losses, color=colors)
    for b, v in zip(bars, losses):
        ax.text(b.get_x() + b.get_width() / 2, v, f"{v:.3f}", ha="center", va="bottom", fontsize=8)
    ax.set_xticks(x, labels, rotation=30, ha="right")
    lo, hi = float(losses.min()), float(losses.max())
    pad = max((hi - lo) * 0.5, 0.02)
    ax.set_ylim(lo - pad, hi + pad * 0.6)
    target = evaluation["target"]
    ax.set_ylabel(f"target-scale val loss ({target})")
    ax.set_title("Target runs: RegMix vs baselines (lower is better)")
    return fig


def plot_rank_invariance(evaluation: Mapping) -> Any:
    plt = _plt()
    rank = evaluation["rank_invariance"]
    pts = rank["mixtures"]
    fig, ax = plt.subplots(figsize=(5.2, 4.4))
    for p in pts:
        c = COLORS.get(p["label"], SWEEP_COLOR)
        ax.scatter(p["proxy_loss"], p["target_loss"], color=c, s=45, zorder=3)
        ax.annotate(short_label(p["label"]), (p["proxy_loss"], p["target_loss"]), fontsize=7,
                    xytext=(4, 3), textcoords="offset points")
    rho = rank.get("spearman")
    ax.set_xlabel(f"proxy-scale val loss ({evaluation['target']})")
    ax.set_ylabel(f"target-scale val loss ({evaluation['target']})")
    rho_text = "n/a" if rho is None else f"{rho:.2f}"
    ax.set_title(f"Rank invariance: Spearman rho = {rho_text} (n = {rank['num_mixtures']})")
    ax.grid(alpha=0.3)
    return fig


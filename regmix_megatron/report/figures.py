"""Every figure of the reports (matplotlib, Agg backend; imported only when plotting).

- sampling: the per-domain weight distributions of sampled mixtures (``regmix-megatron sample --plot``);
- regression and search: predicted vs true on held-out runs, optimized weights vs prior and baselines, the
  weight-loss correlation heatmap, feature importance;
- the pipeline view: stage timings, the target comparison (RegMix vs baselines at target scale, sweep mixtures
  in grey), rank invariance (proxy-scale vs target-scale target loss);
- schedules: per-domain validation curves of runs with the phase boundaries marked.

Each ``plot_*`` returns a figure for :func:`regmix_megatron.report.page.figure_section`, except
:func:`plot_mixture_distributions`, which writes its PNG itself.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np

from ..fileio import atomic_path

if TYPE_CHECKING:
    from ..full_scale.evaluation import Evaluation

COLORS = {"regmix": "#d62728", "natural": "#1f77b4", "uniform": "#2ca02c", "target_only": "#9467bd",
          "best_domain": "#8c564b", "best_sweep": "#e377c2", "regmix_static": "#ff7f0e"}
SWEEP_COLOR = "#7f7f7f"


def pyplot():
    """``matplotlib.pyplot`` on the Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


# ---- sampling ---------------------------------------------------------------------------------------------
def _bound_markers(ax, ypos: np.ndarray, *, prior, upper, lower) -> list:
    """Mark the prior (red diamond), the caps below 1 (black bar) and positive lower bounds (purple bar) on each
    domain's row; return the legend handles of the markers drawn."""
    handles = []
    if prior is not None:
        handles.append(ax.scatter(prior, ypos, marker="D", s=36, color="#c0392b", zorder=5,
                                  label="prior (token share)"))
    if upper is not None:
        capped = np.asarray(upper) < 1.0
        if np.any(capped):
            handles.append(ax.scatter(np.asarray(upper)[capped], ypos[capped], marker="|", s=260,
                                      color="black", linewidths=2, zorder=6, label="cap (max weight)"))
    if lower is not None and np.any(np.asarray(lower) > 0):
        pos = np.asarray(lower) > 0
        handles.append(ax.scatter(np.asarray(lower)[pos], ypos[pos], marker="|", s=260, color="#8e44ad",
                                  linewidths=2, zorder=6, label="lower bound"))
    return handles


def plot_mixture_distributions(
    mixtures: np.ndarray,
    domains: Sequence[str],
    output: str | Path,
    *,
    prior: np.ndarray | None = None,
    upper: np.ndarray | None = None,
    lower: np.ndarray | None = None,
    min_weight: float = 2e-4,
    title: str | None = None,
) -> Path:
    """PNG of per-domain weight distributions (box + jittered points, one row per domain) against the
    prior (red diamond) and the caps (black bar). The weight axis is symmetric-log (linear below
    ``min_weight``) so small domains stay readable; zero weights sit at 0. Written atomically."""
    plt = pyplot()
    w = np.asarray(mixtures, dtype=np.float64)
    num_rows, num_domains = w.shape
    if num_domains != len(domains):
        raise ValueError(f"{len(domains)} domain names for {num_domains} columns")
    fig_h = 1.4 + 0.42 * num_domains
    fig, ax = plt.subplots(figsize=(9.0, fig_h), dpi=110)
    ypos = np.arange(num_domains)[::-1]
    ax.boxplot([w[:, j] for j in range(num_domains)], positions=ypos, orientation="horizontal", widths=0.6,
               showfliers=False, patch_artist=True,
               boxprops=dict(facecolor="#cfe0f3", edgecolor="#3b6ea5"), medianprops=dict(color="#3b6ea5"),
               whiskerprops=dict(color="#3b6ea5"), capprops=dict(color="#3b6ea5"))
    rng = np.random.default_rng(0)
    for j in range(num_domains):
        jitter = rng.uniform(-0.22, 0.22, size=num_rows)
        ax.scatter(w[:, j], ypos[j] + jitter, s=4, color="#1f4e79", alpha=0.35, linewidths=0, zorder=3)
    handles = _bound_markers(ax, ypos, prior=prior, upper=upper, lower=lower)
    ax.set_xscale("symlog", linthresh=max(min_weight, 1e-6))
    ax.set_xlim(0, 1.05)
    ax.set_yticks(ypos)
    zero_share = (w == 0).mean(axis=0)
    ax.set_yticklabels([f"{d}\n{z:.0%} zero" if z > 0 else d for d, z in zip(domains, zero_share)], fontsize=8)
    ax.set_xlabel("weight (fraction of training tokens, symlog axis)")
    ax.grid(axis="x", alpha=0.3)
    ax.set_title(title or f"{num_rows} sampled mixtures")
    legend_h = 0.0
    if handles:
        legend_h = 0.45 / fig_h
        fig.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, legend_h, 1, 1))
    output = Path(output)
    with atomic_path(output, suffix=".png") as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return output


# ---- regression and search --------------------------------------------------------------------------------
def plot_predicted_vs_true(predictions: Any, target: str) -> Any:
    """Scatter of held-out predicted vs true target, one panel per regressor, Spearman rho in each title."""
    from ..regression.metrics import pearson, spearman

    plt = pyplot()
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
    plt = pyplot()
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


def plot_weight_loss_heatmap(corr: Any, target: str | None = None, short_names: Mapping[str, str] | None = None
                             ) -> Any:
    plt = pyplot()
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
    plt = pyplot()
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


# ---- the pipeline view ------------------------------------------------------------------------------------
def target_label(evaluation: "Evaluation") -> str:
    """The display label of an ``evaluation.json``'s target."""
    return evaluation.target_label


def short_label(label: str) -> str:
    """A mixture's label for plots and tables: ``sweep:<run id>`` as ``sweep <run id>`` (the full 16-digit id)."""
    return label if not label.startswith("sweep:") else f"sweep {label.split(':', 1)[1]}"


def plot_stage_timings(timings: Sequence[tuple[str, float]]) -> Any:
    plt = pyplot()
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


def plot_target_comparison(evaluation: "Evaluation") -> Any:
    """Each compared mixture's target loss at target scale, one row per mixture, best at the top: one dot per
    seed, a tick at the mean, and the band of +-threshold sd around RegMix's mean (a baseline inside it is within
    noise). Dots, not bars: the axis covers only the losses' range and its lower end is written on the axis label,
    so no length suggests a ratio."""
    plt = pyplot()
    rows = sorted(evaluation.mixtures.values(), key=lambda m: m.mean)
    labels = [short_label(r.label) for r in rows]
    means = np.array([r.mean for r in rows])
    colors = [COLORS.get(r.label, SWEEP_COLOR) for r in rows]
    fig, ax = plt.subplots(figsize=(7.0, 0.38 * len(rows) + 1.6))
    y = np.arange(len(rows))[::-1]
    points = list(means)
    for yi, r, c in zip(y, rows, colors):
        losses = list(r.target_losses.values())
        points += losses
        ax.scatter(losses, np.full(len(losses), yi), color=c, s=40, zorder=3, edgecolors="black", linewidths=0.4)
        ax.plot([r.mean], [yi], marker="|", markersize=16, color="black", zorder=4)
        ax.text(r.mean, yi + 0.2, f"{r.mean:.3f}", ha="center", va="bottom", fontsize=8)
    noise = evaluation.noise
    if noise.sd and "regmix" in evaluation.mixtures:
        regmix = evaluation.mixtures["regmix"].mean
        half = noise.threshold_sd * noise.sd
        ax.axvspan(regmix - half, regmix + half, color=COLORS.get("regmix", "tab:red"), alpha=0.12, zorder=0,
                   label=f"RegMix mean +- {noise.threshold_sd:g} sd (within noise)")
        ax.legend(fontsize=7, loc="lower right")
    ax.set_yticks(y, labels)
    lo, hi = float(min(points)), float(max(points))
    pad = max((hi - lo) * 0.15, 0.005)
    ax.set_xlim(lo - pad, hi + pad)
    ax.set_ylim(-0.7, len(rows) - 0.3)
    ax.set_xlabel(f"target-scale {evaluation.split} loss ({target_label(evaluation)}); "
                  f"axis from {lo - pad:.3f}, not 0")
    ax.set_title("Target runs: RegMix vs baselines (lower is better; dots: seeds, tick: mean)")
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return fig


def plot_rank_invariance(evaluation: "Evaluation") -> Any:
    """Proxy-scale vs target-scale loss, one marker per mixture, labelled in the legend (labels on the points
    overlap when losses are close)."""
    plt = pyplot()
    rank = evaluation.rank_invariance
    pts = sorted(rank.mixtures, key=lambda p: p.target_loss)
    fig, ax = plt.subplots(figsize=(8.2, 4.4))
    markers = "osD^vP*Xph<>"
    for i, p in enumerate(pts):
        c = COLORS.get(p.label, plt.cm.Greys(0.35 + 0.5 * i / max(1, len(pts) - 1)))
        ax.scatter(p.proxy_loss, p.target_loss, color=c, marker=markers[i % len(markers)], s=55, zorder=3,
                   edgecolors="black", linewidths=0.4,
                   label=f"{short_label(p.label)}: {p.proxy_loss:.3f} -> {p.target_loss:.3f}")
    rho = rank.spearman
    ax.set_xlabel(f"proxy-scale valid loss ({target_label(evaluation)})")
    ax.set_ylabel(f"target-scale valid loss, mean over seeds ({target_label(evaluation)})")
    rho_text = "n/a" if rho is None else f"{rho:.2f}"
    threshold = rank.threshold
    verdict = "" if threshold is None or rho is None else (" >= " if rho >= threshold else " < ") + f"{threshold:.2f}"
    ax.set_title(f"Rank invariance: Spearman rho = {rho_text}{verdict} (n = {rank.num_mixtures})")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=7, frameon=False,
              title="mixture: proxy -> target", title_fontsize=7)
    fig.tight_layout()
    return fig



# ---- schedules ------------------------------------------------------------------------------------------------
def plot_phase_curves(curves: Mapping[str, Sequence[tuple[int, Mapping[str, float]]]], boundaries: Sequence[int],
                      domains: Sequence[str], highlight: str | None = None) -> Any:
    """One panel per domain: validation loss against the step for each run of ``curves`` (label -> [(step,
    {domain: loss})]), a dashed vertical line at each phase boundary (the step a phase starts), and the domain's
    name in ``highlight`` (the target) in bold."""
    plt = pyplot()
    cols = min(4, len(domains))
    rows = int(np.ceil(len(domains) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.5 * rows), squeeze=False, sharex=True)
    palette = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, d in enumerate(domains):
        ax = axes[i // cols][i % cols]
        for j, (label, points) in enumerate(curves.items()):
            pts = [(s, v[d]) for s, v in points if d in v]
            if pts:
                xs, ys = zip(*pts)
                ax.plot(xs, ys, marker="o", ms=2.5, lw=1.2, color=COLORS.get(label, palette[j % len(palette)]),
                        label=short_label(label), ls="-" if j == 0 else "--")
        for b in boundaries:
            ax.axvline(b, color="black", lw=0.8, ls=":")
        ax.set_title(d, fontsize=9, fontweight="bold" if d == highlight else "normal")
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    for k in range(len(domains), rows * cols):
        axes[k // cols][k % cols].axis("off")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper center", ncol=max(1, len(labels)), fontsize=8, frameon=False)
    fig.supxlabel("step (dotted: a phase starts)", fontsize=9)
    fig.supylabel("validation loss", fontsize=9)
    fig.tight_layout(rect=(0, 0, 1, 0.94))
    return fig

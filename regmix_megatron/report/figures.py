"""Plots people read faster than numbers (matplotlib, Agg backend; imported only when plotting)."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from .fileio import atomic_path


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


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
    plt = _pyplot()
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

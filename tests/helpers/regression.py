"""Synthetic sweep tables for the regression and search tests (real files in both formats, no mocks)."""

from __future__ import annotations

import numpy as np
import pandas as pd

DOMAINS = ["code", "news", "web", "wiki"]
#: LightGBM options that keep the tests fast.
FAST = {"num_rounds": 60, "learning_rate": 0.1}


def runs(n: int = 80, seed: int = 0, rounding: int = 4) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Mixture weights (rounded, so rows do not sum to 1 exactly, but within the 1e-3 the mixture rule allows)
    and a smooth per-domain loss with noise."""
    rng = np.random.default_rng(seed)
    w = rng.dirichlet(np.full(len(DOMAINS), 0.5), size=n).round(rounding)
    w[w.sum(1) == 0, 0] = 1.0
    share = w / w.sum(1, keepdims=True)
    losses = {d: 4.0 - 1.2 * share[:, i] + 0.3 * share[:, (i + 1) % 4] ** 2 + 0.01 * rng.standard_normal(n)
              for i, d in enumerate(DOMAINS)}
    return w, losses


def results_table(path, n: int = 80, seed: int = 0, suffix: str = ".csv"):
    """Our results table (``weight/<d>``, ``val_loss/<d>``) at ``path`` with ``suffix``; (path, frame)."""
    w, losses = runs(n, seed)
    frame = pd.DataFrame({"run_id": [f"r{seed}-{i}" for i in range(n)], "mixture_hash": "h", "seed": 0})
    for i, d in enumerate(DOMAINS):
        frame[f"weight/{d}"] = w[:, i]
    for d in DOMAINS:
        frame[f"val_loss/{d}"] = losses[d]
    path = path.with_suffix(suffix)
    frame.to_parquet(path) if suffix == ".parquet" else frame.to_csv(path, index=False)
    return path, frame


def regmix_csvs(tmp_path, n: int = 80, seed: int = 0, name: str = "train"):
    """The RegMix published format: a mixture CSV and a loss CSV (rows in opposite orders)."""
    w, losses = runs(n, seed)
    idx = np.arange(1, n + 1)
    mix = pd.DataFrame({"index": idx, **{f"train_the_pile_{d}": w[:, i] for i, d in enumerate(DOMAINS)}})
    loss = pd.DataFrame({"index": idx[::-1], **{f"metric/the_pile_{d}_val_loss": losses[d][::-1] for d in DOMAINS}})
    m, l_ = tmp_path / f"{name}_mix.csv", tmp_path / f"{name}_loss.csv"
    mix.to_csv(m, index=False)
    loss.to_csv(l_, index=False)
    return m, l_, mix, loss

"""Figures (regmix_megatron/report/figures.py): every plot draws what it is given, on the Agg backend."""

from __future__ import annotations

import numpy as np
import pandas as pd

from regmix_megatron.full_scale.evaluation import Evaluation
from regmix_megatron.report import figures

def _mixture(label: str, mean: float, target_losses: dict) -> dict:
    """A compared mixture of evaluation.json; the figure reads its label, mean and per-seed losses."""
    return {"label": label, "mixture": {"code": 0.5, "legal": 0.5}, "mixture_hash": None,
            "run_ids": {s: None for s in target_losses}, "target_losses": target_losses, "mean": mean, "sd": None,
            "num_seeds": len(target_losses), "valid_losses": target_losses, "valid_mean": mean,
            "test_loss_by_domain": {}, "proxy_loss": None, "predicted_loss": None, "predicted_sd": None}


EVALUATION = Evaluation.from_json_obj({
    "format": "regmix-megatron/evaluation/v2",
    "target": {"code": 0.25, "legal": 0.75},
    "split": "test",
    "selection_split": "valid",
    "noise": {"unit": "pooled seed sd", "sd": 0.05, "dof": 1, "threshold_sd": 2.0},
    "mixtures": {"regmix": _mixture("regmix", 4.1, {"1": 4.05, "2": 4.15}),
                 "natural": _mixture("natural", 4.3, {"1": 4.3}),
                 "sweep:0123456789abcdef": _mixture("sweep:0123456789abcdef", 4.5, {"1": 4.5})},
    "comparison": {"regmix_mean": 4.1, "baselines": {}, "must_beat": [], "aim_met": False, "regmix_rank": 1,
                   "num_mixtures": 3},
    "rank_invariance": {"split": "valid", "spearman": 0.5, "pearson": None, "num_mixtures": 3, "threshold": 0.6,
                        "passed": False, "chance_level": None,
                        "mixtures": [{"label": "regmix", "proxy_loss": 5.0, "target_loss": 4.1},
                                     {"label": "natural", "proxy_loss": 5.2, "target_loss": 4.3},
                                     {"label": "sweep:0123456789abcdef", "proxy_loss": 5.1, "target_loss": 4.5}]},
    "fit": {},
}, "evaluation.json")


def _texts(fig) -> list[str]:
    return [t.get_text() for ax in fig.axes for t in (ax.title, ax.xaxis.label, ax.yaxis.label, *ax.texts)]


def test_pipeline_figures_label_the_target_and_the_mixtures():
    fig = figures.plot_target_comparison(EVALUATION)
    ax = fig.axes[0]
    ticks = sorted(zip(ax.get_yticks(), (t.get_text() for t in ax.get_yticklabels())), reverse=True)
    assert [label for _, label in ticks] == ["regmix", "natural", "sweep 0123456789abcdef"]  # best (lowest loss) on top
    # dots, not bars (no length suggests a ratio): the only patch is the noise band around RegMix's mean
    assert [p.get_label() for p in ax.patches] == ["RegMix mean +- 2 sd (within noise)"]
    lo, _ = ax.get_xlim()
    assert 0 < lo < 4.05 and f"axis from {lo:.3f}, not 0" in ax.get_xlabel()  # the truncated axis is said
    assert "target-scale test loss (0.25 code + 0.75 legal)" in ax.get_xlabel()
    dots = np.concatenate([c.get_offsets()[:, 0] for c in ax.collections if len(c.get_offsets())])
    assert sorted(np.round(dots, 6)) == [4.05, 4.15, 4.3, 4.5]  # one dot per seed
    fig = figures.plot_rank_invariance(EVALUATION)
    assert any("Spearman rho = 0.50 < 0.60 (n = 3)" in t for t in _texts(fig))
    ax = fig.axes[0]
    assert not ax.texts  # no labels on the points (they overlap when losses are close): the legend names them
    assert [t.get_text().split(":")[0] for t in ax.get_legend().get_texts()] == ["regmix", "natural",
                                                                                "sweep 0123456789abcdef"]
    fig = figures.plot_stage_timings([("corpus", 60.0), ("sweep", 120.0)])
    assert "Stage timings (total 3.0 min)" in _texts(fig) and " 120 s" in _texts(fig)
    figures.pyplot().close("all")


def test_regression_figures_have_one_panel_per_model():
    rng = np.random.default_rng(0)
    true = rng.random(30)
    predictions = pd.DataFrame({"target": "val_loss/web", "split": "cv", "true": np.r_[true, true],
                                "regressor": ["lightgbm"] * 30 + ["linear"] * 30,
                                "predicted": np.r_[true, true + rng.normal(0, 0.1, 30)]})
    fig = figures.plot_predicted_vs_true(predictions, "val_loss/web")
    assert len(fig.axes) == 2 and fig.axes[0].get_title().startswith("lightgbm: Spearman rho = 1.0000")
    fig = figures.plot_feature_importance(["a", "b", "c"], {"lightgbm": [1.0, 3.0, 0.0], "linear": [1.0, 1.0, 2.0]})
    assert [round(p.get_width(), 3) for p in fig.axes[0].patches] == [0.0, 0.25, 0.75]  # normalized, sorted
    corr = pd.DataFrame([[0.5, -0.2], [np.nan, 0.9]], index=["a", "b"], columns=["val_loss/a", "val_loss/b"])
    fig = figures.plot_weight_loss_heatmap(corr, "val_loss/b", {"val_loss/a": "a", "val_loss/b": "b"})
    assert [t.get_text() for t in fig.axes[0].texts] == ["0.50", "-0.20", "0.90"]  # NaN left blank
    fig = figures.plot_weights(["a", "b"], {"regmix": [0.3, 0.7], "uniform": [0.5, 0.5]}, upper=[0.4, 1.0])
    assert len(fig.axes[0].patches) == 4
    figures.pyplot().close("all")


def test_mixture_distributions_png(tmp_path):
    w = np.random.default_rng(0).dirichlet(np.ones(3), size=40)
    out = figures.plot_mixture_distributions(w, ["a", "b", "c"], tmp_path / "mix.png", prior=np.full(3, 1 / 3),
                                             upper=np.array([0.5, 1.0, 1.0]))
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and not list(tmp_path.glob(".tmp-*"))

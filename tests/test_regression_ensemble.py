"""The ensemble's statistics (regmix_megatron/regression/ensemble.py): bootstrap draws of whole mixture groups, the
combinations cross-validation chooses among, the spread."""

from __future__ import annotations

import numpy as np
import pytest

from regmix_megatron.regression.data import kfold_indices, mixture_groups
from regmix_megatron.regression.ensemble import (Combination, candidate_combinations, choose_combination,
                                                 convex_weights, group_bootstrap, spread)


def repeated_runs(num_mixtures: int = 30, repeats: int = 3, seed: int = 0) -> np.ndarray:
    """``num_mixtures`` distinct mixtures, each ``repeats`` times (noise-seed repeats), rows shuffled."""
    rng = np.random.default_rng(seed)
    x = np.repeat(rng.dirichlet(np.ones(4), size=num_mixtures), repeats, axis=0)
    return x[rng.permutation(x.shape[0])]


def test_group_bootstrap_keeps_repeats_together():
    x = repeated_runs()
    groups = mixture_groups(x)
    rng = np.random.default_rng(1)
    for _ in range(20):
        rows = group_bootstrap(groups, rng)
        drawn, counts = np.unique(groups[rows], return_counts=True)
        # every drawn mixture brings all 3 of its repeats, as many times as it was drawn
        assert np.all(counts % 3 == 0)
        assert rows.size == x.shape[0]  # as many groups as there are, all of size 3 here
        for g, c in zip(drawn, counts):
            assert sorted(rows[groups[rows] == g].tolist()) == sorted(np.flatnonzero(groups == g).tolist() * (c // 3))
        assert drawn.size < 30  # with replacement: some mixtures are left out


def test_cross_validation_chooses_the_members_and_their_combination():
    """Out-of-fold predictions of three kinds: two good ones with independent errors and a useless one. Their
    equal mean ranks better than either, so it is chosen; the useless kind gets no weight."""
    rng = np.random.default_rng(0)
    y = rng.normal(size=400)
    oof = {"lightgbm": y + 0.5 * rng.normal(size=400), "quadratic": y + 0.5 * rng.normal(size=400),
           "linear": rng.normal(size=400)}
    folds = kfold_indices(400, 5, seed=0)
    candidates = candidate_combinations(oof, y, folds)
    assert len(candidates) == 8 and {c.rule for c in candidates} == {"mean", "stacked"}  # 7 subsets + the stack
    chosen = choose_combination(candidates)
    assert set(chosen.weights) == {"lightgbm", "quadratic"}
    assert chosen.spearman == max(c.spearman for c in candidates)
    single = {tuple(c.weights): c.spearman for c in candidates if len(c.weights) == 1}
    assert chosen.spearman > max(single.values())
    # when one kind is far better, it is chosen alone (a mean would dilute it)
    oof["lightgbm"] = y + 0.01 * rng.normal(size=400)
    alone = choose_combination(candidate_combinations(oof, y, folds))
    assert list(alone.weights) == ["lightgbm"] and alone.rule == "mean"


def test_convex_weights_recover_a_known_blend_and_the_stack_is_scored_out_of_fold():
    rng = np.random.default_rng(3)
    p = rng.normal(size=(300, 3))
    y = p @ np.array([0.7, 0.3, 0.0]) + 0.01 * rng.normal(size=300)
    w = convex_weights(p, y)
    assert w == pytest.approx([0.7, 0.3, 0.0], abs=0.01) and w.sum() == pytest.approx(1.0) and np.all(w >= 0)
    oof = {"lightgbm": p[:, 0], "quadratic": p[:, 1], "linear": p[:, 2]}
    stacked = [c for c in candidate_combinations(oof, y, kfold_indices(300, 5, 0)) if c.rule == "stacked"]
    assert len(stacked) == 1 and set(stacked[0].weights) == {"lightgbm", "quadratic"}
    assert stacked[0].spearman > 0.99


def test_spread_has_a_members_part_and_a_bootstrap_part():
    comb = Combination("mean", {"lightgbm": 0.5, "quadratic": 0.5})
    members = {"lightgbm": np.array([1.0, 2.0]), "quadratic": np.array([1.2, 2.0])}
    boot = [{"lightgbm": np.array([1.0, 2.0]) + d, "quadratic": np.array([1.2, 2.0]) + d} for d in (-0.1, 0.0, 0.1)]
    s = spread(comb, members, boot)
    assert s.sd_members == pytest.approx([0.1, 0.0])
    assert s.sd_bootstrap == pytest.approx([0.1, 0.1])
    assert s.sd == pytest.approx(np.sqrt(s.sd_members ** 2 + s.sd_bootstrap ** 2))
    one = Combination("mean", {"lightgbm": 1.0})
    assert spread(one, members).sd is None  # one member, no refits: nothing measures an uncertainty
    assert spread(one, members, boot).sd_members is None

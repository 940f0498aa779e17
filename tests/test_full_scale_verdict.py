"""Verdict logic (regmix_megatron/full_scale/verdict.py) on constructed numbers."""

from __future__ import annotations

import pytest

import math

from regmix_megatron.full_scale.verdict import (
    BETTER,
    UNMEASURED,
    WITHIN_NOISE,
    WORSE,
    aim_met,
    compare,
)


def test_better_worse_and_within_noise_at_two_sd_of_the_difference():
    """The unit is the sd of the difference of the two means: with 3 seeds each and a pooled seed sd of 0.1 per
    run, 0.1 * sqrt(2/3)."""
    regmix = {1: 5.00, 2: 5.02, 3: 4.98}
    far = {1: 5.50, 2: 5.52, 3: 5.48}
    near = {1: 5.03, 2: 5.05, 3: 5.01}
    unit = 0.1 * math.sqrt(2 / 3)
    c = compare("natural", regmix, far, 0.1)
    assert c.verdict == BETTER and c.difference == pytest.approx(-0.5) and c.num_sd == pytest.approx(0.5 / unit)
    assert c.sd == pytest.approx(unit) and c.text == "better by 0.500 (6.1 sd)"
    assert c.num_pairs == 3 and c.paired_mean == pytest.approx(-0.5) and c.paired_sd == pytest.approx(0.0, abs=1e-12)
    w = compare("uniform", far, regmix, 0.1)
    assert w.verdict == WORSE and w.text == "worse by 0.500 (6.1 sd)"
    n = compare("best_domain", regmix, near, 0.1)
    assert n.verdict == WITHIN_NOISE and n.text.startswith("within noise (-0.030, 0.4 sd)")
    # exactly at the threshold is not a win: "more than 2 sd"; one seed each: the unit is 0.1 * sqrt(2)
    edge = 2 * 0.1 * math.sqrt(2)
    assert compare("x", {1: 5.0}, {1: 5.0 + edge - 1e-4}, 0.1).verdict == WITHIN_NOISE
    assert compare("x", {1: 5.0}, {1: 5.0 + edge + 1e-4}, 0.1).verdict == BETTER
    # a stricter threshold turns a win into noise
    assert compare("x", regmix, far, 0.1, threshold_sd=6.5).verdict == WITHIN_NOISE


def test_the_documents_widen_the_sd_and_the_parts_are_reported():
    regmix, natural = {1: 5.00, 2: 5.02, 3: 4.98}, {1: 5.06, 2: 5.08, 3: 5.04}
    seeds_only = compare("natural", regmix, natural, 0.02)
    seed_part = 0.02 * math.sqrt(2 / 3)
    assert seeds_only.verdict == BETTER and seeds_only.num_sd == pytest.approx(0.06 / seed_part)
    both = compare("natural", regmix, natural, 0.02, document_sd=0.03)
    assert both.sd == pytest.approx(math.sqrt(seed_part ** 2 + 0.03 ** 2)) and both.verdict == WITHIN_NOISE
    doc = both.to_json()
    assert doc["seed_sd"] == pytest.approx(seed_part) and doc["document_sd"] == 0.03
    assert doc["combined_sd"] == pytest.approx(both.sd) and doc["dominant"] == "documents"


def test_a_baseline_trained_once_is_judged_with_the_pooled_sd():
    c = compare("best_sweep", {1: 5.0, 2: 5.1, 3: 4.9}, {1: 5.4}, 0.1)
    assert c.num_pairs == 1 and c.paired_sd is None
    assert c.verdict == BETTER and c.num_sd == pytest.approx(0.4 / (0.1 * math.sqrt(1 / 3 + 1)))


def test_no_measured_noise_never_claims_a_win():
    for sd in (None, 0.0, float("nan")):
        for document_sd in (None, 0.01):
            c = compare("natural", {1: 1.0}, {1: 9.0}, sd, document_sd=document_sd)
            assert c.verdict == UNMEASURED and c.num_sd is None
            assert "noise not measured" in c.text and c.to_json()["dominant"] == "unmeasured"
    with pytest.raises(ValueError, match="threshold_sd"):
        compare("x", {1: 1.0}, {1: 2.0}, 0.1, threshold_sd=0)
    with pytest.raises(ValueError, match="no losses"):
        compare("x", {}, {1: 2.0}, 0.1)


def test_aim_needs_wins_over_the_named_baselines_and_no_loss():
    sd = 0.1
    wins = {"natural": compare("natural", {1: 5.0}, {1: 5.5}, sd), "uniform": compare("uniform", {1: 5.0}, {1: 5.4}, sd)}
    tie = compare("best_domain", {1: 5.0}, {1: 5.05}, sd)
    loss = compare("best_sweep", {1: 5.0}, {1: 4.7}, sd)
    assert aim_met({**wins, "best_domain": tie}, ["natural", "uniform"])
    assert not aim_met({**wins, "best_domain": tie, "best_sweep": loss}, ["natural", "uniform"])
    assert not aim_met({"natural": wins["natural"], "uniform": tie}, ["natural", "uniform"])
    assert not aim_met({"natural": wins["natural"]}, ["natural", "uniform"])  # a missing baseline is no win

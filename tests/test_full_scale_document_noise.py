"""Noise from the evaluation documents (regmix_megatron/full_scale/document_noise.py) on constructed losses."""

from __future__ import annotations

import math

import numpy as np
import pytest

from regmix_megatron.errors import DataError
from regmix_megatron.full_scale.document_noise import (NoiseOfDifference, combine, document_bootstrap,
                                                        losses_by_source, seed_sd_of_difference)
from regmix_megatron.regression.target import Target
from regmix_megatron.runs.document_losses import DocumentLosses


def docs(per_doc_loss, tokens=100) -> DocumentLosses:
    per_doc_loss = np.asarray(per_doc_loss, dtype=np.float64)
    counts = np.full(per_doc_loss.size, tokens, dtype=np.int64) if np.isscalar(tokens) else np.asarray(tokens)
    return DocumentLosses(loss_sum=per_doc_loss * counts, num_tokens=counts)


def test_the_document_sd_of_a_difference_is_the_standard_error_of_its_per_document_differences():
    """Equal-length documents: the difference of the two mixtures' losses is the mean of the per-document
    differences d_k, so its bootstrap sd is sd(d) / sqrt(n)."""
    rng = np.random.default_rng(0)
    n = 400
    base = 5.0 + rng.normal(0, 0.5, n)  # documents differ a lot in how hard they are
    d = rng.normal(-0.02, 0.1, n)  # mixture a is a little better on average, much better or worse per document
    a, b = [{"qa": docs(base + d)}], [{"qa": docs(base)}]
    draws = document_bootstrap(a, b, Target.domain("qa"), num_draws=4000, seed=1)
    assert draws.size == 4000
    assert np.mean(draws) == pytest.approx(d.mean(), abs=0.002)
    assert np.std(draws, ddof=1) == pytest.approx(np.std(d, ddof=1) / math.sqrt(n), rel=0.06)


def test_the_bootstrap_is_paired_a_shift_on_every_document_has_no_document_noise():
    """The same documents for both mixtures: a mixture better by exactly 0.05 on every document is better by
    0.05 on every resample, however hard the documents are; an unpaired bootstrap would see the documents'
    spread (sd 0.5 / sqrt(200) = 0.035)."""
    rng = np.random.default_rng(2)
    base = 5.0 + rng.normal(0, 0.5, 200)
    draws = document_bootstrap([{"qa": docs(base - 0.05)}], [{"qa": docs(base)}], Target.domain("qa"), seed=3)
    assert np.allclose(draws, -0.05)


def test_document_weights_follow_token_counts_and_runs_of_a_mixture_are_averaged():
    """A long document weighs by its tokens (the evaluator's mean is over tokens); each mixture's runs (seeds)
    are averaged before the difference; the full sample (every document once) is inside the draws' range."""
    tokens = np.array([10, 1000, 10, 10])
    a = [{"qa": docs([1.0, 2.0, 1.0, 1.0], tokens)}, {"qa": docs([1.2, 2.2, 1.2, 1.2], tokens)}]
    b = [{"qa": docs([1.0, 1.0, 1.0, 1.0], tokens)}]
    draws = document_bootstrap(a, b, Target.domain("qa"), num_draws=500, seed=0)
    full = (np.mean([r["qa"].mean_loss for r in a]) - b[0]["qa"].mean_loss)
    assert full == pytest.approx(1.1 * 1000 / 1030 + 0.1 * 30 / 1030, rel=1e-9)
    assert draws.min() <= full <= draws.max()


def test_a_weighted_target_resamples_each_domain_and_adds_their_variances():
    rng = np.random.default_rng(5)
    n = 300
    da, db = rng.normal(0, 0.2, n), rng.normal(0, 0.1, n)
    a = [{"x": docs(5 + da), "y": docs(4 + db)}]
    b = [{"x": docs(np.full(n, 5.0)), "y": docs(np.full(n, 4.0))}]
    target = Target.weighted({"x": 0.75, "y": 0.25})
    draws = document_bootstrap(a, b, target, num_draws=4000, seed=6)
    expected = math.sqrt((0.75 * np.std(da, ddof=1)) ** 2 + (0.25 * np.std(db, ddof=1)) ** 2) / math.sqrt(n)
    assert np.std(draws, ddof=1) == pytest.approx(expected, rel=0.07)
    # the average target uses every domain the runs share
    avg = document_bootstrap(a, b, Target.average(), num_draws=4000, seed=6)
    assert np.std(avg, ddof=1) == pytest.approx(math.sqrt((0.5 * np.std(da, ddof=1)) ** 2
                                                          + (0.5 * np.std(db, ddof=1)) ** 2) / math.sqrt(n), rel=0.07)


def test_runs_scored_on_other_documents_or_without_the_target_are_refused():
    with pytest.raises(DataError, match="different documents of 'qa'"):
        document_bootstrap([{"qa": docs(np.ones(5))}], [{"qa": docs(np.ones(6))}], Target.domain("qa"))
    with pytest.raises(DataError, match=r"target domain\(s\) \['qa'\]"):
        document_bootstrap([{"web": docs(np.ones(5))}], [{"qa": docs(np.ones(5))}], Target.domain("qa"))


def test_seed_and_document_parts_combine_as_independent_errors():
    assert seed_sd_of_difference(0.01, 3, 3) == pytest.approx(0.01 * math.sqrt(2 / 3))
    assert seed_sd_of_difference(0.01, 3, 1) == pytest.approx(0.01 * math.sqrt(4 / 3))
    assert seed_sd_of_difference(None, 3, 3) is None
    noise = NoiseOfDifference(seed_sd=0.003, document_sd=0.004)
    assert noise.combined_sd == pytest.approx(0.005) and noise.dominant == "balanced"
    assert NoiseOfDifference(0.001, 0.004).dominant == "documents"
    assert NoiseOfDifference(0.004, 0.001).dominant == "seeds"
    assert NoiseOfDifference(None, 0.004).combined_sd is None  # no seed noise measured: no win can be claimed
    assert NoiseOfDifference(0.004, None).combined_sd == pytest.approx(0.004)
    draws = np.random.default_rng(0).normal(0, 0.02, 5000)
    c = combine(0.01, 2, 2, draws)
    assert c.seed_sd == pytest.approx(0.01) and c.document_sd == pytest.approx(0.02, rel=0.05)
    assert c.to_json()["dominant"] == "documents"


def test_losses_by_source_are_ratios_of_sums_per_source_averaged_over_runs():
    sources = ["faq", "faq", "quips", "quips", "quips"]
    one = docs([2.0, 4.0, 1.0, 1.0, 7.0], [10, 30, 5, 5, 10])
    two = docs([3.0, 3.0, 2.0, 2.0, 2.0], [10, 30, 5, 5, 10])
    out = losses_by_source([one, two], sources)
    faq_one = (2 * 10 + 4 * 30) / 40
    quips_one = (1 * 5 + 1 * 5 + 7 * 10) / 20
    assert out == {"faq": pytest.approx((faq_one + 3.0) / 2), "quips": pytest.approx((quips_one + 2.0) / 2)}
    # a source with no scored token is left out; a mismatch with the recorded sources is an error
    unscored = docs([2.0, 4.0, 1.0, 1.0, 7.0], [10, 30, 0, 0, 0])
    assert set(losses_by_source([unscored], sources)) == {"faq"}
    with pytest.raises(DataError, match="6 document sources recorded"):
        losses_by_source([one], sources + ["faq"])

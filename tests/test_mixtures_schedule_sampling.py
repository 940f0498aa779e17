"""The sampler over schedules: exact counts, per-phase caps, epoch caps over all phases, determinism, fallback."""

from __future__ import annotations

import numpy as np
import pytest

from regmix_megatron.errors import RegmixError
from regmix_megatron.mixtures.sampling import SamplerConfig, domain_caps
from regmix_megatron.mixtures.schedule_sampling import (
    ScheduleStats,
    features_of,
    iter_schedule_candidates,
    joint_upper,
    sample_schedules,
)

DOMAINS = ["books", "code", "news", "web", "wiki"]
TOKENS = np.array([4e6, 2e6, 1e6, 20e6, 3e6])
FRACTIONS = (0.8, 0.2)


def config(**fields) -> SamplerConfig:
    return SamplerConfig(**{"num_samples": 40, "seed": 3, **fields})


def weights(schedules) -> np.ndarray:
    return np.stack([np.stack([m.as_array(DOMAINS) for m in s.mixtures]) for s in schedules])


def test_exact_count_distinct_and_per_phase_caps():
    cfg = config(cap_multiplier=3.0, max_weights={"web": 0.5})
    schedules = sample_schedules(TOKENS, cfg, FRACTIONS, domains=DOMAINS)
    assert len(schedules) == 40 and len({s.hash for s in schedules}) == 40
    assert all(s.fractions == FRACTIONS and s.domains == tuple(DOMAINS) for s in schedules)
    _, upper = domain_caps(TOKENS, cfg, domains=DOMAINS)  # no epoch cap: the static caps hold in every phase
    w = weights(schedules)
    assert np.all(w <= upper[None, None, :] + 1e-12)
    assert np.all((w == 0) | (w >= cfg.min_weight))
    assert not np.allclose(w[:, 0], w[:, 1])  # phases drawn independently
    x = features_of(w, FRACTIONS)
    dist = np.abs(x[:, None, :] - x[None, :, :]).sum(axis=2) + np.eye(len(x)) * 9
    assert dist.min() >= cfg.dedup_min_distance


def test_epoch_caps_count_every_phase_and_a_short_phase_may_spend_the_budget():
    cfg = config(num_samples=60, cap_multiplier=None, max_epochs=1.0, target_tokens=6_000_000)
    stats = ScheduleStats()
    w = weights(sample_schedules(TOKENS, cfg, FRACTIONS, domains=DOMAINS, stats=stats))
    upper = joint_upper(TOKENS, cfg)  # news: 1e6 / 6e6 = 0.167 of the run
    overall = 0.8 * w[:, 0] + 0.2 * w[:, 1]
    assert np.all(overall <= upper[None, :] + 1e-12)
    news = DOMAINS.index("news")
    assert w[:, 1, news].max() > upper[news]  # phase 2 spends more of news than a static mixture could
    assert w[:, 1, news].max() <= upper[news] / 0.2 + 1e-12  # ... within its share of the budget
    assert stats.num_drawn > stats.num_accepted > 0 and stats.num_strict == 0


def test_deterministic_given_the_seed():
    a = sample_schedules(TOKENS, config(), FRACTIONS, domains=DOMAINS)
    b = sample_schedules(TOKENS, config(), FRACTIONS, domains=DOMAINS)
    c = sample_schedules(TOKENS, config(seed=4), FRACTIONS, domains=DOMAINS)
    assert [s.hash for s in a] == [s.hash for s in b] != [s.hash for s in c]
    pool = next(iter_schedule_candidates(TOKENS, config(), FRACTIONS, 50, 50, domains=DOMAINS))
    assert not any(np.allclose(pool[0], s.features(DOMAINS)) for s in a)  # the pool is another stream


def test_tight_joint_caps_fall_back_to_the_static_cap_per_phase(caplog):
    # with a budget of 1.6x all tokens and max_epochs 1, most independent draws break some domain's joint cap
    cfg = config(num_samples=30, cap_multiplier=None, max_epochs=1.0, target_tokens=int(0.95 * TOKENS.sum()))
    stats = ScheduleStats()
    w = weights(sample_schedules(TOKENS, cfg, FRACTIONS, domains=DOMAINS, stats=stats))
    assert stats.num_strict > 0 and "static cap" in caplog.text
    assert np.all(0.8 * w[:, 0] + 0.2 * w[:, 1] <= joint_upper(TOKENS, cfg)[None, :] + 1e-12)
    with pytest.raises(RegmixError, match="epoch cap over all phases .*most often broken: 'web'.*raise max_epochs"):
        sample_schedules(TOKENS, config(num_samples=30, cap_multiplier=None, max_epochs=1.0, fallback="raise",
                                        target_tokens=int(0.95 * TOKENS.sum())), FRACTIONS, domains=DOMAINS)


def test_candidate_pool_has_exact_chunks():
    sizes = [len(c) for c in iter_schedule_candidates(TOKENS, config(max_epochs=1.0, target_tokens=6_000_000),
                                                      FRACTIONS, 1000, 300, domains=DOMAINS)]
    assert sizes == [300, 300, 300, 100]

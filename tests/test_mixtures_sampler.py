"""The RegMix sampler (regmix_megatron/mixtures/sampler.py): every constraint on every sample, determinism, dedup,
the candidate pool, schedules (per-phase caps, epoch caps over all phases, fallback), a mixture as the one-phase
schedule (the same streams as before the merge of the two samplers), and the ``sample`` command."""

import numpy as np
import pytest

from regmix_megatron.errors import RegmixError
from regmix_megatron.mixtures.caps import BOUND_TOLERANCE, domain_caps, joint_upper
from regmix_megatron.mixtures.mixture import Mixture, read_mixtures
from regmix_megatron.mixtures.sampler import SampleStats, features_of, iter_pool, sample, sample_rows
from regmix_megatron.mixtures.sampler_config import SamplerConfig, build_sampler_config

# Approximate sizes (GB) of the 17 Pile domains RegMix uses (Pile paper, table 1): a realistic skewed prior.
PILE_GB = {
    "arxiv": 56.2, "dm_mathematics": 7.8, "enron_emails": 0.9, "europarl": 4.6, "freelaw": 51.2,
    "github": 95.2, "gutenberg_pg_19": 10.9, "hackernews": 3.9, "nih_exporter": 2.0, "philpapers": 2.4,
    "pile_cc": 227.1, "pubmed_abstracts": 19.3, "pubmed_central": 90.3, "stackexchange": 32.2,
    "ubuntu_irc": 5.5, "uspto_backgrounds": 22.9, "wikipedia_en": 6.4,
}
PILE_NAMES = sorted(PILE_GB)
PILE_TOKENS = np.array([int(PILE_GB[n] * 0.25e9) for n in PILE_NAMES], dtype=np.int64)
SMALL_TOKENS = np.array([5e8, 2e8, 1e8, 5e7, 3e7, 1e7, 5e6, 2e6, 1e6]).astype(np.int64)


def sample_mixtures(tokens, config, **kwargs) -> np.ndarray:
    """The sampler's draws of one phase (a static mixture) as mixture rows ``(n, domains)``."""
    rows = sample_rows(tokens, config, **kwargs)
    assert rows.shape[1] == 1
    return rows[:, 0]


def pairwise(w: np.ndarray, metric: str) -> np.ndarray:
    diff = np.abs(w[:, None, :] - w[None, :, :])
    d = diff.sum(-1) if metric == "l1" else diff.max(-1)
    d[np.diag_indices(len(w))] = np.inf
    return d


def assert_all_constraints(w, tokens, config, domains=None):
    lower, upper = domain_caps(tokens, config, domains=domains)
    assert w.shape == (config.num_samples, len(tokens)) and w.dtype == np.float64
    assert np.all(np.isfinite(w))
    assert np.all(np.abs(w.sum(axis=1) - 1.0) <= 1e-12)  # every row renormalized exactly
    assert np.all(w <= upper + BOUND_TOLERANCE), "a weight exceeds its cap"
    assert np.all(w >= lower - BOUND_TOLERANCE), "a weight is below its lower bound"
    assert not np.any((w > 0) & (w < config.min_weight)), "a weight in (0, min_weight) was not zeroed"
    assert pairwise(w, config.dedup_metric).min() >= config.dedup_min_distance
    names = domains or [f"d{i}" for i in range(len(tokens))]
    for row in w[:5]:
        Mixture.from_array(names, row)  # the value type accepts every row as is


@pytest.mark.parametrize("tokens, names", [(PILE_TOKENS, PILE_NAMES), (SMALL_TOKENS, None)])
def test_default_sample_respects_every_constraint(tokens, names):
    config = SamplerConfig(seed=11)
    w = sample_mixtures(tokens, config, domains=names)
    assert_all_constraints(w, tokens, config, names)
    p = tokens / tokens.sum()
    _, upper = domain_caps(tokens, config)
    assert np.allclose(upper, np.minimum(15 * p, 1.0))
    assert (w == 0).any(), "zeroing below min_weight should happen for sparse Dirichlet draws"


def test_default_corpus_domains(indexed_fixture):
    """The default corpus's domains (the committed fixture, tokenized): 512 mixtures, every constraint."""
    from regmix_megatron.data.manifest import DomainRegistry

    registry = DomainRegistry.load(indexed_fixture.domains_json)
    tokens = registry.tokens_per_domain("train")
    config = SamplerConfig(seed=0)
    w = sample_mixtures(tokens, config, domains=registry.names)
    assert_all_constraints(w, tokens, config, list(registry.names))
    assert np.array_equal(w, sample_mixtures(tokens, SamplerConfig(seed=0), domains=registry.names))
    # an epoch limit for a run of half the corpus at 1.5 epochs holds on every sample too
    tight = SamplerConfig(seed=0, max_epochs=1.5, target_tokens=int(tokens.sum()) // 2)
    assert_all_constraints(sample_mixtures(tokens, tight, domains=registry.names), tokens, tight,
                           list(registry.names))


def test_same_seed_same_output_other_seed_differs():
    c = SamplerConfig(seed=5, num_samples=128)
    a = sample_mixtures(PILE_TOKENS, c)
    b = sample_mixtures(PILE_TOKENS, SamplerConfig(seed=5, num_samples=128))
    assert np.array_equal(a, b)
    assert not np.array_equal(a, sample_mixtures(PILE_TOKENS, SamplerConfig(seed=6, num_samples=128)))


def test_tempered_prior_is_the_dirichlet_mean():
    # With a huge strength the Dirichlet concentrates on its mean q = p**T / sum(p**T).
    tokens = SMALL_TOKENS
    c = SamplerConfig(num_samples=200, strength_min=1e5, strength_max=1e5, num_strengths=1, cap_multiplier=None,
                      min_weight=0.0, temperature=0.5)
    w = sample_mixtures(tokens, c)
    p = tokens / tokens.sum()
    q = p**0.5 / (p**0.5).sum()
    assert np.allclose(w.mean(axis=0), q, atol=2e-3)
    assert np.allclose(sample_mixtures(tokens, SamplerConfig(
        num_samples=200, strength_min=1e5, strength_max=1e5, num_strengths=1, cap_multiplier=None,
        min_weight=0.0, temperature=1.0)).mean(axis=0), p, atol=2e-3)


def test_epoch_caps_and_explicit_bounds_hold_on_every_sample():
    total = int(PILE_TOKENS.sum())
    names = PILE_NAMES
    c = SamplerConfig(seed=2, max_epochs=2.0, target_tokens=total // 4,
                      min_weights={"pile_cc": 0.2}, max_weights={"github": 0.05})
    lower, upper = domain_caps(PILE_TOKENS, c, domains=names)
    expected = np.minimum.reduce([np.ones(17), 15 * PILE_TOKENS / total, 2.0 * PILE_TOKENS / (total // 4)])
    expected[names.index("github")] = min(expected[names.index("github")], 0.05)
    assert np.allclose(upper, expected)
    assert lower[names.index("pile_cc")] == 0.2 and lower.sum() == 0.2
    w = sample_mixtures(PILE_TOKENS, c, domains=names)
    assert_all_constraints(w, PILE_TOKENS, c, names)


def test_tight_caps_still_give_exactly_n_by_projection():
    # Budget = 97% of all tokens at 1 epoch: almost nothing passes rejection.
    total = int(SMALL_TOKENS.sum())
    c = SamplerConfig(seed=3, num_samples=256, max_epochs=1.0, target_tokens=int(total * 0.97),
                      cap_multiplier=None, dedup_min_distance=1e-4)
    stats = SampleStats()
    w = sample_mixtures(SMALL_TOKENS, c, stats=stats)
    assert_all_constraints(w, SMALL_TOKENS, c)
    assert stats.num_projected > 0 and stats.num_accepted < 256
    # Same request with fallback="raise": an error naming the binding constraint instead of fewer mixtures.
    with pytest.raises(RegmixError, match=r"binding constraint is the cap of domain '\w+'.*max_epochs=1.0"):
        sample_mixtures(SMALL_TOKENS, SamplerConfig(seed=3, num_samples=256, max_epochs=1.0,
                                                    target_tokens=int(total * 0.97), cap_multiplier=None,
                                                    fallback="raise"),
                        domains=["big"] + [f"d{i}" for i in range(8)])


def test_lower_bounds_force_projection_and_hold():
    names = [f"d{i}" for i in range(9)]
    c = SamplerConfig(seed=4, num_samples=64, min_weights={"d3": 0.3, "d2": 0.2})
    stats = SampleStats()
    w = sample_mixtures(SMALL_TOKENS, c, domains=names, stats=stats)
    assert_all_constraints(w, SMALL_TOKENS, c, names)
    assert np.all(w[:, 3] >= 0.3 - 1e-12) and np.all(w[:, 2] >= 0.2 - 1e-12)


@pytest.mark.parametrize("metric, distance", [("l1", 0.05), ("linf", 0.02)])
def test_dedup_is_pairwise_not_adjacent(metric, distance):
    c = SamplerConfig(seed=9, num_samples=200, dedup_metric=metric, dedup_min_distance=distance)
    w = sample_mixtures(SMALL_TOKENS, c)
    assert pairwise(w, metric).min() >= distance
    stats = SampleStats()
    sample_mixtures(SMALL_TOKENS, c, stats=stats)
    assert stats.num_duplicates > 0  # sparse draws (one dominant domain) collide at this distance


def test_impossible_dedup_raises_naming_it():
    # Two domains and a huge minimum distance: only a handful of points fit on the segment.
    with pytest.raises(RegmixError, match="dedup_min_distance"):
        sample_mixtures(np.array([1000, 1000]), SamplerConfig(num_samples=50, dedup_min_distance=0.5,
                                                             cap_multiplier=None, max_rounds=5))


def test_iter_pool_same_caps_bounded_chunks_deterministic():
    c = SamplerConfig(seed=1, max_epochs=1.0, target_tokens=int(SMALL_TOKENS.sum() * 0.5))
    lower, upper = domain_caps(SMALL_TOKENS, c)
    chunks = list(iter_pool(SMALL_TOKENS, c, 25_000, chunk_size=10_000))
    assert [len(x) for x in chunks] == [10_000, 10_000, 5_000]
    w = np.concatenate(chunks)
    assert np.all(w <= upper + BOUND_TOLERANCE) and np.all(w >= lower - BOUND_TOLERANCE)
    assert np.all(np.abs(w.sum(axis=1) - 1) <= 1e-12)
    assert not np.any((w > 0) & (w < c.min_weight))
    again = np.concatenate(list(iter_pool(SMALL_TOKENS, c, 25_000, chunk_size=10_000)))
    assert np.array_equal(w, again)
    first = sample_mixtures(SMALL_TOKENS, SamplerConfig(seed=1, num_samples=8, max_epochs=1.0,
                                                         target_tokens=int(SMALL_TOKENS.sum() * 0.5)))
    assert not np.array_equal(first, w[:8])  # independent stream from the sweep


def test_the_sampler_options_are_one_typed_value_parsed_once():
    import typing

    from helpers.field_docs import undocumented_fields
    from regmix_megatron.errors import ConfigError

    fields = {"sampler": {"dedup_metric": "linf", "fallback": "raise"}}
    cfg = SamplerConfig.from_dict(fields, defaults={"seed": 9}, source="p.yaml:sample.sampler")
    assert cfg == build_sampler_config(fields, defaults={"seed": 9}) and (cfg.dedup_metric, cfg.seed) == ("linf", 9)
    hints = typing.get_type_hints(SamplerConfig)
    assert typing.get_args(hints["dedup_metric"]) == ("l1", "linf")  # the choices are the type
    assert typing.get_args(hints["fallback"]) == ("project", "raise")
    with pytest.raises(ConfigError, match=r"p\.yaml:sample\.sampler: sampler\.fallback='skip' is invalid: use "
                                          r"\"project\""):
        SamplerConfig.from_dict({"fallback": "skip"}, source="p.yaml:sample.sampler")
    assert undocumented_fields(SamplerConfig) == []


def test_sample_cli_writes_mixtures_config_and_plot(indexed_fixture, tmp_path, capsys):
    import json

    import yaml

    from regmix_megatron import cli
    from regmix_megatron.data.manifest import DomainRegistry

    out = tmp_path / "mixtures.jsonl"
    png = tmp_path / "mixtures.png"
    argv = ["sample", "--domains", str(indexed_fixture.domains_json), "--num-samples", "40", "--seed", "4",
            "--max-epochs", "1.5", "--target-tokens", "300k", "--output", str(out), "--plot", str(png)]
    assert cli.main(argv) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 40 and all(r["format"] == "regmix-megatron/mixture/v1" for r in rows)
    registry = DomainRegistry.load(indexed_fixture.domains_json)
    resolved = yaml.safe_load((tmp_path / "mixtures.jsonl.sampler.yaml").read_text())
    assert resolved["sampler"]["target_tokens"] == 300_000 and resolved["domains"] == list(registry.names)
    config = build_sampler_config(resolved)  # the resolved file reads back as the config that drew the mixtures
    assert [Mixture.from_array(registry.names, w) for w in sample_mixtures(
        registry.tokens_per_domain("train"), config, domains=registry.names)] == read_mixtures(out)
    upper = np.array(resolved["upper"])
    w = np.array([[r["weights"][d] for d in registry.names] for r in rows])
    assert np.all(w <= upper + BOUND_TOLERANCE)
    assert all(Mixture.from_dict(r["weights"]).hash == r["hash"] for r in rows)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    assert cli.main(argv) == 0 and [json.loads(x) for x in out.read_text().splitlines()] == rows  # same seed
    # errors name the flag
    assert cli.main(["sample", "--domains", str(indexed_fixture.domains_json), "--max-epochs", "1",
                     "--target-tokens", "10B", "--output", str(tmp_path / "x.jsonl")]) == 2
    err = capsys.readouterr().err
    assert "--target-tokens (sampler.target_tokens)=10000000000" in err and "raise max_epochs" in err
    assert not (tmp_path / "x.jsonl").exists()


# ---- schedules ----------------------------------------------------------------------------------------
SCHEDULE_DOMAINS = ["books", "code", "news", "web", "wiki"]
SCHEDULE_TOKENS = np.array([4e6, 2e6, 1e6, 20e6, 3e6])
FRACTIONS = (0.8, 0.2)


def config(**fields) -> SamplerConfig:
    """The schedule tests' sampler config."""
    return SamplerConfig(**{"num_samples": 40, "seed": 3, **fields})


def weights(schedules) -> np.ndarray:
    return np.stack([np.stack([m.as_array(SCHEDULE_DOMAINS) for m in s.mixtures]) for s in schedules])


def test_schedules_exact_count_distinct_and_per_phase_caps():
    cfg = config(cap_multiplier=3.0, max_weights={"web": 0.5})
    schedules = sample(SCHEDULE_TOKENS, cfg, FRACTIONS, domains=SCHEDULE_DOMAINS)
    assert len(schedules) == 40 and len({s.hash for s in schedules}) == 40
    assert all(s.fractions == FRACTIONS and s.domains == tuple(SCHEDULE_DOMAINS) for s in schedules)
    _, upper = domain_caps(SCHEDULE_TOKENS, cfg, domains=SCHEDULE_DOMAINS)  # no epoch cap: the static caps hold in every phase
    w = weights(schedules)
    assert np.all(w <= upper[None, None, :] + 1e-12)
    assert np.all((w == 0) | (w >= cfg.min_weight))
    assert not np.allclose(w[:, 0], w[:, 1])  # phases drawn independently
    x = features_of(w, FRACTIONS)
    dist = np.abs(x[:, None, :] - x[None, :, :]).sum(axis=2) + np.eye(len(x)) * 9
    assert dist.min() >= cfg.dedup_min_distance


def test_epoch_caps_count_every_phase_and_a_short_phase_may_spend_the_budget():
    cfg = config(num_samples=60, cap_multiplier=None, max_epochs=1.0, target_tokens=6_000_000)
    stats = SampleStats()
    w = weights(sample(SCHEDULE_TOKENS, cfg, FRACTIONS, domains=SCHEDULE_DOMAINS, stats=stats))
    upper = joint_upper(SCHEDULE_TOKENS, cfg)  # news: 1e6 / 6e6 = 0.167 of the run
    overall = 0.8 * w[:, 0] + 0.2 * w[:, 1]
    assert np.all(overall <= upper[None, :] + 1e-12)
    news = SCHEDULE_DOMAINS.index("news")
    assert w[:, 1, news].max() > upper[news]  # phase 2 spends more of news than a static mixture could
    assert w[:, 1, news].max() <= upper[news] / 0.2 + 1e-12  # ... within its share of the budget
    assert stats.num_drawn > stats.num_accepted > 0 and stats.num_strict == 0


def test_schedules_deterministic_given_the_seed():
    a = sample(SCHEDULE_TOKENS, config(), FRACTIONS, domains=SCHEDULE_DOMAINS)
    b = sample(SCHEDULE_TOKENS, config(), FRACTIONS, domains=SCHEDULE_DOMAINS)
    c = sample(SCHEDULE_TOKENS, config(seed=4), FRACTIONS, domains=SCHEDULE_DOMAINS)
    assert [s.hash for s in a] == [s.hash for s in b] != [s.hash for s in c]
    pool = next(iter_pool(SCHEDULE_TOKENS, config(), 50, 50, fractions=FRACTIONS, domains=SCHEDULE_DOMAINS))
    assert not any(np.allclose(pool[0], s.features(SCHEDULE_DOMAINS)) for s in a)  # the pool is another stream


def test_tight_joint_caps_fall_back_to_the_static_cap_per_phase(caplog):
    # with a budget of 1.6x all tokens and max_epochs 1, most independent draws break some domain's joint cap
    cfg = config(num_samples=30, cap_multiplier=None, max_epochs=1.0, target_tokens=int(0.95 * SCHEDULE_TOKENS.sum()))
    stats = SampleStats()
    w = weights(sample(SCHEDULE_TOKENS, cfg, FRACTIONS, domains=SCHEDULE_DOMAINS, stats=stats))
    assert stats.num_strict > 0 and "static cap" in caplog.text
    assert np.all(0.8 * w[:, 0] + 0.2 * w[:, 1] <= joint_upper(SCHEDULE_TOKENS, cfg)[None, :] + 1e-12)
    with pytest.raises(RegmixError, match="epoch cap over all phases .*most often broken: 'web'.*raise max_epochs"):
        sample(SCHEDULE_TOKENS, config(num_samples=30, cap_multiplier=None, max_epochs=1.0, fallback="raise",
                                        target_tokens=int(0.95 * SCHEDULE_TOKENS.sum())), FRACTIONS, domains=SCHEDULE_DOMAINS)


def test_schedule_candidate_pool_has_exact_chunks():
    sizes = [len(c) for c in iter_pool(SCHEDULE_TOKENS, config(max_epochs=1.0, target_tokens=6_000_000), 1000, 300,
                                       fractions=FRACTIONS, domains=SCHEDULE_DOMAINS)]
    assert sizes == [300, 300, 300, 100]


# ---- a mixture is the one-phase schedule ------------------------------------------------------------------
def digest(rows: np.ndarray) -> str:
    import hashlib

    return hashlib.sha256(np.ascontiguousarray(rows, dtype=np.float64).tobytes()).hexdigest()[:16]


def test_the_streams_are_those_of_the_two_samplers_before_the_merge():
    """Recorded 2026-12-06 from mixtures/sampling.py and mixtures/schedule_sampling.py (the static and the schedule
    sampler before they became one): the same seed draws the same mixtures, schedules and pools."""
    w = sample_mixtures(PILE_TOKENS, SamplerConfig(seed=7, num_samples=32), domains=PILE_NAMES)
    assert digest(w) == "c45b36681c28b63d"
    assert [Mixture.from_array(PILE_NAMES, r).hash for r in w[:2]] == ["494b481f3850ba23", "330f30c83d6e591c"]
    total = int(PILE_TOKENS.sum())
    projected = SamplerConfig(seed=7, num_samples=32, max_epochs=1.0, target_tokens=int(total * 0.97),
                              cap_multiplier=None)
    assert digest(sample_mixtures(PILE_TOKENS, projected, domains=PILE_NAMES)) == "6176920ef71f41b6"
    pool = np.concatenate(list(iter_pool(PILE_TOKENS, SamplerConfig(seed=7), 3000, 1000, domains=PILE_NAMES)))
    assert digest(pool) == "60019eb7774cbb76"
    capped = config(max_epochs=1.0, target_tokens=6_000_000)
    schedules = sample(SCHEDULE_TOKENS, capped, FRACTIONS, domains=SCHEDULE_DOMAINS)
    assert [s.hash for s in schedules[:2]] == ["17853a588171f5c6", "fbfea564fba6dd77"]
    assert digest(np.concatenate(list(iter_pool(SCHEDULE_TOKENS, capped, 1000, 300, fractions=FRACTIONS,
                                                domains=SCHEDULE_DOMAINS)))) == "6e8eb47498389203"


def test_one_phase_schedules_are_the_mixtures_with_their_hashes():
    cfg = SamplerConfig(seed=5, num_samples=24, max_epochs=2.0, target_tokens=int(PILE_TOKENS.sum()) // 4)
    stats = SampleStats()
    schedules = sample(PILE_TOKENS, cfg, (1.0,), domains=PILE_NAMES, stats=stats)
    rows = sample_mixtures(PILE_TOKENS, cfg, domains=PILE_NAMES)
    assert all(s.is_static and s.fractions == (1.0,) for s in schedules)
    assert [s.hash for s in schedules] == [Mixture.from_array(PILE_NAMES, r).hash for r in rows]
    assert np.array_equal(np.stack([s.features(PILE_NAMES) for s in schedules]), rows)  # features: the weights
    assert stats.num_drawn >= 24 and stats.num_strict == 0 and stats.num_rounds >= 1
    pool = np.concatenate(list(iter_pool(PILE_TOKENS, cfg, 500, 200, fractions=(1.0,), domains=PILE_NAMES)))
    assert pool.shape == (500, len(PILE_NAMES))  # one phase: the candidates are mixtures
    assert np.array_equal(features_of(pool[:, None, :], (1.0,)), pool)

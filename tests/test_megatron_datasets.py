"""A mixture becomes the blend megatron-core builds, exactly: realized weights, zero weights, refusals.

Runs on the corpus fixture preprocessed by the shared ``indexed_fixture`` (real SentencePiece tokenizer, real
``.bin/.idx``). For multi-prefix domains, one domain's training documents are re-sharded into two prefixes of
different sizes with megatron-core's ``IndexedDatasetBuilder``.
"""

import argparse
import logging

import numpy as np
import pytest

from helpers.sharded import shard_domain
from regmix_megatron.errors import ConfigError, DataError, RegmixError
from regmix_megatron.data.manifest import DomainRegistry
from regmix_megatron.mixtures.mixture import Mixture

SEQ_LENGTH = 32


@pytest.fixture(scope="module")
def registry(indexed_fixture) -> DomainRegistry:
    return DomainRegistry.load(indexed_fixture.domains_json)


@pytest.fixture(scope="module")
def tokenizer(registry):
    from regmix_megatron.megatron.tokenizer_adapter import load_registry_tokenizer

    return load_registry_tokenizer(registry)


@pytest.fixture(scope="module")
def sharded_registry(registry, tmp_path_factory) -> DomainRegistry:
    """The fixture registry with domain "code" split into two train shards (25% / 75% of its documents)."""
    return shard_domain(registry, "code", tmp_path_factory.mktemp("sharded"))


def mix(**weights) -> dict:
    names = ("changelogs", "code", "legal", "literature", "math", "reference", "speeches", "techdocs")
    unknown = set(weights) - set(names)
    assert not unknown, unknown
    return {n: float(weights.get(n, 0.0)) for n in names}


MIXTURES = [
    mix(code=0.5, legal=0.3, math=0.2),
    mix(speeches=1.0),
    mix(changelogs=0.05, code=0.2, legal=0.1, literature=0.15, math=0.12, reference=0.13, speeches=0.11,
        techdocs=0.14),
    mix(code=0.61, techdocs=0.39),
]


def train_set(registry, mixture, *, seq_length, num_samples, seed, tokenizer, path_to_cache=None, max_epochs=None):
    """The train set of a static mixture through the one builder (regmix_megatron/megatron/train_dataset.py):
    megatron-core's own blend of the mixture."""
    from regmix_megatron.megatron.datasets import DatasetOptions
    from regmix_megatron.megatron.train_dataset import build_train_dataset

    options = DatasetOptions(seq_length=seq_length, seed=seed, tokenizer=tokenizer, path_to_cache=path_to_cache)
    return build_train_dataset(registry, mixture, num_samples=num_samples, options=options, max_epochs=max_epochs)


@pytest.mark.parametrize("sharded", [False, True], ids=["fixture", "code-in-two-shards"])
@pytest.mark.parametrize("weights", MIXTURES)
def test_realized_weights_within_one_sample(registry, sharded_registry, tokenizer, weights, sharded):
    from regmix_megatron.megatron.datasets import realized_fractions, realized_samples

    reg = sharded_registry if sharded else registry
    mixture = Mixture.from_dict(weights)
    num_samples = 257
    ds = train_set(reg, mixture, seq_length=SEQ_LENGTH, num_samples=num_samples, seed=1234, tokenizer=tokenizer)
    assert len(ds) >= num_samples
    samples = realized_samples(ds, reg)
    fractions = realized_fractions(ds, reg)
    assert set(samples) == set(reg.names)
    for name, w in mixture.as_dict().items():
        # On these mixtures every domain is within one sample of its request; in general megatron-core's
        # greedy blending helper stays within 2 samples (measured worst 1.29 at full length, 1.88 over any
        # prefix, on 300 random blends: docs/LOG.md "Mixtures").
        assert abs(samples[name] - w * len(ds)) <= 1.0, (name, samples[name], w * len(ds))
        assert abs(samples[name] - w * num_samples) <= 2.0 + (len(ds) - num_samples)
        if w == 0:
            assert samples[name] == 0 and fractions[name] == 0.0
    assert sum(fractions.values()) == pytest.approx(1.0)
    if sharded and weights["code"] > 0 and hasattr(ds, "dataset_index"):
        # the domain's weight is split over its shards by token count
        shards = reg.get("code").prefixes("train")
        total = sum(p.num_tokens for p in shards)
        counts = np.bincount(np.asarray(ds.dataset_index), minlength=len(ds.datasets))
        paths = [d.dataset_path for d in ds.datasets]
        for p in shards:
            got = counts[paths.index(p.path)]
            assert abs(got - weights["code"] * p.num_tokens / total * len(ds)) <= 2.0
    # The index realized_fractions reads is the one samples are drawn through; samples have seq_length tokens.
    if hasattr(ds, "dataset_index"):
        component_domains = ds.regmix_component_domains
        for i in range(0, len(ds), 37):
            item = ds[i]
            assert int(item["dataset_id"]) == int(ds.dataset_index[i])
            assert weights[component_domains[int(item["dataset_id"])]] > 0
            assert len(item["tokens"]) == SEQ_LENGTH


def test_sampled_mixtures_realized_within_two_samples(registry, tokenizer):
    """Mixtures from the sampler (many zero weights): every domain's sample count within 2 of the request,
    zero-weight domains absent."""
    from regmix_megatron.megatron.datasets import realized_samples
    from regmix_megatron.mixtures.sampler import sample_rows
    from regmix_megatron.mixtures.sampler_config import SamplerConfig

    rows = sample_rows(registry.tokens_per_domain(), SamplerConfig(seed=3, num_samples=12), domains=registry.names)[:, 0]
    assert (rows == 0).any()
    for row in rows:
        mixture = Mixture.from_array(registry.names, row)
        ds = train_set(registry, mixture, seq_length=SEQ_LENGTH, num_samples=500, seed=1, tokenizer=tokenizer)
        samples = realized_samples(ds, registry)
        for name, w in mixture.as_dict().items():
            assert abs(samples[name] - w * len(ds)) < 2.0
            assert samples[name] > 0 or w * len(ds) < 2.0
            if w == 0:
                assert samples[name] == 0


def test_same_seed_same_blend(registry, tokenizer):
    m = Mixture.from_dict(MIXTURES[0])
    a = train_set(registry, m, seq_length=SEQ_LENGTH, num_samples=64, seed=7, tokenizer=tokenizer)
    b = train_set(registry, m, seq_length=SEQ_LENGTH, num_samples=64, seed=7, tokenizer=tokenizer)
    assert np.array_equal(a.dataset_index, b.dataset_index)
    assert np.array_equal(a[5]["tokens"], b[5]["tokens"])


def test_epoch_warning_and_table(registry, tokenizer, caplog):
    from regmix_megatron.megatron.train_dataset import epochs_per_domain, log_fraction_table
    from regmix_megatron.mixtures.schedule import Schedule

    m = Mixture.from_dict(mix(code=0.1, legal=0.1, math=0.1, speeches=0.7))
    seq_length, num_samples = 128, 2000
    epochs = epochs_per_domain(registry, Schedule.from_mixture(m), [num_samples], seq_length=seq_length)
    speech_tokens = registry.get("speeches").num_tokens("train")
    assert epochs["speeches"] == pytest.approx(0.7 * num_samples * seq_length / speech_tokens)
    assert epochs["speeches"] > 2 > epochs["code"]
    with caplog.at_level(logging.WARNING, logger="regmix_megatron"):
        ds = train_set(registry, m, seq_length=seq_length, num_samples=num_samples, seed=1, tokenizer=tokenizer,
                       max_epochs=2.0)
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and "regmix" in r.name]
    assert any("'speeches' would be repeated" in msg and "max_epochs=2" in msg for msg in warned)
    assert not any("'code'" in msg for msg in warned)
    table = log_fraction_table(ds, registry, m, seq_length=seq_length)
    assert "requested" in table and "realized" in table and len(table.splitlines()) == 2 + len(registry.names)


def test_refusals(registry, tokenizer, tmp_path, monkeypatch):
    import torch.distributed

    with pytest.raises(DataError, match=r"unknown \['news'\]"):
        train_set(registry, Mixture.from_dict({"code": 0.5, "news": 0.5}), seq_length=SEQ_LENGTH, num_samples=8,
                  seed=1, tokenizer=tokenizer)
    with monkeypatch.context() as m:  # no process group, whatever tests ran before in this process
        m.setattr(torch.distributed, "is_initialized", lambda: False)
        with pytest.raises(RegmixError, match="path_to_cache.*process group"):
            train_set(registry, Mixture.from_dict(MIXTURES[0]), seq_length=SEQ_LENGTH, num_samples=8, seed=1,
                      tokenizer=tokenizer, path_to_cache=tmp_path / "cache")
    with pytest.raises(RegmixError, match="num_samples=0"):
        train_set(registry, Mixture.from_dict(MIXTURES[0]), seq_length=SEQ_LENGTH, num_samples=0, seed=1,
                  tokenizer=tokenizer)


def _namespace(indexed_fixture, mixture_path, **extra):
    from regmix_megatron.megatron.provider import add_regmix_args

    parser = add_regmix_args(argparse.ArgumentParser())
    args = parser.parse_args(["--regmix-mixture", str(mixture_path), "--regmix-domains",
                              str(indexed_fixture.domains_json), "--regmix-max-epochs", "4"])
    # The fields Megatron-LM's pretrain_gpt.py args carry that the provider reads.
    defaults = dict(seq_length=SEQ_LENGTH, seed=1234, tokenizer_model=str(indexed_fixture.tokenizer_model),
                    data_cache_path=None, multiple_validation_sets=False, full_validation=False,
                    reset_position_ids=False, reset_attention_mask=False, eod_mask_loss=False,
                    mid_level_dataset_surplus=0.005)
    defaults.update(extra)
    for k, v in defaults.items():
        setattr(args, k, v)
    return args


def test_build_datasets_from_args(indexed_fixture, registry, tmp_path, caplog):
    from regmix_megatron.megatron.datasets import realized_samples
    from regmix_megatron.megatron.provider import build_datasets_from_args

    m = Mixture.from_dict(MIXTURES[0])
    path = m.save(tmp_path / "mixture.json")
    with caplog.at_level(logging.INFO, logger="regmix_megatron"):
        train, valid, test = build_datasets_from_args(_namespace(indexed_fixture, path), [96, 16, 8])
    assert "requested vs realized" in caplog.text
    samples = realized_samples(train, registry)
    assert samples["speeches"] == 0 and abs(samples["code"] - 0.5 * len(train)) <= 1
    assert len(valid) >= 16 and len(test) >= 8
    assert set(realized_samples(valid, registry)) == set(registry.names)

    # --multiple-validation-sets: one dataset per domain (zero-weight and evaluation-only ones included),
    # identical across mixtures
    args = _namespace(indexed_fixture, path, multiple_validation_sets=True)
    _, valid_sets, _ = build_datasets_from_args(args, [32, 10, 0])
    assert len(valid_sets) == len(registry.all_names)
    assert [ds.regmix_component_domains[0] for ds in valid_sets] == list(registry.all_names)
    assert "qa" in registry.eval_only_names and "qa" in [ds.regmix_component_domains[0] for ds in valid_sets]
    other = Mixture.from_dict(MIXTURES[1]).save(tmp_path / "other.json")
    _, valid_other, test_none = build_datasets_from_args(
        _namespace(indexed_fixture, other, multiple_validation_sets=True), [32, 10, 0])
    assert test_none is None
    for a, b in zip(valid_sets, valid_other):
        assert np.array_equal(a[0]["tokens"], b[0]["tokens"])
    # --full-validation: one full epoch per domain
    _, full_sets, _ = build_datasets_from_args(_namespace(indexed_fixture, path, multiple_validation_sets=True,
                                                          full_validation=True), [32, None, 0])
    assert all(len(ds) >= 1 for ds in full_sets)


def test_provider_refuses_flags_megatron_lm_would_ignore_or_refuse_late(indexed_fixture, tmp_path):
    from regmix_megatron.megatron.provider import check_megatron_lm_args

    path = Mixture.from_dict(MIXTURES[0]).save(tmp_path / "mixture.json")
    check_megatron_lm_args(_namespace(indexed_fixture, path))  # the plain case passes
    check_megatron_lm_args(_namespace(indexed_fixture, path, multiple_validation_sets=True, full_validation=True))
    check_megatron_lm_args(_namespace(indexed_fixture, path, multiple_validation_sets=True, skip_train=True))
    with pytest.raises(ConfigError, match=r"--multiple-validation-sets without --full-validation.*add "
                                          r"--full-validation"):
        check_megatron_lm_args(_namespace(indexed_fixture, path, multiple_validation_sets=True))
    for name in ("data_path", "per_split_data_args_path"):
        flag = "--" + name.replace("_", "-")
        with pytest.raises(ConfigError, match=f"{flag} is set.*drop {flag}"):
            check_megatron_lm_args(_namespace(indexed_fixture, path, **{name: ["1.0", "x"]}))


def test_provider_refuses_mismatches(indexed_fixture, tmp_path):
    from regmix_megatron.megatron.provider import build_datasets_from_args

    bad = tmp_path / "bad.json"
    bad.write_text('{"code": 0.5, "legal": 0.5}')
    with pytest.raises(DataError, match=r"missing \['changelogs', 'literature'"):
        build_datasets_from_args(_namespace(indexed_fixture, bad), [8, 0, 0])
    good = Mixture.from_dict(MIXTURES[0]).save(tmp_path / "good.json")
    other_model = tmp_path / "other.model"
    other_model.write_bytes(indexed_fixture.tokenizer_model.read_bytes() + b"x")
    with pytest.raises(DataError, match="--tokenizer-model .*sha256 .* differs"):
        build_datasets_from_args(_namespace(indexed_fixture, good, tokenizer_model=str(other_model)), [8, 0, 0])
    args = _namespace(indexed_fixture, good)
    args.regmix_domains = None
    with pytest.raises(RegmixError, match="--regmix-domains is required"):
        build_datasets_from_args(args, [8, 0, 0])


def test_provider_refuses_weight_on_an_evaluation_only_domain(indexed_fixture, registry, tmp_path):
    from regmix_megatron.megatron.datasets import realized_samples
    from regmix_megatron.megatron.provider import build_datasets_from_args

    assert registry.eval_only_names == ("qa",)
    weights = {d: (0.5 if d == "code" else 0.0) for d in registry.names}
    leaking = Mixture.from_dict({**weights, "qa": 0.5}).save(tmp_path / "leak.json")
    with pytest.raises(DataError, match=r"evaluation-only domain\(s\) \{'qa': 0.5\}"):
        build_datasets_from_args(_namespace(indexed_fixture, leaking), [8, 0, 0])
    # qa named with weight 0 is dropped: the blend holds the training domains only, qa is never sampled
    weights["legal"] = 0.5
    zero = Mixture.from_dict({**weights, "qa": 0.0}).save(tmp_path / "zero.json")
    train, _, _ = build_datasets_from_args(_namespace(indexed_fixture, zero), [64, 0, 0])
    assert set(train.regmix_component_domains) == {"code", "legal"}
    assert "qa" not in realized_samples(train, registry)


def _schedule_namespace(indexed_fixture, schedule_path, **extra):
    args = _namespace(indexed_fixture, schedule_path, **extra)
    args.regmix_mixture, args.regmix_schedule = None, str(schedule_path)
    return args


def test_provider_builds_a_schedule(indexed_fixture, registry, tmp_path, caplog):
    from regmix_megatron.megatron.datasets import realized_samples
    from regmix_megatron.megatron.provider import build_datasets_from_args
    from regmix_megatron.megatron.train_dataset import ScheduledDataset
    from regmix_megatron.mixtures.schedule import Schedule

    main, final = Mixture.from_dict(MIXTURES[2]), Mixture.from_dict(MIXTURES[0])
    schedule = Schedule.from_phases([(0.5, main), (0.5, final)])
    path = schedule.save(tmp_path / "schedule.json")
    with caplog.at_level(logging.INFO, logger="regmix_megatron"):
        train, valid, _ = build_datasets_from_args(_schedule_namespace(indexed_fixture, path, global_batch_size=16),
                                                   [96, 16, 0])
    assert isinstance(train, ScheduledDataset) and len(train) == 96 and train.phase_starts == (0, 48, 96)
    assert "requested vs realized token fractions per phase" in caplog.text and "steps 3..5" in caplog.text
    assert realized_samples(valid, registry)["speeches"] > 0  # valid blends the overall shares (speeches in phase 1)

    # a one-phase schedule through the provider is the static mixture's train set, sample for sample
    one = Schedule.from_mixture(final).save(tmp_path / "one.json")
    ours, _, _ = build_datasets_from_args(_schedule_namespace(indexed_fixture, one, global_batch_size=16), [96, 0, 0])
    theirs, _, _ = build_datasets_from_args(_namespace(indexed_fixture, final.save(tmp_path / "final.json")),
                                            [96, 0, 0])
    for i in range(96):
        assert np.array_equal(ours[i]["tokens"], theirs[i]["tokens"])


def test_provider_refuses_conflicting_schedule_flags(indexed_fixture, tmp_path):
    from regmix_megatron.megatron.provider import build_datasets_from_args, check_megatron_lm_args
    from regmix_megatron.mixtures.schedule import Schedule

    mixture = Mixture.from_dict(MIXTURES[0])
    path = Schedule.from_phases([(0.5, mixture), (0.5, Mixture.from_dict(MIXTURES[1]))]).save(tmp_path / "s.json")
    args = _schedule_namespace(indexed_fixture, path, phase_transition_iterations=[3])
    with pytest.raises(ConfigError, match="--phase-transition-iterations is set with --regmix-schedule.*drop"):
        check_megatron_lm_args(args)
    both = _schedule_namespace(indexed_fixture, path)
    both.regmix_mixture = str(mixture.save(tmp_path / "m.json"))
    with pytest.raises(ConfigError, match="--regmix-mixture and --regmix-schedule are both set"):
        build_datasets_from_args(both, [8, 0, 0])


def test_add_regmix_args_and_provider_form():
    from regmix_megatron.megatron import provider

    parser = provider.add_regmix_args(argparse.ArgumentParser())
    args = parser.parse_args(["--regmix-mixture", "m.json", "--regmix-domains", "d.json", "--regmix-max-epochs", "1.5"])
    assert (args.regmix_mixture, args.regmix_domains, args.regmix_max_epochs) == ("m.json", "d.json", 1.5)
    assert parser.parse_args(["--regmix-schedule", "s.json"]).regmix_schedule == "s.json"
    assert provider.train_valid_test_datasets_provider.is_distributed is True

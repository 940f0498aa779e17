"""The one train-set builder (regmix_megatron/megatron/train_dataset.py): a mixture is megatron-core's own blend, and
a schedule becomes the train set megatron-core would build, phase by phase, one stream per domain.

On the corpus fixture preprocessed by ``indexed_fixture`` (real tokenizer, real ``.bin/.idx``): a one-phase
schedule is megatron-core's static ``BlendedDataset`` sample for sample; every phase realizes exactly what
megatron-core's blend of that phase's mixture realizes; a component's samples are consumed in order across phases,
so no token of a domain is served twice before the domain's pass is done (checked on the documents served), where
restarting the blend per phase (what per-phase jobs do) repeats documents; the index is a pure function of its
inputs.
"""

from __future__ import annotations

import logging

import numpy as np
import pytest

from helpers.sharded import shard_domain
from regmix_megatron.errors import DataError
from regmix_megatron.data.manifest import DomainRegistry
from regmix_megatron.mixtures.mixture import Mixture
from regmix_megatron.mixtures.schedule import Schedule, ScheduleError

SEQ_LENGTH = 32
NAMES = ("changelogs", "code", "legal", "literature", "math", "reference", "speeches", "techdocs")


def mix(**weights) -> Mixture:
    return Mixture.from_dict({n: float(weights.get(n, 0.0)) for n in NAMES})


MAIN = mix(changelogs=0.1, code=0.3, legal=0.2, literature=0.15, math=0.1, reference=0.05, speeches=0.05,
           techdocs=0.05)
FINAL = mix(code=0.2, literature=0.6, math=0.2)
TWO_PHASES = Schedule.from_phases([(0.75, MAIN), (0.25, FINAL)])


@pytest.fixture(scope="module")
def registry(indexed_fixture) -> DomainRegistry:
    return DomainRegistry.load(indexed_fixture.domains_json)


@pytest.fixture(scope="module")
def sharded_registry(registry, tmp_path_factory) -> DomainRegistry:
    return shard_domain(registry, "code", tmp_path_factory.mktemp("sharded"))


@pytest.fixture(scope="module")
def tokenizer(registry):
    from regmix_megatron.megatron.tokenizer_adapter import load_registry_tokenizer

    return load_registry_tokenizer(registry)


def options(tokenizer, seed=1234):
    from regmix_megatron.megatron.datasets import DatasetOptions

    return DatasetOptions(seq_length=SEQ_LENGTH, seed=seed, tokenizer=tokenizer)


def build(registry, schedule, tokenizer, num_samples=480, seed=1234, **kwargs):
    """The one train-set builder (a schedule of several phases: the phased train set)."""
    from regmix_megatron.megatron.train_dataset import build_train_dataset

    return build_train_dataset(registry, schedule, num_samples=num_samples, options=options(tokenizer, seed), **kwargs)


def phased(registry, schedule, tokenizer, num_samples=480, seed=1234, **kwargs):
    """The phase-by-phase builder itself, whatever the number of phases."""
    from regmix_megatron.megatron.train_dataset import build_phased_dataset

    return build_phased_dataset(registry, schedule, num_samples=num_samples, options=options(tokenizer, seed),
                                **kwargs)


def static(registry, mixture, tokenizer, num_samples, seed=1234):
    """A mixture's train set through the one builder: megatron-core's own blend."""
    from regmix_megatron.megatron.train_dataset import build_train_dataset

    return build_train_dataset(registry, mixture, num_samples=num_samples, options=options(tokenizer, seed))


@pytest.mark.parametrize("sharded", [False, True], ids=["fixture", "code-in-two-shards"])
@pytest.mark.parametrize("mixture", [MAIN, FINAL, mix(speeches=1.0)], ids=["main", "final", "one-domain"])
def test_one_phase_is_megatrons_static_blend_sample_for_sample(registry, sharded_registry, tokenizer, mixture,
                                                                sharded):
    reg = sharded_registry if sharded else registry
    n = 333
    ours = phased(reg, Schedule.from_mixture(mixture), tokenizer, num_samples=n)
    theirs = static(reg, mixture, tokenizer, n)
    assert len(ours) == n and len(theirs) >= n  # megatron builds sum(ceil(n * w)) >= n; the run reads n
    parts = theirs.datasets if hasattr(theirs, "datasets") else [theirs]
    assert [d.dataset_path for d in ours.datasets] == [d.dataset_path for d in parts]
    assert [len(d) for d in ours.datasets] == [len(d) for d in parts]  # same sizes: same shuffles
    if hasattr(theirs, "dataset_index"):
        assert np.array_equal(ours.dataset_index, theirs.dataset_index[:n])
        assert np.array_equal(ours.dataset_sample_index, theirs.dataset_sample_index[:n])
    for i in range(n):
        a, b = ours[i], theirs[i]
        for key in ("tokens", "labels", "loss_mask", "position_ids"):
            assert np.array_equal(np.asarray(a[key]), np.asarray(b[key])), (i, key)


@pytest.mark.parametrize("sharded", [False, True], ids=["fixture", "code-in-two-shards"])
def test_each_phase_realizes_what_megatron_realizes_for_its_blend(registry, sharded_registry, tokenizer, sharded):
    from regmix_megatron.megatron.train_dataset import phase_rows

    reg = sharded_registry if sharded else registry
    ds = build(reg, TWO_PHASES, tokenizer, num_samples=480, global_batch_size=16)
    assert ds.phase_starts == (0, 368, 480)  # 30 steps: phase 2 starts at step floor(22.5 + 1/2) = 23 (x 16)
    rows = phase_rows(ds, global_batch_size=16)
    assert [(r["start_step"], r["end_step"]) for r in rows] == [(0, 23), (23, 30)]
    paths = [d.dataset_path for d in ds.datasets]
    for row, phase in zip(rows, TWO_PHASES.phases):
        lo, hi = row["start_sample"], row["end_sample"]
        alone = static(reg, phase.mixture, tokenizer, hi - lo)
        expected = {p: 0 for p in paths}
        index = np.asarray(alone.dataset_index)[: hi - lo]
        for c, count in enumerate(np.bincount(index, minlength=len(alone.datasets))):
            expected[alone.datasets[c].dataset_path] += int(count)
        got = np.bincount(ds.dataset_index[lo:hi], minlength=len(paths))
        assert dict(zip(paths, got.tolist())) == expected  # exactly megatron's rounding of the phase's request
        for name, w in phase.mixture.as_dict().items():
            assert abs(row["samples"][name] - w * (hi - lo)) <= 2.0, (row["phase"], name)
            assert row["realized"][name] == row["samples"][name] / (hi - lo)
            if w == 0:
                assert row["samples"][name] == 0


def test_a_components_samples_are_one_stream_across_phases(registry, tokenizer):
    ds = build(registry, TWO_PHASES, tokenizer, num_samples=480, global_batch_size=16)
    for c in range(len(ds.datasets)):
        served = ds.dataset_sample_index[ds.dataset_index == c]
        assert np.array_equal(served, np.arange(len(served))), c  # in order, no restart, no skip
        assert len(ds.datasets[c]) >= len(served)


def served_tokens(dataset, component: int, sample: int) -> list[tuple[int, int]]:
    """``(document, token offset)`` of every token a GPTDataset sample holds (megatron-core 0.16 index layout)."""
    i = dataset.shuffle_index[sample]
    doc_beg, off_beg = dataset.sample_index[i]
    doc_end, off_end = dataset.sample_index[i + 1]
    out = []
    for pos in range(doc_beg, doc_end + 1):
        doc = int(dataset.document_index[pos])
        lo = off_beg if pos == doc_beg else 0
        hi = off_end + 1 if pos == doc_end else int(dataset.dataset.sequence_lengths[doc])
        out += [(doc, t) for t in range(lo, hi)]
    return out


def repeated_before_exhaustion(ds, domain_components, draws) -> int:
    """How many tokens of the components are served twice before every token of their domain was served once;
    ``draws`` is a list of (component, sample) in training order. The last token of a sample is the first of the
    next (megatron's extra token), so only a sample's first ``SEQ_LENGTH`` tokens count as served."""
    seen: set = set()
    repeats = 0
    total = sum(int(ds[c].dataset.sequence_lengths.sum()) for c in domain_components)
    for c, s in draws:
        for token in served_tokens(ds[c], c, s)[:SEQ_LENGTH]:
            key = (c, token)
            if key in seen and len(seen) < total:
                repeats += 1
            seen.add(key)
    return repeats


def test_no_document_repeats_before_its_domain_is_exhausted(registry, tokenizer):
    """code (30% then 20%) and literature (15% then 60%) are drawn in both phases, each under one epoch over the
    run. Each is served from one pass: not one token twice. A job per phase (Megatron-LM's
    ``--phase-transition-iterations`` with a blend per phase: each phase's blend built for its own samples and read
    from 0) serves phase 1's samples of them again in phase 2."""
    n = 2400
    ds = build(registry, TWO_PHASES, tokenizer, num_samples=n, global_batch_size=16)
    lo, hi = ds.phase_starts[1], ds.phase_starts[2]
    first, second = static(registry, MAIN, tokenizer, lo), static(registry, FINAL, tokenizer, hi - lo)
    for name in ("code", "literature"):
        prefix = registry.get(name).prefixes("train")[0].path
        c = [d.dataset_path for d in ds.datasets].index(prefix)
        draws = [(c, int(s)) for i, s in zip(ds.dataset_index, ds.dataset_sample_index) if i == c]
        assert 0 < int((ds.dataset_index[:lo] == c).sum()) < len(draws)  # drawn in both phases
        assert repeated_before_exhaustion(ds.datasets, [c], draws) == 0, name
        assert len({tok[0] for _, s in draws for tok in served_tokens(ds.datasets[c], c, s)}) > 5

        seen, repeats = set(), 0
        for part, count in ((first, lo), (second, hi - lo)):
            k = [d.dataset_path for d in part.datasets].index(prefix)
            for i, s in zip(part.dataset_index[:count], part.dataset_sample_index[:count]):
                if i == k:
                    for token in served_tokens(part.datasets[k], k, int(s))[:SEQ_LENGTH]:
                        repeats += token in seen
                        seen.add(token)
        assert repeats > 0, name


def test_epochs_count_every_phase(registry, tokenizer, caplog):
    """speeches: 5% of phase 1, 90% of phase 2; each phase alone stays under the cap, the run does not."""
    from regmix_megatron.megatron.train_dataset import epochs_per_domain

    schedule = Schedule.from_phases([(0.9, MAIN), (0.1, mix(speeches=0.9, code=0.1))])
    n = 4000
    sizes = [3600, 400]
    epochs = epochs_per_domain(registry, schedule, sizes, seq_length=SEQ_LENGTH)
    tokens = registry.get("speeches").num_tokens("train")
    assert epochs["speeches"] == pytest.approx((0.05 * 3600 + 0.9 * 400) * SEQ_LENGTH / tokens)
    with caplog.at_level(logging.WARNING):
        ds = build(registry, schedule, tokenizer, num_samples=n, max_epochs=0.2)
    assert "domain 'speeches' would be repeated" in caplog.text and "over the schedule's 2 phases" in caplog.text
    c = [d.dataset_path for d in ds.datasets].index(registry.get("speeches").prefixes("train")[0].path)
    # the component is built for both phases' draws: megatron's epochs count all of them
    drawn = int((ds.dataset_index == c).sum())
    assert len(ds.datasets[c]) >= drawn and ds.datasets[c].num_samples >= drawn


def test_the_index_is_a_pure_function(registry, tokenizer):
    a = build(registry, TWO_PHASES, tokenizer, num_samples=320, global_batch_size=16)
    b = build(registry, TWO_PHASES, tokenizer, num_samples=320, global_batch_size=16)
    assert np.array_equal(a.dataset_index, b.dataset_index)
    assert np.array_equal(a.dataset_sample_index, b.dataset_sample_index)
    for i in (0, 159, 160, 255, 256, 319):  # around the boundary (step 15 of 20 x 16 samples)
        assert np.array_equal(a[i]["tokens"], b[i]["tokens"])
    other = build(registry, TWO_PHASES, tokenizer, num_samples=320, global_batch_size=16, seed=7)
    assert not all(np.array_equal(a[i]["tokens"], other[i]["tokens"]) for i in range(8))


def test_refusals(registry, tokenizer):
    with pytest.raises(ScheduleError, match="phase 2 .* gets no steps"):
        build(registry, Schedule.from_phases([(0.99, MAIN), (0.01, FINAL)]), tokenizer, num_samples=160,
              global_batch_size=16)
    bad = Schedule.from_phases([(0.5, MAIN.restrict(NAMES + ("extra",))), (0.5, FINAL.restrict(NAMES + ("extra",)))])
    with pytest.raises(DataError, match=r"unknown \['extra'\]"):
        build(registry, bad, tokenizer)


def test_one_builder_a_one_phase_schedule_is_its_mixtures_train_set(registry, tokenizer):
    """The one builder takes a mixture or a schedule; a one-phase schedule builds the mixture's train set (megatron-
    core's own blend, same class, same samples), and the epoch warning is the mixture's."""
    mixture = FINAL
    one = build(registry, Schedule.from_mixture(mixture), tokenizer, num_samples=200)
    plain = static(registry, mixture, tokenizer, 200)
    assert type(one) is type(plain) and not hasattr(one, "phase_starts")
    assert one.regmix_component_domains == plain.regmix_component_domains
    assert np.array_equal(one.dataset_index, plain.dataset_index)
    for i in range(0, 200, 7):
        assert np.array_equal(one[i]["tokens"], plain[i]["tokens"])
    two = build(registry, TWO_PHASES, tokenizer, num_samples=480, global_batch_size=16)
    assert two.phase_starts == (0, 368, 480) and two.schedule == TWO_PHASES


def test_a_one_phase_train_set_has_the_phased_one_phase_table(registry, tokenizer):
    """phase_rows of the one builder's one-phase train set (megatron-core's blend) is the phased train set's row: what
    result.json records for a run given a one-phase schedule."""
    from regmix_megatron.megatron.train_dataset import phase_rows

    for mixture in (MAIN, mix(speeches=1.0)):  # a weighted blend, and a single prefix (a plain GPTDataset)
        one = Schedule.from_mixture(mixture)
        ours = phase_rows(build(registry, one, tokenizer, num_samples=480, global_batch_size=16), global_batch_size=16)
        theirs = phase_rows(phased(registry, one, tokenizer, num_samples=480, global_batch_size=16),
                            global_batch_size=16)
        assert ours == theirs and (ours[0]["start_step"], ours[0]["end_step"]) == (0, 30)

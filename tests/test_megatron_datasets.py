"""A mixture becomes the blend megatron-core builds, exactly: realized weights, zero weights, refusals.

Until the shared ``indexed_fixture`` exists these tests build a tiny real SentencePiece tokenizer and real
``.bin/.idx`` files (megatron-core's ``IndexedDatasetBuilder``) in a temporary directory.
"""

import argparse
import logging
from pathlib import Path

import numpy as np
import pytest

from regmix_megatron.errors import DataError, RegmixError
from regmix_megatron.fileio import sha256_file
from regmix_megatron.manifest import Domain, DomainRegistry, PrefixInfo, TokenizerInfo
from regmix_megatron.mixture import Mixture

SEQ_LENGTH = 32
#: documents per (domain, split); "code" is stored in two train shards of different sizes.
DOMAINS = {"books": [60], "code": [20, 50], "web": [80], "wiki": [15]}


def _training_text() -> list[str]:
    import inspect
    import json as json_module
    import textwrap

    import argparse as argparse_module

    text = inspect.getsource(argparse_module) + inspect.getsource(json_module.decoder) + inspect.getsource(textwrap)
    return [line.strip() for line in text.splitlines() if len(line.strip()) > 20]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    import sentencepiece as spm
    from megatron.core.datasets.indexed_dataset import IndexedDatasetBuilder

    from regmix_megatron.tokenizer import write_metadata

    root = tmp_path_factory.mktemp("indexed")
    lines = _training_text()
    tok_dir = root / "tokenizer"
    tok_dir.mkdir()
    spm.SentencePieceTrainer.train(sentence_iterator=iter(lines), model_prefix=str(tok_dir / "tokenizer"),
                                   vocab_size=400, model_type="bpe", bos_id=-1, eos_id=2, unk_id=0, pad_id=1,
                                   num_threads=1, minloglevel=2)
    model = tok_dir / "tokenizer.model"
    write_metadata(model)
    sp = spm.SentencePieceProcessor(model_file=str(model))
    rng = np.random.default_rng(0)
    domains = []
    for d_index, (name, shard_docs) in enumerate(DOMAINS.items()):
        splits = {}
        for split in ("train", "valid", "test"):
            infos = []
            for k, num_docs in enumerate(shard_docs if split == "train" else [8]):
                prefix = root / name / f"{split}_{k}_text_document"
                prefix.parent.mkdir(parents=True, exist_ok=True)
                builder = IndexedDatasetBuilder(str(prefix) + ".bin", dtype=np.uint16)
                num_tokens = 0
                for _ in range(num_docs):
                    start = int(rng.integers(0, len(lines) - 4))
                    ids = sp.encode(" ".join(lines[start:start + 3])) + [sp.eos_id()]
                    builder.add_document(np.array(ids, dtype=np.uint16), [len(ids)])
                    num_tokens += len(ids)
                builder.finalize(str(prefix) + ".idx")
                infos.append(PrefixInfo(str(prefix), num_docs, num_docs, num_tokens))
            splits[split] = tuple(infos)
        domains.append(Domain(name=name, splits=splits))
    tok = TokenizerInfo("sentencepiece", str(model), sha256_file(model), sp.get_piece_size(), sp.eos_id())
    DomainRegistry(domains=tuple(domains), tokenizer=tok).save(root / "domains.json")
    return root


@pytest.fixture(scope="module")
def registry(data_dir) -> DomainRegistry:
    return DomainRegistry.load(data_dir / "domains.json")


@pytest.fixture(scope="module")
def tokenizer(registry):
    from regmix_megatron.megatron.tokenizer import load_registry_tokenizer

    return load_registry_tokenizer(registry)


MIXTURES = [
    {"books": 0.5, "code": 0.3, "web": 0.0, "wiki": 0.2},
    {"books": 0.0, "code": 0.0, "web": 0.0, "wiki": 1.0},
    {"books": 0.1234, "code": 0.4321, "web": 0.3333, "wiki": 0.1112},
    {"books": 0.0, "code": 0.61, "web": 0.39, "wiki": 0.0},
]


@pytest.mark.parametrize("weights", MIXTURES)
def test_realized_weights_within_one_sample(registry, tokenizer, weights):
    from regmix_megatron.megatron.datasets import build_blended_dataset, realized_fractions, realized_samples

    mixture = Mixture.from_dict(weights)
    num_samples = 257
    ds = build_blended_dataset(registry, mixture, seq_length=SEQ_LENGTH, num_samples=num_samples, seed=1234,
                               tokenizer=tokenizer)
    assert len(ds) >= num_samples
    samples = realized_samples(ds, registry)
    fractions = realized_fractions(ds, registry)
    assert set(samples) == set(registry.names)
    for name, w in mixture.as_dict().items():
        assert abs(samples[name] - w * len(ds)) <= 1.0, (name, samples[name], w * len(ds))
        assert abs(samples[name] - w * num_samples) <= 1.0 + (len(ds) - num_samples)
        if w == 0:
            assert samples[name] == 0 and fractions[name] == 0.0
    assert sum(fractions.values()) == pytest.approx(1.0)
    # The index realized_fractions reads is the one samples are drawn through; samples have seq_length tokens.
    if hasattr(ds, "dataset_index"):
        component_domains = ds.regmix_component_domains
        for i in range(0, len(ds), 37):
            item = ds[i]
            assert int(item["dataset_id"]) == int(ds.dataset_index[i])
            assert weights[component_domains[int(item["dataset_id"])]] > 0
            assert len(item["tokens"]) == SEQ_LENGTH


def test_same_seed_same_blend(registry, tokenizer):
    from regmix_megatron.megatron.datasets import build_blended_dataset

    m = Mixture.from_dict(MIXTURES[0])
    a = build_blended_dataset(registry, m, seq_length=SEQ_LENGTH, num_samples=64, seed=7, tokenizer=tokenizer)
    b = build_blended_dataset(registry, m, seq_length=SEQ_LENGTH, num_samples=64, seed=7, tokenizer=tokenizer)
    assert np.array_equal(a.dataset_index, b.dataset_index)
    assert np.array_equal(a[5]["tokens"], b[5]["tokens"])


def test_epoch_warning_and_table(registry, tokenizer, caplog):
    from regmix_megatron.megatron.datasets import build_blended_dataset, epochs_per_domain, log_fraction_table

    m = Mixture.from_dict({"books": 0.1, "code": 0.1, "web": 0.1, "wiki": 0.7})
    num_samples = 200
    epochs = epochs_per_domain(registry, m, num_samples=num_samples, seq_length=SEQ_LENGTH)
    wiki_tokens = registry.get("wiki").num_tokens("train")
    assert epochs["wiki"] == pytest.approx(0.7 * num_samples * SEQ_LENGTH / wiki_tokens)
    assert epochs["wiki"] > 2
    with caplog.at_level(logging.WARNING, logger="regmix_megatron"):
        ds = build_blended_dataset(registry, m, seq_length=SEQ_LENGTH, num_samples=num_samples, seed=1,
                                   tokenizer=tokenizer, max_epochs=2.0, mid_level_dataset_surplus=0.05)
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and "regmix" in r.name]
    assert any("'wiki' would be repeated" in msg and "max_epochs=2" in msg for msg in warned)
    assert not any("'books'" in msg for msg in warned)
    table = log_fraction_table(ds, registry, m, seq_length=SEQ_LENGTH)
    assert "requested" in table and "realized" in table and len(table.splitlines()) == 2 + len(registry.names)


def test_refusals(registry, tokenizer, data_dir, tmp_path):
    from regmix_megatron.megatron.datasets import build_blended_dataset

    with pytest.raises(DataError, match=r"unknown \['news'\]"):
        build_blended_dataset(registry, Mixture.from_dict({"books": 0.5, "news": 0.5}), seq_length=SEQ_LENGTH,
                              num_samples=8, seed=1, tokenizer=tokenizer)
    with pytest.raises(RegmixError, match="path_to_cache.*process group"):
        build_blended_dataset(registry, Mixture.from_dict(MIXTURES[0]), seq_length=SEQ_LENGTH, num_samples=8,
                              seed=1, tokenizer=tokenizer, path_to_cache=tmp_path / "cache")
    with pytest.raises(RegmixError, match="num_samples=0"):
        build_blended_dataset(registry, Mixture.from_dict(MIXTURES[0]), seq_length=SEQ_LENGTH, num_samples=0,
                              seed=1, tokenizer=tokenizer)


def _namespace(data_dir, mixture_path, **extra):
    from regmix_megatron.megatron.provider import add_regmix_args

    parser = add_regmix_args(argparse.ArgumentParser())
    args = parser.parse_args(["--regmix-mixture", str(mixture_path), "--regmix-domains",
                              str(data_dir / "domains.json"), "--regmix-max-epochs", "4"])
    # The fields Megatron-LM's pretrain_gpt.py args carry that the provider reads.
    defaults = dict(seq_length=SEQ_LENGTH, seed=1234, tokenizer_model=str(data_dir / "tokenizer" / "tokenizer.model"),
                    data_cache_path=None, multiple_validation_sets=False, full_validation=False,
                    reset_position_ids=False, reset_attention_mask=False, eod_mask_loss=False,
                    mid_level_dataset_surplus=0.005)
    defaults.update(extra)
    for k, v in defaults.items():
        setattr(args, k, v)
    return args


def test_build_datasets_from_args(data_dir, registry, tmp_path, caplog):
    from regmix_megatron.megatron.datasets import realized_samples
    from regmix_megatron.megatron.provider import build_datasets_from_args

    m = Mixture.from_dict(MIXTURES[0])
    path = m.save(tmp_path / "mixture.json")
    with caplog.at_level(logging.INFO, logger="regmix_megatron"):
        train, valid, test = build_datasets_from_args(_namespace(data_dir, path), [96, 16, 8])
    assert "requested vs realized" in caplog.text
    samples = realized_samples(train, registry)
    assert samples["web"] == 0 and abs(samples["books"] - 0.5 * len(train)) <= 1
    assert len(valid) >= 16 and len(test) >= 8
    assert set(realized_samples(valid, registry)) == set(registry.names)

    # --multiple-validation-sets: one dataset per domain (zero-weight "web" included), identical across mixtures
    args = _namespace(data_dir, path, multiple_validation_sets=True)
    _, valid_sets, _ = build_datasets_from_args(args, [32, 10, 0])
    assert len(valid_sets) == len(registry.names)
    assert [ds.regmix_component_domains[0] for ds in valid_sets] == list(registry.names)
    other = Mixture.from_dict(MIXTURES[1]).save(tmp_path / "other.json")
    _, valid_other, test_none = build_datasets_from_args(_namespace(data_dir, other, multiple_validation_sets=True),
                                                         [32, 10, 0])
    assert test_none is None
    for a, b in zip(valid_sets, valid_other):
        assert np.array_equal(a[0]["tokens"], b[0]["tokens"])
    # --full-validation: one full epoch per domain
    _, full_sets, _ = build_datasets_from_args(_namespace(data_dir, path, multiple_validation_sets=True,
                                                          full_validation=True), [32, None, 0])
    assert all(len(ds) >= 1 for ds in full_sets)


def test_provider_refuses_mismatches(data_dir, tmp_path):
    from regmix_megatron.megatron.provider import build_datasets_from_args

    bad = tmp_path / "bad.json"
    bad.write_text('{"books": 0.5, "code": 0.5}')
    with pytest.raises(DataError, match=r"missing \['web', 'wiki'\]"):
        build_datasets_from_args(_namespace(data_dir, bad), [8, 0, 0])
    good = Mixture.from_dict(MIXTURES[0]).save(tmp_path / "good.json")
    other_model = tmp_path / "other.model"
    other_model.write_bytes((data_dir / "tokenizer" / "tokenizer.model").read_bytes() + b"x")
    with pytest.raises(DataError, match="--tokenizer-model .*sha256 .* differs"):
        build_datasets_from_args(_namespace(data_dir, good, tokenizer_model=str(other_model)), [8, 0, 0])
    args = _namespace(data_dir, good)
    args.regmix_domains = None
    with pytest.raises(RegmixError, match="--regmix-domains is required"):
        build_datasets_from_args(args, [8, 0, 0])


def test_add_regmix_args_and_provider_form():
    from regmix_megatron.megatron import provider

    parser = provider.add_regmix_args(argparse.ArgumentParser())
    args = parser.parse_args(["--regmix-mixture", "m.json", "--regmix-domains", "d.json", "--regmix-max-epochs", "1.5"])
    assert (args.regmix_mixture, args.regmix_domains, args.regmix_max_epochs) == ("m.json", "d.json", 1.5)
    assert provider.train_valid_test_datasets_provider.is_distributed is True

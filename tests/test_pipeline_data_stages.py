"""The pipeline's data stages (regmix_megatron/pipeline/data_stages.py: corpus, tokenizer, indexed), run for real
on the corpus fixture."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from regmix_megatron.pipeline.config import PipelineConfig, load_pipeline_config
from regmix_megatron.pipeline.framework import read_record
from helpers.pipeline_configs import FIXTURE_CONFIG, FIXTURE_CORPUS, write_config


def _fixture_config(tmp_path, **changes) -> PipelineConfig:
    if not FIXTURE_CORPUS.is_dir():
        pytest.skip(f"corpus fixture {FIXTURE_CORPUS} missing")
    cfg = load_pipeline_config(FIXTURE_CONFIG, output_dir=str(tmp_path / "out"))
    for key, value in changes.items():
        section, name = key.split("__")
        setattr(getattr(cfg, section), name, value)
    return cfg


def test_real_early_stages_skip_and_redo(tmp_path):
    from regmix_megatron.data.manifest import DomainRegistry
    from regmix_megatron.pipeline import run_pipeline

    cfg = _fixture_config(tmp_path)
    first = run_pipeline(cfg, until="sample")
    assert [r.status for r in first] == ["done"] * 4
    out = Path(cfg.output_dir)
    registry = DomainRegistry.load(out / "data" / "domains.json")
    assert registry.names == ("code", "legal", "literature", "math")  # corpus.domains is honoured
    assert registry.eval_only_names == ("qa",)  # corpus.eval_only: tokenized, evaluated, never a training domain
    tokenizer_info = json.loads((out / "tokenizer" / "tokenizer_info.json").read_text())
    assert sorted(tokenizer_info["training"]["bytes_per_domain"]) == list(registry.names)  # qa stays unseen
    lines = (out / "sample" / "mixtures.jsonl").read_text().splitlines()
    corners = [m for m in map(json.loads, lines) if sum(w > 0 for w in m["weights"].values()) == 1]
    assert len(corners) == 4  # every single-domain mixture (for the best_domain baseline), each once
    assert len(lines) == cfg.sample.num_samples + read_record(out, "sample")["outputs"]["values"][
        "num_single_domain_added"]
    assert all("qa" not in m["weights"] for m in map(json.loads, lines))
    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert saved["tokenizer"]["vocab_size"] == 1000 and saved["output_dir"] == cfg.output_dir
    mixtures_before = (out / "sample" / "mixtures.jsonl").read_text()

    # speed-only settings are not inputs: nothing is redone
    cfg2 = _fixture_config(tmp_path, preprocess__workers=2)
    assert [r.status for r in run_pipeline(cfg2, until="sample")] == ["skipped"] * 4

    # a new vocabulary redoes the tokenizer and everything downstream of it, not the corpus
    cfg3 = _fixture_config(tmp_path, tokenizer__vocab_size=800)
    again = run_pipeline(cfg3, until="sample")
    assert [r.status for r in again] == ["skipped", "done", "done", "done"]
    assert DomainRegistry.load(out / "data" / "domains.json").tokenizer.vocab_size == 800
    # token counts changed, so the prior and the sampled mixtures changed too
    assert (out / "sample" / "mixtures.jsonl").read_text() != mixtures_before


def test_the_corpus_stage_builds_held_out_domains_for_evaluation_and_adds_extra_domains(tmp_path):
    from helpers.corpus_sources import assert_prefixes_stratified, populate_offline_cache

    from regmix_megatron.data.corpus import writer
    from regmix_megatron.pipeline import run_pipeline

    populate_offline_cache(tmp_path / "cache")  # legal and changelogs, no network
    texts = tmp_path / "my_texts"
    texts.mkdir()
    for domain in ("speeches", "literature"):
        lines = (FIXTURE_CORPUS / domain / "train.jsonl").read_text().splitlines()
        (texts / f"{domain}.txt").write_text("\n\n".join(json.loads(line)["text"] for line in lines))
    data = {"output_dir": "out", "target": "mytexts",
            "corpus": {"source": "build", "cache_dir": "cache", "domains": ["legal", "changelogs"],
                       "max_mb_per_domain": 0.2, "extra_domains": {"mytexts": {"path": "my_texts", "eval_only": True}}}}
    cfg = load_pipeline_config(write_config(tmp_path, data))
    assert [r.status for r in run_pipeline(cfg, until="corpus")] == ["done"]
    values = read_record(tmp_path / "out", "corpus")["outputs"]["values"]
    assert values["domains"] == ["changelogs", "legal", "mytexts"] and values["eval_only"] == ["mytexts"]
    corpus = tmp_path / "cache" / "corpus"
    entry = writer.read_manifest(corpus)["domains"]["mytexts"]
    assert entry["evaluation_only"] and entry["num_bytes"] <= 200_000  # the cap holds for the extra domain too
    valid = list(writer.iter_documents(corpus / "mytexts" / "valid.jsonl"))
    assert {d.source for d in valid} == {"speeches.txt", "literature.txt"}
    assert_prefixes_stratified([d.source for d in valid])
    assert "evaluation_only" not in writer.read_manifest(corpus)["domains"]["legal"]
    assert [r.status for r in run_pipeline(cfg, until="corpus")] == ["skipped"]
    (texts / "speeches.txt").write_text((texts / "speeches.txt").read_text() + "\n\nA new closing paragraph. " * 20)
    assert [r.status for r in run_pipeline(cfg, until="corpus")] == ["done"]  # an input changed

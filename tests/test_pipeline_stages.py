"""The pipeline's stages (regmix_megatron/pipeline/stages.py), run for real on the corpus fixture."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from regmix_megatron.pipeline.config import PipelineConfig, load_pipeline_config
from regmix_megatron.pipeline.framework import read_record

REPO = Path(__file__).resolve().parents[1]
FIXTURE_CORPUS = REPO / "tests" / "fixtures" / "corpus"
FIXTURE_CONFIG = REPO / "examples" / "fixture.yaml"


def _write(tmp_path, data) -> Path:
    p = tmp_path / "cfg.yaml"
    p.write_text(yaml.safe_dump(data))
    return p


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


def test_epoch_caps_bind_the_sampled_mixtures_to_the_target_budget(tmp_path):
    """``sample.sampler.max_epochs`` alone: the budget is one target run's tokens, and every mixture keeps
    each domain under ``max_epochs * tokens_i / target_tokens``."""
    import numpy as np

    from regmix_megatron.data.manifest import DomainRegistry
    from regmix_megatron.mixtures.mixture import read_mixtures
    from regmix_megatron.pipeline import run_pipeline
    from regmix_megatron.pipeline.config import sampler_config
    from regmix_megatron.pipeline.stages import target_train_tokens

    data = yaml.safe_load(FIXTURE_CONFIG.read_text())
    data["corpus"]["source"] = str(FIXTURE_CORPUS)
    data["sample"]["sampler"] = {"max_epochs": 0.5}
    cfg = load_pipeline_config(_write(tmp_path, data), output_dir=str(tmp_path / "out"))  # loads: no error
    budget = target_train_tokens(cfg)
    assert budget == 60 * 16 * 64  # the fixture's target runs: steps x global batch x sequence length
    assert sampler_config(cfg, None, target_tokens=budget).target_tokens == budget
    run_pipeline(cfg, until="sample")
    registry = DomainRegistry.load(Path(cfg.output_dir) / "data" / "domains.json")
    caps = 0.5 * registry.tokens_per_domain("train") / budget
    assert caps.min() < 1  # the caps bind on this corpus
    mixtures = read_mixtures(Path(cfg.output_dir) / "sample" / "mixtures.jsonl")
    weights = np.array([m.as_array(registry.names) for m in mixtures])
    assert len(mixtures) >= cfg.sample.num_samples  # plus the single-domain corners the caps allow
    assert (weights <= caps + 1e-9).all()
    assert all(caps[int(np.argmax(w))] >= 1 for w in weights if (w > 0).sum() == 1)

"""The pipeline's mixture-search stages (regmix_megatron/pipeline/search_stages.py: sample, sweep, fit, search), run
for real on the corpus fixture (the whole chain end to end: tests/test_pipeline.py)."""

from __future__ import annotations

from pathlib import Path

import yaml

from regmix_megatron.pipeline.config import load_pipeline_config
from helpers.pipeline_configs import FIXTURE_CONFIG, FIXTURE_CORPUS, write_config


def test_epoch_caps_bind_the_sampled_mixtures_to_the_target_budget(tmp_path):
    """``sample.sampler.max_epochs`` alone: the budget is one target run's tokens, and every mixture keeps
    each domain under ``max_epochs * tokens_i / target_tokens``."""
    import numpy as np

    from regmix_megatron.data.manifest import DomainRegistry
    from regmix_megatron.mixtures.mixture import read_mixtures
    from regmix_megatron.pipeline import run_pipeline
    from regmix_megatron.pipeline.stage_helpers import target_train_tokens

    data = yaml.safe_load(FIXTURE_CONFIG.read_text())
    data["corpus"]["source"] = str(FIXTURE_CORPUS)
    data["sample"]["sampler"] = {"max_epochs": 0.5}
    cfg = load_pipeline_config(write_config(tmp_path, data), output_dir=str(tmp_path / "out"))  # loads: no error
    budget = target_train_tokens(cfg)
    assert budget == 60 * 16 * 64  # the fixture's target runs: steps x global batch x sequence length
    assert cfg.sample.sampler.target_tokens == budget  # parsed at load with the full-scale budget
    run_pipeline(cfg, until="sample")
    registry = DomainRegistry.load(Path(cfg.output_dir) / "data" / "domains.json")
    caps = 0.5 * registry.tokens_per_domain("train") / budget
    assert caps.min() < 1  # the caps bind on this corpus
    mixtures = read_mixtures(Path(cfg.output_dir) / "sample" / "mixtures.jsonl")
    weights = np.array([m.as_array(registry.names) for m in mixtures])
    assert len(mixtures) >= cfg.sample.num_samples  # plus the single-domain corners the caps allow
    assert (weights <= caps + 1e-9).all()
    assert all(caps[int(np.argmax(w))] >= 1 for w in weights if (w > 0).sum() == 1)

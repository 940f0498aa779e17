"""The pipeline config (regmix_megatron/pipeline/config.py): errors name field and fix, paths, the target."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from regmix_megatron.errors import ConfigError
from regmix_megatron.pipeline.config import PipelineConfig, load_pipeline_config
from regmix_megatron.target import Target

def _write(tmp_path, data) -> Path:
    p = tmp_path / "cfg.yaml"
    p.write_text(yaml.safe_dump(data))
    return p


def test_config_errors_name_field_and_fix(tmp_path):
    cases = [
        ({"target": "average", "targets": {"baselines": ["natural", "target_only"]}}, "targets.baselines"),
        ({"targets": {"baselines": ["natural", "best"]}}, "targets.baselines"),
        ({"sample": {"num_proxies": 2}}, "sample.num_proxies"),
        ({"search": {"pool_size": 10, "top_k": 20}}, "search.top_k"),
        ({"executor": {"kind": "kubernetes"}}, "executor.kind"),
        ({"proxy": {"preset": "cpu-proxy", "overrides": {"seed": 3}}}, "proxy.overrides"),
        ({"corpus": {"source": "no/such/dir"}}, "corpus.source"),
        ({"proxy": {"preset": "huge"}}, "preset"),
        ({"proxy": {"overrides": {"optim": {"lr": -1}}}}, "optim.lr"),
        ({"sample": {"sampler": {"temperature": "hot"}}}, "temperature"),
        ({"nonsense": 1}, "nonsense"),
    ]
    for data, needle in cases:
        with pytest.raises(ConfigError, match=needle.replace(".", r"\.")):
            load_pipeline_config(_write(tmp_path, data))


def test_config_resolves_paths_against_file(tmp_path):
    (tmp_path / "corp").mkdir()
    cfg = load_pipeline_config(_write(tmp_path, {"output_dir": "out", "corpus": {"source": "corp"}}))
    assert cfg.output_dir == str(tmp_path / "out")
    assert cfg.corpus.source == str(tmp_path / "corp")
    assert load_pipeline_config(_write(tmp_path, {}), output_dir=str(tmp_path / "x")).output_dir == \
        str(tmp_path / "x")
    assert PipelineConfig(target="code").parsed_target == Target.domain("code")


def test_the_target_decides_the_baselines_and_must_be_a_domain(tmp_path):
    cfg = load_pipeline_config(_write(tmp_path, {"target": "average"}))
    assert cfg.parsed_target == Target.average() and cfg.targets.baselines == ["natural", "uniform"]
    cfg = load_pipeline_config(_write(tmp_path, {"target": "code"}))
    assert cfg.targets.baselines == ["natural", "uniform", "target_only"]
    with pytest.raises(ConfigError, match=r"PipelineConfig\.target='web' is invalid: \['web'\] not among the "
                                          r"domains \['code', 'math'\]"):
        load_pipeline_config(_write(tmp_path, {"target": "web", "corpus": {"domains": ["code", "math"]}}))
    with pytest.raises(ConfigError, match=r"PipelineConfig\.target"):
        load_pipeline_config(_write(tmp_path, {"target": ""}))


def test_sampler_and_slurm_options_come_from_their_sections(tmp_path):
    from regmix_megatron.pipeline.config import sampler_config, slurm_options

    cfg = load_pipeline_config(_write(tmp_path, {"seed": 5, "sample": {"num_proxies": 8,
                                                                       "sampler": {"temperature": 0.7}}}))
    sampler = sampler_config(cfg, None, target_tokens=1000)
    assert (sampler.num_samples, sampler.seed, sampler.temperature) == (8, 5, 0.7)
    assert sampler.target_tokens is None  # the budget only matters with an epoch cap
    cfg.sample.sampler["max_epochs"] = 2.0
    assert sampler_config(cfg, None, target_tokens=1000).target_tokens == 1000
    cfg = load_pipeline_config(_write(tmp_path, {"executor": {"kind": "slurm", "num_parallel": 3, "max_retries": 2,
                                                              "slurm": {"partition": "cpu"}}}))
    options = slurm_options(cfg)
    assert (options.partition, options.throttle, options.max_attempts) == ("cpu", 3, 3)
    with pytest.raises(ConfigError, match=r"executor\.slurm=\['qos'\] is invalid: unknown SLURM option"):
        load_pipeline_config(_write(tmp_path, {"executor": {"kind": "slurm", "slurm": {"qos": "high"}}}))


def test_schedule_section(tmp_path):
    from regmix_megatron.errors import ConfigError
    from regmix_megatron.pipeline.config import PipelineConfig, ScheduleSection
    from regmix_megatron.pipeline.stages import sample_inputs

    assert PipelineConfig().schedule_fractions is None
    cfg = PipelineConfig(schedule=ScheduleSection(phases=[0.8, 0.2]))
    assert cfg.schedule_fractions == (0.8, 0.2)
    assert sample_inputs(cfg)["schedule"] == [0.8, 0.2]
    assert "schedule" not in sample_inputs(PipelineConfig())  # a static pipeline keeps its fingerprints
    for phases, match in (([0.8, 0.3], "sum to 1.1: make them sum to 1"), ([1.0], "give 2 to 9 positive"),
                          ([0.5, -0.5, 1.0], "give 2 to 9 positive"), ("0.8,0.2", "give 2 to 9 positive")):
        with pytest.raises(ConfigError, match=f"schedule.phases=.* is invalid: .*{match}"):
            ScheduleSection(phases=phases)

"""The sampler's config (regmix_megatron/mixtures/sampler_config.py): the method's defaults, errors naming the field and
the fix, and the one way a SamplerConfig is assembled."""

import numpy as np
import pytest

from regmix_megatron.configs import load_config
from regmix_megatron.errors import ConfigError
from regmix_megatron.mixtures.caps import domain_caps
from regmix_megatron.mixtures.sampler_config import SamplerConfig, build_sampler_config

SMALL_TOKENS = np.array([5e8, 2e8, 1e8, 5e7, 3e7, 1e7, 5e6, 2e6, 1e6]).astype(np.int64)


def test_defaults_are_the_methods():
    c = SamplerConfig()
    assert (c.num_samples, c.temperature, c.min_weight, c.cap_multiplier) == (512, 0.5, 2e-4, 15.0)
    s = c.strengths()
    assert len(s) == 15 and s[0] == pytest.approx(0.1) and s[-1] == pytest.approx(5.0)
    assert np.allclose(np.diff(np.log(s)), np.log(50) / 14)  # log-spaced


def test_config_validation_names_field_and_fix():
    with pytest.raises(ConfigError, match=r"sampler\.num_samples=0.*positive"):
        SamplerConfig(num_samples=0)
    with pytest.raises(ConfigError, match=r"sampler\.strength_max=0.05.*>= strength_min"):
        SamplerConfig(strength_max=0.05)
    with pytest.raises(ConfigError, match=r"sampler\.dedup_metric='l2'"):
        SamplerConfig(dedup_metric="l2")
    with pytest.raises(ConfigError, match=r"max_weights\['a'\]=0.1.*>= min_weights\['a'\]=0.2"):
        SamplerConfig(min_weights={"a": 0.2}, max_weights={"a": 0.1})
    with pytest.raises(ConfigError, match=r"min_weights names unknown domain\(s\) \['zz'\]"):
        domain_caps(SMALL_TOKENS, SamplerConfig(min_weights={"zz": 0.1}), domains=[f"d{i}" for i in range(9)])
    with pytest.raises(ConfigError, match="pass domains="):
        domain_caps(SMALL_TOKENS, SamplerConfig(max_weights={"d0": 0.1}))
    with pytest.raises(ConfigError, match="unknown field"):
        load_config(SamplerConfig, {"num_sample": 3}, source="s.yaml")
    cfg = load_config(SamplerConfig, {"num_samples": 8, "cap_multiplier": None, "max_weights": {"a": 0.5}})
    assert cfg.cap_multiplier is None and cfg.max_weights == {"a": 0.5}


def test_sampler_config_is_assembled_from_fields_defaults_and_overrides():
    fields = {"sampler": {"temperature": 0.7, "seed": 3}, "format": "regmix-megatron/sampler-run/v1"}
    cfg = build_sampler_config(fields, defaults={"seed": 9, "num_samples": 12}, overrides={"cap_multiplier": None})
    assert (cfg.temperature, cfg.seed, cfg.num_samples, cfg.cap_multiplier) == (0.7, 3, 12, None)
    assert build_sampler_config({"temperature": 0.7}).temperature == 0.7  # a plain mapping of fields
    assert build_sampler_config(None) == SamplerConfig()
    with pytest.raises(ConfigError, match=r"flags: expected a mapping of SamplerConfig fields, got list"):
        build_sampler_config([1, 2], source="flags")
    with pytest.raises(ConfigError, match=r"s\.yaml: unknown field\(s\) \['temp'\]"):
        build_sampler_config({"temp": 1}, source="s.yaml")

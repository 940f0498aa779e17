"""The sampler's bounds (regmix_megatron/mixtures/caps.py): infeasible caps refused naming the field and the fix; a
schedule's per-phase caps and its epoch cap over all phases; one phase is the mixture's caps."""

import numpy as np
import pytest

from regmix_megatron.errors import ConfigError
from regmix_megatron.mixtures.caps import domain_caps, feature_bounds, joint_upper, phase_config, within_joint_caps
from regmix_megatron.mixtures.mixture import Mixture
from regmix_megatron.mixtures.sampler_config import SamplerConfig
from regmix_megatron.mixtures.schedule import Schedule


def test_cap_below_min_weight_is_refused():
    tokens = np.array([10_000_000, 1_000_000, 1_000])  # last domain: prior ~9e-5
    with pytest.raises(ConfigError, match=r"cap of domain '#2'.*below min_weight=0.0002.*raise cap_multiplier"):
        domain_caps(tokens, SamplerConfig(cap_multiplier=1.0))
    with pytest.raises(ConfigError, match=r"cap of domain 'tiny'.*max_epochs.*raise max_epochs or lower target_tokens"):
        domain_caps(tokens, SamplerConfig(cap_multiplier=None, max_epochs=1.0, target_tokens=10_000_000),
                    domains=["big", "mid", "tiny"])
    with pytest.raises(ConfigError, match=r"min_weights\['web'\]=1e-05.*0 or >= min_weight"):
        SamplerConfig(min_weights={"web": 1e-5})


def test_target_budget_no_mixture_can_meet_is_refused():
    tokens = np.array([600, 300, 100])
    with pytest.raises(ConfigError, match=r"target_tokens=2000 is more than max_epochs=1.5 x the 1000.*"
                                          r"use target_tokens <= 1500 or raise max_epochs"):
        domain_caps(tokens, SamplerConfig(max_epochs=1.5, target_tokens=2000, cap_multiplier=None))
    with pytest.raises(ConfigError, match=r"sampler\.target_tokens=None.*give target_tokens too"):
        SamplerConfig(max_epochs=2.0)
    with pytest.raises(ConfigError, match=r"min_weights sum to 1.2 > 1"):
        domain_caps(tokens, SamplerConfig(min_weights={"a": 0.6, "b": 0.6}), domains=["a", "b", "c"])
    with pytest.raises(ConfigError, match=r"caps sum to .* < 1"):
        domain_caps(tokens, SamplerConfig(cap_multiplier=0.9))


def test_phase_caps_share_the_epoch_budget_and_one_phase_is_the_mixtures():
    domains = ["a", "b", "c"]
    tokens = np.array([600, 300, 100])
    cfg = SamplerConfig(cap_multiplier=None, max_epochs=1.0, target_tokens=500)
    assert phase_config(cfg, 1.0, 1) is cfg and phase_config(cfg, 0.2, 2).target_tokens == 100
    assert phase_config(SamplerConfig(), 0.2, 2) == SamplerConfig()  # no epoch cap: nothing to share
    lower, upper = feature_bounds(tokens, cfg, (1.0,), domains)
    assert [x.tolist() for x in (lower, upper)] == [x.tolist() for x in domain_caps(tokens, cfg, domains=domains)]
    lower, upper = feature_bounds(tokens, cfg, (0.8, 0.2), domains)
    assert upper.tolist() == pytest.approx([0.8 * 1.0, 0.8 * 0.75, 0.8 * 0.25, 0.2 * 1.0, 0.2 * 1.0, 0.2 * 1.0])
    assert joint_upper(tokens, cfg).tolist() == [1.2, 0.6, 0.2] and joint_upper(tokens, SamplerConfig()) is None
    c_heavy = Mixture.from_dict({"a": 0.5, "b": 0.0, "c": 0.5})
    light = Mixture.from_dict({"a": 0.9, "b": 0.0, "c": 0.1})
    assert not within_joint_caps(Schedule.from_phases([(0.5, c_heavy), (0.5, c_heavy)]), tokens, cfg)
    # a short phase may spend more of c than the run's cap, as long as the run keeps it: 0.8 x 0.1 + 0.2 x 0.5
    assert within_joint_caps(Schedule.from_phases([(0.8, light), (0.2, c_heavy)]), tokens, cfg)

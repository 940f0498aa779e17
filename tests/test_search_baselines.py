"""What a search result is compared with (regmix_megatron/search/baselines.py)."""

from __future__ import annotations

import pytest

from helpers.search import DOMAINS, TOKENS
from regmix_megatron.errors import DataError
from regmix_megatron.mixtures.mixture import Mixture
from regmix_megatron.regression.target import Target
from regmix_megatron.search.baselines import baseline_mixtures


def test_baselines():
    prior = Mixture.from_array(DOMAINS, TOKENS)
    base = baseline_mixtures(prior, Target.domain("code"), {"hand": Mixture.from_dict({"web": 0.5, "code": 0.5})})
    assert base["natural"] == prior and base["uniform"].as_array(DOMAINS).tolist() == [0.2] * 5
    assert base["target_only"].as_dict()["code"] == 1.0 and base["hand"].as_dict()["books"] == 0.0
    # target_only needs one target domain
    assert set(baseline_mixtures(prior, Target.average())) == {"natural", "uniform"}
    assert set(baseline_mixtures(prior, Target.weighted({"code": 1, "web": 1}))) == {"natural", "uniform"}
    # a target domain outside the mixture's domains (a held-out, evaluation-only one) has no target_only
    assert set(baseline_mixtures(prior, Target.domain("qa"))) == {"natural", "uniform"}
    with pytest.raises(DataError, match="unknown to the model"):
        baseline_mixtures(prior, None, {"x": Mixture.from_dict({"math": 1.0})})

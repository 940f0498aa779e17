"""What a search reads besides the model (regmix_megatron/search/prior.py): the prior from each of its sources."""

from __future__ import annotations

import pytest

from helpers.search import DOMAINS, TOKENS
from regmix_megatron.errors import DataError
from regmix_megatron.search.prior import PRIOR_TOKEN_SCALE, load_prior, load_weights_file, tokens_from_mapping


def test_prior_from_each_source(tmp_path):
    (tmp_path / "tokens.yaml").write_text("".join(f"{d}: {int(t)}\n" for d, t in zip(DOMAINS, TOKENS)))
    (tmp_path / "regmix.yaml").write_text("train:\n" + "".join(f"  train_the_pile_{d}: {t / TOKENS.sum()}\n"
                                                             for d, t in zip(DOMAINS, TOKENS)))
    counts = load_prior(DOMAINS, tokens_file=str(tmp_path / "tokens.yaml"))
    assert counts.tokens.tolist() == TOKENS.tolist() and not counts.shares_only and counts.registry is None
    shares = load_prior(DOMAINS, prior_file=str(tmp_path / "regmix.yaml"))  # RegMix prefixes stripped
    assert shares.shares_only and shares.tokens.sum() == pytest.approx(PRIOR_TOKEN_SCALE)
    assert shares.mixture.as_array(DOMAINS) == pytest.approx(counts.mixture.as_array(DOMAINS), abs=1e-12)
    assert load_weights_file(tmp_path / "regmix.yaml")["code"] == pytest.approx(2 / 30)
    with pytest.raises(DataError, match=r"missing \['wiki'\], unknown \['www'\]"):
        tokens_from_mapping({**{d: 1 for d in DOMAINS[:-1]}, "www": 1}, DOMAINS, "--prior p")

"""The domain registry (regmix_megatron/manifest.py): domains, token counts, prior, checks, save/load."""

from __future__ import annotations

import numpy as np
import pytest

from regmix_megatron.errors import DataError
from regmix_megatron.manifest import SPLITS, Domain, DomainRegistry, PrefixInfo, TokenizerInfo
from regmix_megatron.mixture import Mixture, MixtureError


def make_registry(tokens: dict[str, int], path=None) -> DomainRegistry:
    domains = tuple(
        Domain(name=n, splits={"train": (PrefixInfo(f"/data/{n}/train_text_document", 1, 1, t),)})
        for n, t in tokens.items()
    )
    tok = TokenizerInfo(type="sentencepiece", model="/data/tok.model", sha256="0" * 64, vocab_size=512, eod_id=2)
    return DomainRegistry(domains=domains, tokenizer=tok, path=path)


def test_unknown_and_missing_domains_are_refused():
    reg = make_registry({"books": 100, "code": 200, "web": 700})
    with pytest.raises(DataError, match=r"unknown \['wiki'\], missing \[\]"):
        reg.check_domains(("books", "code", "web", "wiki"), "m.json")
    with pytest.raises(DataError, match=r"unknown \[\], missing \['web'\].*zero weights are allowed"):
        reg.check_domains(("books", "code"), "m.json")
    with pytest.raises(MixtureError, match="not in"):
        Mixture.from_dict({"books": 0.5, "wiki": 0.5}).as_array(reg.names)


def test_token_counts_prior_and_round_trip(tmp_path):
    reg = make_registry({"web": 700, "books": 100, "code": 200})
    assert SPLITS == ("train", "valid", "test")
    assert reg.names == ("books", "code", "web")  # canonical order
    assert reg.tokens_per_domain("train").tolist() == [100, 200, 700]
    np.testing.assert_allclose(reg.prior("train"), [0.1, 0.2, 0.7], rtol=0, atol=1e-15)
    reg.save(tmp_path / "domains.json")
    back = DomainRegistry.load(tmp_path / "domains.json")
    assert back.names == reg.names and back.tokens_per_domain("train").tolist() == [100, 200, 700]

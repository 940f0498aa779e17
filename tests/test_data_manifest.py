"""The domain registry (regmix_megatron/data/manifest.py): domains, token counts, prior, checks, save/load."""

from __future__ import annotations

import numpy as np
import pytest

from regmix_megatron.data.manifest import SPLITS, Domain, DomainRegistry, PrefixInfo, TokenizerInfo
from regmix_megatron.errors import DataError
from regmix_megatron.mixtures.mixture import Mixture, MixtureError


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


# ---- evaluation-only domains ----------------------------------------------------------------------------
def _with_held_out(tmp_path=None) -> DomainRegistry:
    reg = make_registry({"books": 100, "code": 300, "qa": 600})
    return reg.with_evaluation_only(["qa"])


def test_evaluation_only_domain_is_outside_the_mixture_space(tmp_path):
    reg = _with_held_out()
    assert reg.names == ("books", "code") and reg.all_names == ("books", "code", "qa")
    assert reg.eval_only_names == ("qa",)
    assert reg.tokens_per_domain().tolist() == [100, 300]  # qa's 600 tokens are never a share of the prior
    np.testing.assert_allclose(reg.prior(), [0.25, 0.75], rtol=0, atol=1e-15)
    reg.save(tmp_path / "domains.json")
    text = (tmp_path / "domains.json").read_text()
    assert text.count('"evaluation_only": true') == 1  # written for qa only; training domains carry no key
    back = DomainRegistry.load(tmp_path / "domains.json")
    assert back.eval_only_names == ("qa",) and back.names == reg.names
    assert back.with_evaluation_only([]).names == ("books", "code", "qa")


def test_roles_are_checked(tmp_path):
    reg = make_registry({"books": 100, "code": 300})
    with pytest.raises(DataError, match="at least one domain must be trained on"):
        reg.with_evaluation_only(["books", "code"])
    with pytest.raises(DataError, match=r"\['news'\] are not in"):
        reg.with_evaluation_only(["news"])
    reg.save(tmp_path / "domains.json")
    text = (tmp_path / "domains.json").read_text().replace('"name": "code",', '"name": "code", "evaluation_only": 1,')
    (tmp_path / "domains.json").write_text(text)
    with pytest.raises(DataError, match=r"field 'domains\[1\]\.evaluation_only' must be true or false, not int 1"):
        DomainRegistry.load(tmp_path / "domains.json")


def test_run_ids_change_with_the_roles():
    from regmix_megatron.runs.recipe import build_recipe
    from regmix_megatron.runs.run_config import evaluated_domains, run_id

    plain = make_registry({"books": 100, "code": 300, "qa": 600})
    held = plain.with_evaluation_only(["qa"])
    recipe = build_recipe({"preset": "tiny-test"})
    mixture = Mixture.from_dict({"books": 0.5, "code": 0.5})
    assert run_id(recipe, held, mixture, 1) != run_id(recipe, plain, mixture.restrict(plain.names), 1)
    assert evaluated_domains(recipe, held) == ("books", "code", "qa")
    only = build_recipe({"preset": "tiny-test", "eval": {"domains": ["code"]}})
    assert evaluated_domains(only, held) == ("code", "qa")  # evaluation-only domains are always evaluated
    with pytest.raises(DataError, match=r"eval.domains names \['news'\]"):
        evaluated_domains(build_recipe({"preset": "tiny-test", "eval": {"domains": ["news"]}}), held)


# ---- sources per prefix -------------------------------------------------------------------------------------
def sourced_registry() -> DomainRegistry:
    """qa with two valid prefixes whose documents name their sources (run-length, in document order)."""
    from regmix_megatron.data.manifest import SourceCount

    first = PrefixInfo("/data/qa/valid_0", 5, 5, 900,
                       sources=(SourceCount("faq", 2, 200), SourceCount("quips", 3, 700)),
                       source_runs=(("quips", 2), ("faq", 1), ("quips", 1), ("faq", 1)))
    second = PrefixInfo("/data/qa/valid_1", 2, 2, 50, sources=(SourceCount("faq", 2, 50),),
                        source_runs=(("faq", 2),))
    qa = Domain(name="qa", splits={"train": (PrefixInfo("/data/qa/train", 1, 1, 10),), "valid": (first, second)},
                evaluation_only=True)
    base = make_registry({"books": 100, "code": 200})
    return DomainRegistry(domains=(*base.domains, qa), tokenizer=base.tokenizer)


def test_sources_round_trip_and_give_each_documents_source_in_order(tmp_path):
    reg = sourced_registry()
    reg.save(tmp_path / "domains.json")
    back = DomainRegistry.load(tmp_path / "domains.json")
    qa = back.get("qa")
    assert qa.document_sources("valid") == ["quips", "quips", "faq", "quips", "faq", "faq", "faq"]
    assert len(qa.document_sources("valid")) == qa.num_documents("valid")
    totals = qa.sources("valid")
    assert {n: (c.num_documents, c.num_tokens) for n, c in totals.items()} == {"faq": (4, 250), "quips": (3, 700)}
    assert sum(c.num_tokens for c in totals.values()) == qa.num_tokens("valid")
    assert qa.sources("train") is None and qa.document_sources("train") is None  # no records: unknown
    assert back.get("code").sources("valid") is None and back.get("code").document_sources("train") is None
    assert back.with_evaluation_only(["qa"]).get("qa").document_sources("valid") == qa.document_sources("valid")


def test_a_manifest_without_sources_loads_with_sources_unknown(tmp_path):
    import json

    make_registry({"books": 100, "code": 200}).save(tmp_path / "domains.json")
    obj = json.loads((tmp_path / "domains.json").read_text())
    assert all("sources" not in p for d in obj["domains"] for plist in d["splits"].values() for p in plist)
    back = DomainRegistry.load(tmp_path / "domains.json")
    assert back.get("books").sources() is None and back.get("books").document_sources() is None


def test_source_records_that_do_not_add_up_are_refused_naming_the_prefix(tmp_path):
    import json

    sourced_registry().save(tmp_path / "domains.json")
    obj = json.loads((tmp_path / "domains.json").read_text())
    qa = next(d for d in obj["domains"] if d["name"] == "qa")
    qa["splits"]["valid"][0]["source_runs"] = [["quips", 2], ["faq", 1]]  # 3 of 5 documents
    (tmp_path / "bad.json").write_text(json.dumps(obj))
    with pytest.raises(DataError, match=r"qa'? valid prefix .*valid_0.*source_runs cover 3 documents.*--overwrite"):
        DomainRegistry.load(tmp_path / "bad.json")
    qa["splits"]["valid"][0]["source_runs"] = None
    qa["splits"]["valid"][0]["sources"]["faq"]["num_tokens"] = 1
    (tmp_path / "bad.json").write_text(json.dumps(obj))
    with pytest.raises(DataError, match=r"sources count 5 documents and 701 tokens, the prefix 5 and 900"):
        DomainRegistry.load(tmp_path / "bad.json")

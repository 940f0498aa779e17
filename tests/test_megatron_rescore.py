"""``regmix-megatron evaluate RUN_DIR`` (``megatron/rescore.py``): a finished run scored again on more tokens,
the whole split, and on a ``domains.json`` whose evaluation-only domains were rebuilt; refused when the new data
is not what the run trained on."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from helpers.training import domains_json_of, tiny_config
from regmix_megatron.errors import DataError
from regmix_megatron.manifest import DomainRegistry

pytestmark = [pytest.mark.filterwarnings("ignore"), pytest.mark.slow]


def copy_registry(source: Path, dest: Path, edit=None) -> Path:
    """``source`` (a domains.json) written to ``dest`` with absolute paths (the same .bin/.idx files), after
    ``edit(obj)``."""
    obj = json.loads(source.read_text())
    base = source.parent
    for key in ("model",):
        obj["tokenizer"][key] = str((base / obj["tokenizer"][key]).resolve())
    obj["tokenizer"]["megatron"]["tokenizer_model"] = obj["tokenizer"]["model"]
    for d in obj["domains"]:
        for prefixes in d["splits"].values():
            for p in prefixes:
                p["prefix"] = str((base / p["prefix"]).resolve())
    if edit is not None:
        edit(obj)
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(json.dumps(obj, indent=1))
    return dest


def domain(obj: dict, name: str) -> dict:
    return next(d for d in obj["domains"] if d["name"] == name)


def qa_valid_rebuilt(obj: dict) -> None:
    """qa (evaluation-only) with another valid split: here the documents of its train split."""
    qa = domain(obj, "qa")
    qa["splits"]["valid"] = qa["splits"]["train"]


@pytest.fixture(scope="module")
def run(indexed_fixture, tmp_path_factory):
    """A finished tiny run (final checkpoint saved) on a copy of the fixture's domains.json."""
    from regmix_megatron.megatron.train import run_training
    from regmix_megatron.run_config import build_run_config

    root = tmp_path_factory.mktemp("rescore")
    own = copy_registry(domains_json_of(indexed_fixture), root / "data" / "domains.json")
    out = root / "run"
    result = run_training(build_run_config(tiny_config(own, out, optim={"train_steps": 6},
                                                       eval={"eval_interval": 6}, checkpoint={"interval": 0})))
    assert result["status"] == "completed"
    return out, result, own


def test_the_whole_split_or_n_tokens_of_one_domain(run, capsys):
    from regmix_megatron.cli import main
    from regmix_megatron.document_losses import DocumentLosses

    out, result, own = run
    qa = DomainRegistry.load(own).get("qa")
    assert main(["evaluate", str(out), "--split", "train", "--domains", "qa", "--num-tokens", "all"]) == 0
    doc = json.loads((out / "evaluations" / "train.json").read_text())
    docs = DocumentLosses.from_json_obj(doc["documents"]["qa"], "qa")
    assert doc["num_tokens"] == {"qa": qa.num_tokens("train") - 1} and doc["num_tokens_asked"] == {"qa": "all"}
    assert len(docs.num_tokens) == qa.num_documents("train") == doc["num_documents"]["qa"]
    assert docs.total_tokens == doc["num_tokens"]["qa"] and docs.mean_loss == pytest.approx(doc["loss"]["qa"], rel=1e-6)
    assert f"{qa.num_documents('train')} documents" in capsys.readouterr().out
    assert main(["evaluate", str(out), "--split", "train", "--domains", "qa", "--num-tokens", "4096"]) == 0
    first = json.loads((out / "evaluations" / "train.json").read_text())
    part = DocumentLosses.from_json_obj(first["documents"]["qa"], "qa")
    assert part.total_tokens == 4096 and len(part.num_tokens) < len(docs.num_tokens)
    # the first 4096 tokens are the same tokens, scored by the same model: whole documents agree exactly
    whole = part.num_tokens == docs.num_tokens[:len(part.num_tokens)]
    assert whole[:-1].all() and (part.loss_sum[whole] == docs.loss_sum[:len(part.num_tokens)][whole]).all()
    assert main(["evaluate", str(out), "--num-tokens", "0"]) == 2
    assert "--num-tokens 0: use a positive number of tokens, or 'all'" in capsys.readouterr().err


def test_a_rebuilt_evaluation_only_domain_is_scored_without_retraining(run, tmp_path):
    from regmix_megatron.megatron.rescore import score_run

    out, result, own = run
    new = copy_registry(own, tmp_path / "new" / "domains.json", qa_valid_rebuilt)
    doc = score_run(out, split="valid", domains=["qa", "code"], domains_json=new)
    assert doc["domains_json"] == str(new.resolve()) and doc["run_id"] == result["run_id"]
    assert doc["loss"]["code"] == result["val_loss"]["code"]  # a training domain: as before
    assert doc["loss"]["qa"] != result["val_loss"]["qa"]  # qa's new valid split: other documents
    whole = score_run(out, split="valid", domains=["qa"], domains_json=new, num_tokens_per_domain="all")
    qa = DomainRegistry.load(new).get("qa")
    assert whole["num_documents"]["qa"] == qa.num_documents("valid") == DomainRegistry.load(own).get(
        "qa").num_documents("train")


@pytest.mark.parametrize("edit, why", [
    (lambda obj: domain(obj, "code")["splits"].update(train=domain(obj, "code")["splits"]["valid"]),
     "training domain 'code' has other documents or token counts"),
    (lambda obj: obj["tokenizer"].update(sha256="0" * 64), "the tokenizer differs"),
    (lambda obj: domain(obj, "code").update(evaluation_only=True), "the training domains differ"),
])
def test_a_domains_json_with_other_training_data_is_refused(run, tmp_path, edit, why):
    from regmix_megatron.megatron.rescore import score_run

    out, _, own = run
    new = copy_registry(own, tmp_path / "new" / "domains.json", edit)
    with pytest.raises(DataError, match=f"--domains-json .*not the data run .* trained on: .*{why}.*Only "
                                        "evaluation-only domains may change"):
        score_run(out, split="valid", domains=["qa"], domains_json=new)


def test_rebuilt_in_place_the_result_json_tells_what_the_run_trained_on(run, tmp_path):
    """The run's own domains.json rewritten with a rebuilt qa: scoring as before is refused (the run id no longer
    matches), with --domains-json accepted through the data identity result.json records; without that record
    (runs from before it) it is refused, naming why."""
    import shutil

    from regmix_megatron.megatron.rescore import score_run

    out, result, own = run
    moved = tmp_path / "run"
    shutil.copytree(out, moved)
    config = moved / "config.yaml"
    config.write_text(config.read_text().replace("domains: ../data/domains.json", f"domains: {tmp_path}/domains.json"))
    rebuilt = copy_registry(own, tmp_path / "domains.json", qa_valid_rebuilt)
    with pytest.raises(DataError, match="that domains.json changed since training.*--domains-json"):
        score_run(moved, split="valid", domains=["qa"])
    doc = score_run(moved, split="valid", domains=["qa"], domains_json=rebuilt, num_tokens_per_domain="all")
    assert doc["run_id"] == result["run_id"]
    assert doc["num_documents"]["qa"] == DomainRegistry.load(rebuilt).get("qa").num_documents("valid")
    record = json.loads((moved / "result.json").read_text())
    del record["data_identity"]
    (moved / "result.json").write_text(json.dumps(record))
    with pytest.raises(DataError, match="cannot tell what data run .* trained on.*records no data_identity"):
        score_run(moved, split="valid", domains=["qa"], domains_json=rebuilt)

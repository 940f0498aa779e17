"""The pipeline's stages (regmix_megatron/pipeline/stages.py), run for real on the corpus fixture."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
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


def test_the_corpus_stage_builds_held_out_domains_for_evaluation_and_adds_extra_domains(tmp_path):
    from helpers.corpus_sources import assert_prefixes_stratified, populate_offline_cache

    from regmix_megatron.data.corpus import writer
    from regmix_megatron.pipeline import run_pipeline

    populate_offline_cache(tmp_path / "cache")  # legal and changelogs, no network
    texts = tmp_path / "my_texts"
    texts.mkdir()
    for domain in ("speeches", "literature"):
        lines = (FIXTURE_CORPUS / domain / "train.jsonl").read_text().splitlines()
        (texts / f"{domain}.txt").write_text("\n\n".join(json.loads(line)["text"] for line in lines))
    data = {"output_dir": "out", "target": "mytexts",
            "corpus": {"source": "build", "cache_dir": "cache", "domains": ["legal", "changelogs"],
                       "max_mb_per_domain": 0.2, "extra_domains": {"mytexts": {"path": "my_texts", "eval_only": True}}}}
    cfg = load_pipeline_config(_write(tmp_path, data))
    assert [r.status for r in run_pipeline(cfg, until="corpus")] == ["done"]
    values = read_record(tmp_path / "out", "corpus")["outputs"]["values"]
    assert values["domains"] == ["changelogs", "legal", "mytexts"] and values["eval_only"] == ["mytexts"]
    corpus = tmp_path / "cache" / "corpus"
    entry = writer.read_manifest(corpus)["domains"]["mytexts"]
    assert entry["evaluation_only"] and entry["num_bytes"] <= 200_000  # the cap holds for the extra domain too
    valid = list(writer.iter_documents(corpus / "mytexts" / "valid.jsonl"))
    assert {d.source for d in valid} == {"speeches.txt", "literature.txt"}
    assert_prefixes_stratified([d.source for d in valid])
    assert "evaluation_only" not in writer.read_manifest(corpus)["domains"]["legal"]
    assert [r.status for r in run_pipeline(cfg, until="corpus")] == ["skipped"]
    (texts / "speeches.txt").write_text((texts / "speeches.txt").read_text() + "\n\nA new closing paragraph. " * 20)
    assert [r.status for r in run_pipeline(cfg, until="corpus")] == ["done"]  # an input changed


def _evaluate_context(tmp_path, with_documents: bool):
    """A StageContext for the evaluate stage on constructed upstream outputs: a domains.json whose target domain
    ``web`` records its 40 test documents' sources, a linear fit of a constructed sweep, the search's predictions
    of RegMix and natural only, and target runs (helpers.evaluation) whose run directories hold per-document losses
    where the documents disagree (RegMix better on the FAQ, worse on the chats)."""
    from helpers.evaluation import DOCUMENTS_DISAGREE, document_losses, document_profiles, runs
    from helpers.regression import DOMAINS, results_table
    from regmix_megatron.data.manifest import Domain, DomainRegistry, PrefixInfo, SourceCount, TokenizerInfo
    from regmix_megatron.fileio import atomic_write_json
    from regmix_megatron.pipeline.framework import Progress, StageContext
    from regmix_megatron.regression.data import load_results_table
    from regmix_megatron.regression.fitting import fit_models, resolve_targets, write_outputs

    out = tmp_path / "out"
    test = PrefixInfo(str(tmp_path / "web_test"), 40, 40, 4000, sources=(SourceCount("chat", 20, 2000),
                      SourceCount("faq", 20, 2000)), source_runs=(("faq", 20), ("chat", 20)))
    plain = lambda d: PrefixInfo(str(tmp_path / d), 10, 10, 1000)  # noqa: E731
    registry = DomainRegistry(domains=tuple(Domain(d, {"train": (plain(d),), "test": (test if d == "web" else
                              plain(d),)}) for d in DOMAINS),
                              tokenizer=TokenizerInfo("sentencepiece", str(tmp_path / "spm.model"), "0" * 64, 1000, 2))
    manifest = registry.save(tmp_path / "domains.json")
    table = load_results_table(results_table(tmp_path / "results", n=40)[0])
    (saved,) = write_outputs(fit_models(table, resolve_targets(table, None, ["web"]), ["linear"], cv_folds=3),
                             tmp_path / "fit")
    mixtures = {"regmix": {"code": 0.1, "news": 0.2, "web": 0.6, "wiki": 0.1},
                "natural": {"code": 0.25, "news": 0.25, "web": 0.25, "wiki": 0.25},
                "uniform": {"code": 0.4, "news": 0.4, "web": 0.1, "wiki": 0.1},
                "best_domain": {"code": 0.0, "news": 0.0, "web": 1.0, "wiki": 0.0}}
    spec = {lab: (mixtures[lab], losses, proxy) for lab, (_, losses, proxy) in DOCUMENTS_DISAGREE.items()}
    spec["best_domain"] = (mixtures["best_domain"], [5.4], 6.3)
    docs = document_losses(spec, {**document_profiles(), "best_domain": document_profiles()["natural"]},
                           domain="web")
    target_runs = runs(spec, domain="web")
    for lab, run in target_runs.items():
        for seed, rec in run["target"].items():
            rec["run_dir"] = f"targets/target-scale/{lab}-{seed}"
            if with_documents and lab != "best_domain":  # best_domain: a run from before document losses
                atomic_write_json(out / rec["run_dir"] / "document_losses.json",
                                  docs[lab][int(seed) - 1].to_json_obj())
    runs_json = atomic_write_json(out / "targets" / "runs.json", {"runs": target_runs})
    values = {"regressor": "linear", "regressor_reason": "constructed", "cv": {}, "noise": {}, "target": saved.name}
    records = {"indexed": {"outputs": {"files": {"domains": str(manifest)}, "values": {}}},
               "fit": {"outputs": {"files": {"metrics": str(tmp_path / "fit" / "metrics.json")}, "values": values}},
               "search": {"outputs": {"files": {}, "values": {"predicted": {"regmix": 5.05, "natural": 5.06},
                                                               "predicted_sd": {"regmix": None, "natural": None}}}},
               "confirm": {"outputs": {"files": {}, "values": {}}},  # the round skipped: no confirmation
               "targets": {"outputs": {"files": {"runs": str(runs_json)}, "values": {}}}}
    cfg = _fixture_config(tmp_path)
    cfg.target = "web"
    return StageContext(config=cfg, out=out, records=records, progress=Progress(), stage="evaluate"), mixtures


@pytest.mark.parametrize("with_documents", [True, False])
def test_the_evaluate_stage_judges_with_the_documents_breaks_down_by_source_and_predicts_every_mixture(
        tmp_path, with_documents):
    from regmix_megatron.full_scale.evaluation import read_evaluation
    from regmix_megatron.pipeline.stages import run_evaluate
    from regmix_megatron.regression.fitting import find_model
    from regmix_megatron.regression.models import load_regressor

    ctx, mixtures = _evaluate_context(tmp_path, with_documents)
    output = run_evaluate(ctx)
    evaluation = read_evaluation(output.files["evaluation"])
    natural = evaluation.comparison.baselines["natural"]
    best = evaluation.comparison.baselines["best_domain"]
    assert best.noise.document_sd is None  # its run has no per-document losses: the seeds alone
    if with_documents:  # seed noise 0.001, documents disagree: the 0.02 "win" is within noise
        assert natural.verdict == "within noise" and natural.noise.dominant == "documents"
        assert natural.noise.document_sd > 10 * natural.noise.seed_sd
        by = {lab: m.test_loss_by_source["web"] for lab, m in evaluation.mixtures.items() if lab != "best_domain"}
        assert by["regmix"]["faq"] < by["natural"]["faq"] and by["regmix"]["chat"] > by["natural"]["chat"]
        assert evaluation.documents.domains["web"].sources["faq"].num_documents == 20
    else:  # runs from before document losses: evaluated as before, the verdict says so
        assert natural.verdict == "better" and natural.noise.document_sd is None
        assert "documents not measured" in natural.parts_text
        assert all(not m.test_loss_by_source for m in evaluation.mixtures.values())
    model = load_regressor(find_model(tmp_path / "fit", "linear", ctx.value("fit", "target")))
    m = evaluation.mixtures
    assert (m["regmix"].predicted_loss, m["natural"].predicted_loss) == (5.05, 5.06)  # the search's
    for lab in ("uniform", "best_domain"):  # compared, never predicted by the search: the same model's
        want = float(model.predict(np.array([[mixtures[lab][d] for d in model.domains]]))[0])
        assert m[lab].predicted_loss == pytest.approx(want, rel=1e-12)

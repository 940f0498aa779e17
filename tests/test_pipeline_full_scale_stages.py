"""The pipeline's full-scale stages (regmix_megatron/pipeline/full_scale_stages.py: full_scale, evaluate,
report); the evaluate stage on constructed upstream outputs."""

from __future__ import annotations

import numpy as np
import pytest

from regmix_megatron.pipeline.config import load_pipeline_config
from regmix_megatron.regression.target import Target
from helpers.pipeline_configs import FIXTURE_CONFIG


def _evaluate_context(tmp_path, with_documents: bool):
    """A StageContext for the evaluate stage on constructed upstream outputs: a domains.json whose target domain
    ``web`` records its 40 test documents' sources, a constructed sweep and its linear fit, the search's predictions
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
    results = results_table(tmp_path / "results", n=40)[0]
    table = load_results_table(results)
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
            rec["run_dir"] = f"full_scale/target-scale/{lab}-{seed}"
            if with_documents and lab != "best_domain":  # best_domain: a run from before document losses
                atomic_write_json(out / rec["run_dir"] / "document_losses.json",
                                  docs[lab][int(seed) - 1].to_json_obj())
    runs_json = atomic_write_json(out / "full_scale" / "runs.json", {"runs": target_runs})
    values = {"regressor": "linear", "regressor_reason": "constructed", "cv": {}, "noise": {}, "target": saved.name}
    records = {"indexed": {"outputs": {"files": {"domains": str(manifest)}, "values": {}}},
               "sweep": {"outputs": {"files": {"results": str(results)}, "values": {}}},
               "fit": {"outputs": {"files": {"metrics": str(tmp_path / "fit" / "metrics.json")}, "values": values}},
               "search": {"outputs": {"files": {}, "values": {"predicted": {"regmix": 5.05, "natural": 5.06},
                                                               "predicted_sd": {"regmix": None, "natural": None}}}},
               "confirm": {"outputs": {"files": {}, "values": {}}},  # the round skipped: no confirmation
               "full_scale": {"outputs": {"files": {"runs": str(runs_json)}, "values": {}}}}
    cfg = load_pipeline_config(FIXTURE_CONFIG, output_dir=str(out))
    cfg.target = Target.domain("web")
    return StageContext(config=cfg, out=out, records=records, progress=Progress(), stage="evaluate"), mixtures


@pytest.mark.parametrize("with_documents", [True, False])
def test_the_evaluate_stage_judges_with_the_documents_breaks_down_by_source_and_predicts_every_mixture(
        tmp_path, with_documents):
    from regmix_megatron.full_scale.evaluation import read_evaluation
    from regmix_megatron.pipeline.full_scale_stages import run_evaluate
    from regmix_megatron.regression.data import load_results_table
    from regmix_megatron.regression.fitting import find_model, fit_target, refit_sd
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
    # the linear model gives no sd: every mixture's is the spread of its bootstrap refits, and the file says so
    table = load_results_table(ctx.path("sweep", "results"))
    at = np.array([[mixtures[lab][d] for d in model.domains] for lab in m])
    want = refit_sd("linear", table, fit_target(table, None, ctx.config.target), at, seed=ctx.config.seed,
                    num_bootstrap=ctx.config.search.num_bootstrap)
    np.testing.assert_allclose([m[lab].predicted_sd for lab in m], want, rtol=1e-12)
    assert all(m[lab].predicted_sd > 0 for lab in m)
    assert evaluation.fit.uncertainty.startswith("linear: the spread of 10 refits on bootstrap resamples")

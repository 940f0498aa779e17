"""The eleven stages of ``regmix-megatron run`` in order, each a thin call into the module that owns the work.

corpus -> tokenizer -> indexed -> sample -> sweep -> fit -> search -> confirm -> full_scale -> evaluate -> report

The stages live by concern: ``data_stages.py`` (corpus, tokenizer, indexed), ``search_stages.py`` (sample, sweep,
fit, search), ``confirm.py`` (confirm, the confirmation round), ``full_scale_stages.py`` (full_scale,
evaluate, report); ``stage_helpers.py`` holds what they share.
Every stage writes under ``OUT/<stage>/`` (the corpus may live in a shared cache outside OUT). The inputs a stage
declares are the config fields that change its output; settings that only change speed (workers, parallelism)
are left out, so changing them does not redo work.
"""

from __future__ import annotations

from .data_stages import (_estimate_corpus, _estimate_indexed, _estimate_tokenizer, corpus_inputs, run_corpus,
                          run_indexed, run_tokenizer, tokenizer_inputs, verify_indexed)
from .confirm import confirm_inputs, estimate_confirm_s, run_confirm
from .framework import Stage
from .full_scale_stages import (_estimate_full_scale, evaluate_inputs, run_evaluate, run_report, run_full_scale,
                                full_scale_inputs)
from .search_stages import (_estimate_search, _estimate_sweep, fit_inputs, proxy_inputs, run_fit, run_sample,
                            run_search_stage, run_sweep, sample_inputs, search_inputs)
from .stage_helpers import STAGE_NAMES, estimate_run_s, run_batch, verify_complete

__all__ = ["build_stages", "STAGE_NAMES"]


def build_stages() -> list[Stage]:
    """The pipeline's stages in order."""
    return [
        Stage("corpus", corpus_inputs, run_corpus, (), _estimate_corpus,
              "per-domain JSONL (built, or an existing directory)"),
        Stage("tokenizer", tokenizer_inputs, run_tokenizer, ("corpus",), _estimate_tokenizer,
              "SentencePiece BPE trained on a domain-balanced sample (or an existing model)"),
        Stage("indexed", lambda cfg: {"eval_only": sorted(cfg.corpus.eval_only)}, run_indexed,
              ("corpus", "tokenizer"), _estimate_indexed,
              "Megatron .bin/.idx per domain and split, and domains.json", verify=verify_indexed),
        Stage("sample", sample_inputs, run_sample, ("indexed",), lambda cfg: 2.0,
              "the sweep's mixtures (RegMix sampler with token/epoch caps)"),
        Stage("sweep", proxy_inputs, run_sweep, ("indexed", "sample"), _estimate_sweep,
              "one proxy run per mixture; results table"),
        Stage("fit", fit_inputs, run_fit, ("sweep",), lambda cfg: 5.0 + cfg.search.num_folds,
              "LightGBM, linear and quadratic regressors and their ensemble, k-fold CV grouped by mixture",
              verify=lambda files: verify_complete(files, "metrics")),
        Stage("search", search_inputs, run_search_stage, ("indexed", "fit"), _estimate_search,
              "simulate a pool of capped candidates, average the predicted top-k; Megatron export",
              verify=lambda files: verify_complete(files, "search")),
        Stage("confirm", confirm_inputs, lambda ctx: run_confirm(ctx, run_batch), ("indexed", "sweep", "search"),
              lambda cfg: estimate_confirm_s(cfg, estimate_run_s(cfg, "proxy")),
              "the pick, top-1 and the best measured sweep mixtures at proxy scale with several seeds; the measured "
              "best within noise goes on"),
        Stage("full_scale", full_scale_inputs, run_full_scale, ("indexed", "sweep", "search", "confirm"),
              _estimate_full_scale, "RegMix (as confirmed) + baselines (+ sweep mixtures) at target scale, and at "
              "proxy scale"),
        Stage("evaluate", evaluate_inputs, run_evaluate, ("indexed", "fit", "search", "confirm", "full_scale"),
              lambda cfg: 1.0, "target comparison and rank invariance -> evaluation.json"),
        Stage("report", lambda cfg: {}, run_report, STAGE_NAMES[:-1], lambda cfg: 5.0,
              "one HTML report with the pipeline view and the regression plots"),
    ]

"""The ten stages of ``regmix-megatron run``, each a thin call into the module that owns the work.

corpus -> tokenizer -> indexed -> sample -> sweep -> fit -> search -> targets -> evaluate -> report

Every stage writes under ``OUT/<stage>/`` (the corpus may live in a shared cache outside OUT). The inputs a stage
declares are the config fields that change its output; settings that only change speed (workers, parallelism)
are left out, so changing them does not redo work.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any

from ..errors import DataError, RegmixError
from ..fileio import sha256_file
from ..hashing import content_hash
from ..manifest import SPLITS
from .config import PipelineConfig, section_recipe, slurm_options
from .framework import Stage, StageContext, StageOutput, fingerprint_paths

log = logging.getLogger(__name__)


# ---- helpers --------------------------------------------------------------------------------------------
def _stat_fingerprint(root: Path) -> str:
    """Cheap fingerprint of a directory tree (relative names, sizes, modification times)."""
    rows = []
    for p in sorted(root.rglob("*")):
        if p.is_file() and not p.name.startswith(".tmp-"):
            st = p.stat()
            rows.append((str(p.relative_to(root)), st.st_size, st.st_mtime_ns))
    return content_hash(rows, length=None)


def corpus_domains(corpus_dir: Path, wanted: list[str] | None) -> list[str]:
    """Domains present in a corpus directory (those with a train.jsonl), filtered and checked."""
    present = sorted(p.name for p in corpus_dir.iterdir() if (p / "train.jsonl").is_file()) \
        if corpus_dir.is_dir() else []
    if not present:
        raise DataError(f"{corpus_dir}: no <domain>/train.jsonl found; corpus.source must point at a corpus "
                        "directory laid out as <domain>/{train,valid,test}.jsonl")
    if wanted is None:
        return present
    missing = sorted(set(wanted) - set(present))
    if missing:
        raise DataError(f"corpus.domains lists {missing}, which {corpus_dir} does not have; available: {present}")
    return sorted(wanted)


def _clear(path: Path, out: Path) -> None:
    """Remove a stage's own output directory (only ever inside OUT) before it is rebuilt."""
    path = path.resolve()
    if out.resolve() not in path.parents:
        raise RegmixError(f"refusing to delete {path}: not inside the output directory {out}")
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()


# ---- corpus ---------------------------------------------------------------------------------------------
def corpus_inputs(cfg: PipelineConfig) -> dict:
    c = cfg.corpus
    if c.source == "build":
        return {"source": "build", "domains": c.domains, "max_mb_per_domain": c.max_mb_per_domain,
                "cache_dir": c.cache_dir}
    return {"source": c.source, "domains": c.domains, "content": _stat_fingerprint(Path(c.source))}


def run_corpus(ctx: StageContext) -> StageOutput:
    c = ctx.config.corpus
    if c.source == "build":
        from ..corpus.build import build_corpus, resolve_domains

        num_domains = len(resolve_domains(c.domains))
        done: list[str] = []

        def on_domain(name: str, entry: dict, reused: bool) -> None:
            done.append(name)
            ctx.progress.update(len(done) / num_domains, f"{name} {'reused' if reused else 'built'}")

        cache_dir = c.cache_dir if c.cache_dir is not None else ctx.out / "cache"
        corpus_dir = Path(build_corpus(cache_dir, domains=c.domains, max_mb_per_domain=c.max_mb_per_domain,
                                       on_domain=on_domain))
    else:
        corpus_dir = Path(c.source)
    domains = corpus_domains(corpus_dir, c.domains)
    ctx.config.parsed_target.check_domains(domains, where="target")
    num_bytes = sum((corpus_dir / d / f"{s}.jsonl").stat().st_size for d in domains for s in SPLITS
                    if (corpus_dir / d / f"{s}.jsonl").exists())
    fingerprint = content_hash({d: fingerprint_paths([corpus_dir / d]) for d in domains}, length=None)
    return StageOutput(files={"corpus_dir": str(corpus_dir)}, values={"domains": domains, "num_bytes": num_bytes},
                       summary=f"{len(domains)} domains, {num_bytes / 1e6:.1f} MB", fingerprint=fingerprint)


# ---- tokenizer ------------------------------------------------------------------------------------------
def tokenizer_inputs(cfg: PipelineConfig) -> dict:
    t = cfg.tokenizer
    if t.model is not None:
        return {"model": t.model, "sha256": sha256_file(t.model)}
    return {"vocab_size": t.vocab_size, "seed": cfg.seed}


def run_tokenizer(ctx: StageContext) -> StageOutput:
    from ..tokenizer import TokenizerTrainConfig, adopt_tokenizer, train_tokenizer

    cfg: PipelineConfig = ctx.config
    out_dir = ctx.out / "tokenizer"
    if cfg.tokenizer.model is not None:
        model = adopt_tokenizer(cfg.tokenizer.model, out_dir, overwrite=True)
    else:
        model = train_tokenizer(ctx.path("corpus", "corpus_dir"), out_dir,
                                TokenizerTrainConfig(vocab_size=cfg.tokenizer.vocab_size, seed=cfg.seed),
                                domains=ctx.value("corpus", "domains"), overwrite=True)
    return StageOutput(files={"model": str(model)}, fingerprint=sha256_file(model),
                       summary=f"{Path(model).name} (vocab {cfg.tokenizer.vocab_size})")


# ---- indexed datasets -----------------------------------------------------------------------------------
def run_indexed(ctx: StageContext) -> StageOutput:
    from ..manifest import DomainRegistry
    from ..preprocess import preprocess_corpus

    cfg: PipelineConfig = ctx.config
    out_dir = ctx.out / "data"
    _clear(out_dir, ctx.out)  # partial output of a killed run, or stale output of other inputs
    manifest = preprocess_corpus(ctx.path("corpus", "corpus_dir"), out_dir, ctx.path("tokenizer", "model"),
                                 workers=cfg.preprocess.workers, domains=ctx.value("corpus", "domains"))
    registry = DomainRegistry.load(manifest)
    tokens = {d.name: d.num_tokens("train") for d in registry.domains}
    fingerprint = fingerprint_paths([Path(manifest)] + sorted(Path(out_dir).rglob("*.idx")))
    return StageOutput(files={"domains": str(manifest)},
                       values={"train_tokens": tokens,
                               "valid_tokens": {d.name: d.num_tokens("valid") for d in registry.domains}},
                       fingerprint=fingerprint,
                       summary=f"{sum(tokens.values()) / 1e6:.2f}M train tokens in {len(tokens)} domains")


# ---- sample ---------------------------------------------------------------------------------------------
def _registry(ctx: StageContext):
    from ..manifest import DomainRegistry

    return DomainRegistry.load(ctx.path("indexed", "domains"))


def target_train_tokens(cfg: PipelineConfig) -> int:
    """Token budget of one target run (what the epoch caps of the sampler refer to)."""
    return section_recipe(cfg.targets, section_name="targets").num_train_tokens


def sample_inputs(cfg: PipelineConfig) -> dict:
    inputs = {"num_proxies": cfg.sample.num_proxies, "sampler": dict(cfg.sample.sampler), "seed": cfg.seed}
    if cfg.schedule_fractions is not None:  # only then: a static pipeline keeps its fingerprints
        inputs["schedule"] = list(cfg.schedule_fractions)
    if cfg.sample.sampler.get("max_epochs") is not None:  # only then do the caps depend on the target budget
        inputs["target_tokens"] = target_train_tokens(cfg)
    return inputs


def run_sample(ctx: StageContext) -> StageOutput:
    from ..mixture import Mixture, write_mixtures
    from ..sampling import SampleStats, sample_mixtures
    from .config import sampler_config

    cfg: PipelineConfig = ctx.config
    registry = _registry(ctx)
    tokens = registry.tokens_per_domain("train")
    scfg = sampler_config(cfg, tokens, target_tokens=target_train_tokens(cfg))
    if cfg.schedule_fractions is not None:
        from .schedules import run_sample_schedules

        return run_sample_schedules(ctx, scfg, registry)
    stats = SampleStats()
    weights = sample_mixtures(tokens, scfg, domains=registry.names, stats=stats)
    mixtures = [Mixture.from_array(registry.names, row) for row in weights]
    path = write_mixtures(ctx.out / "sample" / "mixtures.jsonl", mixtures)
    return StageOutput(files={"mixtures": str(path)},
                       values={"num_mixtures": len(mixtures), "num_projected": int(stats.num_projected)},
                       summary=f"{len(mixtures)} mixtures over {len(registry.names)} domains")


# ---- sweep ----------------------------------------------------------------------------------------------
def resolved_train_inputs(cfg: PipelineConfig, section) -> dict:
    """A section's fully resolved recipe (preset merged in; no paths): a change to a preset's content counts as
    a change of the stage's inputs, as it changes the sweep's run ids."""
    return section_recipe(section, section_name="sweep").to_dict()


def proxy_inputs(cfg: PipelineConfig) -> dict:
    return {"train": resolved_train_inputs(cfg, cfg.proxy), "seed": cfg.seed}


def run_batch(ctx: StageContext, root: Path, mixtures, section, *, label: str, fraction: tuple[float, float]
              = (0.0, 1.0), max_failed_fraction: float = 0.0):
    """Plan and launch a set of runs as a sweep in ``root``; return (sweep, run id -> result of finished runs).

    Finished runs are never repeated (the sweep skips them); a changed config starts a fresh sweep directory.
    Progress is reported as the share of finished runs, mapped into ``fraction`` of the current stage. Runs
    that failed for good are tolerated up to ``max_failed_fraction`` of the runs (they are reported).
    """
    from ..sweep import plan as sweep_plan
    from ..sweep import state as sweep_state

    cfg: PipelineConfig = ctx.config
    recipe = section_recipe(section, section_name="sweep")
    domains = ctx.path("indexed", "domains")
    try:
        sweep, _ = sweep_plan.plan_sweep(root, mixtures, recipe, domains, cfg.seed)
    except sweep_plan.SweepError as exc:
        log.warning("%s: %s; its inputs changed, so it is planned afresh", root, exc)
        _clear(root, ctx.out)
        sweep, _ = sweep_plan.plan_sweep(root, mixtures, recipe, domains, cfg.seed)
    launch_sweep(ctx, sweep, label=label, fraction=fraction)
    states = sweep_state.read_sweep_state(sweep)
    failed = {rid: s for rid, s in states.items() if s.status != sweep_state.DONE}
    for rid, s in failed.items():
        log.warning("%s: run %s %s: %s (log %s)", label, rid, s.status, s.reason, s.log_path)
    if len(failed) > max_failed_fraction * len(states):
        lines = "; ".join(f"{rid}: {s.status} {s.reason} (log {s.log_path})" for rid, s in failed.items())
        raise RegmixError(f"{label}: {len(failed)} of {len(states)} runs did not finish: {lines}. Fix the cause "
                          f"and run again (finished runs are kept), or raise executor.max_retries")
    return sweep, {rid: s.result for rid, s in states.items() if s.status == sweep_state.DONE}


def launch_sweep(ctx: StageContext, sweep, *, label: str, fraction: tuple[float, float]) -> None:
    """Execute the pending runs of ``sweep`` with the configured executor (``sweep.launch``), reporting the
    share of finished runs as progress into ``fraction`` of the stage."""
    from ..sweep import state as sweep_state
    from ..sweep.launch import launch

    cfg: PipelineConfig = ctx.config
    ex = cfg.executor
    total = max(len(sweep.runs), 1)
    lo, hi = fraction

    def report(states, ended) -> None:
        done = sweep_state.count_statuses(states.values())[sweep_state.DONE]
        ctx.progress.update(lo + (hi - lo) * done / total, f"{label}: {done}/{total} runs done")

    if ex.kind == "local":
        from ..sweep.local import LocalOptions, num_cores

        threads = max(1, num_cores() // ex.num_parallel)
        options = LocalOptions(parallel=ex.num_parallel, threads_per_run=threads, max_attempts=ex.max_retries + 1,
                               reuse_process=ex.reuse_process)
    else:
        options = slurm_options(cfg)
    launch(sweep, options, on_progress=report)


def run_sweep(ctx: StageContext) -> StageOutput:
    from ..sweep.collect import collect
    from .schedules import read_trained

    cfg: PipelineConfig = ctx.config
    mixtures = read_trained(ctx.path("sample", "mixtures"))  # mixtures, or schedules
    root = ctx.out / "sweep"
    sweep, results = run_batch(ctx, root, mixtures, cfg.proxy, label="sweep", max_failed_fraction=0.1)
    collected = collect(sweep)
    table = Path(collected.csv_path)
    failed = [e.run_id for e in collected.excluded]
    return StageOutput(files={"sweep_dir": str(root), "results": str(table)},
                       values={"num_runs": len(results), "failed_runs": failed},
                       fingerprint=fingerprint_paths([table]),
                       summary=f"{len(results)} proxy runs" + (f" ({len(failed)} failed)" if failed else ""))


# ---- fit ------------------------------------------------------------------------------------------------
def fit_inputs(cfg: PipelineConfig) -> dict:
    return {"target": cfg.parsed_target.to_json(), "num_folds": cfg.search.num_folds, "seed": cfg.seed}


def run_fit(ctx: StageContext) -> StageOutput:
    from ..regression.data import load_results_table
    from ..regression.fitting import fit_models, fit_target, write_outputs

    cfg: PipelineConfig = ctx.config
    table = load_results_table(ctx.path("sweep", "results"))
    target = fit_target(table, None, cfg.parsed_target)
    folds = min(cfg.search.num_folds, table.num_runs)
    outcome = fit_models(table, [target], kinds=("lightgbm", "linear"), cv_folds=folds, seed=cfg.seed)
    out_dir = ctx.out / "fit"
    files = {"metrics": str(out_dir / "metrics.json"), "predictions": str(out_dir / "predictions.csv")}
    for model in write_outputs(outcome, out_dir):  # one target: one model per regressor
        files[f"model_{model.regressor}"] = str(out_dir / model.path)
    regs = outcome.summary["regressors"]
    rho = {k: regs[k].get("spearman") for k in regs}
    fmt = lambda x: "n/a" if x is None else f"{x:.3f}"  # noqa: E731
    return StageOutput(files=files, values={"target": target.name, "cv_spearman": rho},
                       summary=f"CV Spearman lightgbm {fmt(rho.get('lightgbm'))}, linear {fmt(rho.get('linear'))}")


# ---- search ---------------------------------------------------------------------------------------------
def search_inputs(cfg: PipelineConfig) -> dict:
    return {"regressor": cfg.search.regressor, "pool_size": cfg.search.pool_size, "top_k": cfg.search.top_k,
            "sample": sample_inputs(cfg), "target": cfg.parsed_target.to_json()}


def run_search_stage(ctx: StageContext) -> StageOutput:
    from ..mixture import Mixture
    from ..regression.fitting import find_model
    from ..regression.models import load_regressor
    from ..search import SearchConfig
    from ..search_files import search_and_write
    from .config import sampler_config

    cfg: PipelineConfig = ctx.config
    registry = _registry(ctx)
    names = list(registry.names)
    tokens = registry.tokens_per_domain("train")
    model_path = find_model(ctx.path("fit", "metrics").parent, cfg.search.regressor, ctx.value("fit", "target"))
    if cfg.schedule_fractions is not None:  # the model's features are the schedule features
        from ..schedule import feature_names

        names = feature_names(names, len(cfg.schedule_fractions))
    model = load_regressor(model_path, domains=names, source=str(ctx.path("indexed", "domains")))
    search_cfg = SearchConfig(num_candidates=cfg.search.pool_size, top_k=cfg.search.top_k,
                              chunk_size=min(100_000, cfg.search.pool_size), seed=cfg.seed)
    if cfg.schedule_fractions is not None:
        from .schedules import run_search_schedules

        return run_search_schedules(ctx, model, registry, sampler_config(cfg, tokens, target_train_tokens(cfg)),
                                    search_cfg)
    out_dir = ctx.out / "search"
    doc = search_and_write(model, tokens, sampler_config(cfg, tokens, target_train_tokens(cfg)), search_cfg, out_dir,
                           registry=registry, prior=Mixture.from_array(names, registry.prior("train")),
                           export_dir="export", target=cfg.parsed_target,
                           progress=lambda done, total: ctx.progress.update(done / total,
                                                                            f"{done:,}/{total:,} candidates"))
    result = doc["result"]
    predicted = {"regmix": result["predicted"], **{k: v["predicted"] for k, v in doc["baselines"].items()}}
    files = {"search": str(out_dir / "search.json"), "top_k": doc["files"]["top_k"], **doc["files"]["megatron"]}
    best = sorted(result["weights"].items(), key=lambda kv: -kv[1])[:3]
    # timings differ run to run and file locations are not content: neither decides whether later stages redo
    stable = {k: v for k, v in doc.items() if k not in ("seconds", "files", "model")}
    return StageOutput(files=files, values={"predicted": predicted, "weights": result["weights"]},
                       fingerprint=content_hash(stable, length=None),
                       summary=f"predicted {result['predicted']:.4f}; top weights "
                               + ", ".join(f"{d} {w:.2f}" for d, w in best))


# ---- target runs ----------------------------------------------------------------------------------------
def targets_inputs(cfg: PipelineConfig) -> dict:
    t = cfg.targets
    return {"train": resolved_train_inputs(cfg, t), "baselines": list(t.baselines),
            "num_rank_mixtures": t.num_rank_mixtures, "proxy": proxy_inputs(cfg),
            "target": cfg.parsed_target.to_json(),
            "seed": cfg.seed}


def run_labeled(ctx: StageContext, root: Path, labeled: dict, section, *, label: str,
                fraction: tuple[float, float]) -> dict[str, dict]:
    """Train each labelled mixture (or schedule) once (identical ones share a run); return label -> run record."""
    unique: dict[str, Any] = {}
    for m in labeled.values():
        unique.setdefault(m.hash, m)
    sweep, results = run_batch(ctx, root, list(unique.values()), section, label=label, fraction=fraction)
    by_hash = {r.trained.hash: r.run_id for r in sweep.runs}
    return {lab: {"run_id": by_hash[m.hash], "run_dir": str(sweep.run_dir(by_hash[m.hash])),
                  "result": results[by_hash[m.hash]]} for lab, m in labeled.items()}


def run_targets(ctx: StageContext) -> StageOutput:
    from ..fileio import atomic_write_json
    from ..mixture import Mixture
    from ..regression.data import load_results_table
    from ..search import baseline_mixtures
    from ..sweep.state import read_run_state
    from .evaluation import spread_indices

    cfg: PipelineConfig = ctx.config
    registry = _registry(ctx)
    baselines = baseline_mixtures(registry, cfg.parsed_target)
    table = load_results_table(ctx.path("sweep", "results"))
    values = table.values_of(cfg.parsed_target)
    rows = spread_indices(values, cfg.targets.num_rank_mixtures)
    if cfg.schedule_fractions is not None:
        from .schedules import trained_by_label

        labeled = trained_by_label(ctx, {n: baselines[n] for n in cfg.targets.baselines},
                                   [table.run_ids[i] for i in rows])
    else:
        labeled = {"regmix": Mixture.load(ctx.path("search", "mixture"))}
        for name in cfg.targets.baselines:
            labeled[name] = baselines[name]
        for i in rows:
            labeled[f"sweep:{table.run_ids[i]}"] = Mixture.from_array(table.domains, table.weights[i])

    out_dir = ctx.out / "targets"
    own = {k: m for k, m in labeled.items() if not k.startswith("sweep:")}
    proxy = run_labeled(ctx, out_dir / "proxy-scale", own, cfg.proxy, label="proxy-scale runs",
                        fraction=(0.0, 0.15))
    sweep_dir = ctx.path("sweep", "sweep_dir")
    for lab in labeled:
        if lab.startswith("sweep:"):
            rid = lab.split(":", 1)[1]
            state = read_run_state(sweep_dir / "runs" / rid)
            proxy[lab] = {"run_id": rid, "run_dir": str(sweep_dir / "runs" / rid), "result": state.result}
    target = run_labeled(ctx, out_dir / "target-scale", labeled, cfg.targets, label="target runs",
                         fraction=(0.15, 1.0))
    runs = {lab: _labeled_run(m, proxy.get(lab), target[lab], out_dir / "mixtures" / f"{lab.replace(':', '-')}.json")
            for lab, m in labeled.items()}  # mixture files: for `regmix-megatron export` / train at scale
    path = atomic_write_json(out_dir / "runs.json", {"format": "regmix-megatron/target-runs/v1",
                                                     "target": cfg.parsed_target.to_json(), "runs": runs})
    return StageOutput(files={"runs": str(path)}, values={"labels": list(labeled)},
                       summary=f"{len(target)} target-scale runs ({', '.join(k for k in own)} + "
                               f"{len(labeled) - len(own)} sweep mixtures)")


def _labeled_run(trained, proxy: dict | None, target: dict, path: Path) -> dict:
    """A labelled run's record in ``runs.json``: its mixture (a schedule's overall token shares, plus the
    schedule), proxy and target runs, and the file it was saved to."""
    from ..schedule import Schedule

    if isinstance(trained, Schedule):
        return {"mixture": trained.overall().as_dict(), "mixture_hash": trained.hash,
                "schedule": trained.to_json_obj(), "proxy": proxy, "target": target,
                "mixture_file": str(trained.save(path))}
    return {"mixture": trained.as_dict(), "mixture_hash": trained.hash, "proxy": proxy, "target": target,
            "mixture_file": str(trained.save(path))}


# ---- evaluate -------------------------------------------------------------------------------------------
def run_evaluate(ctx: StageContext) -> StageOutput:
    from ..fileio import atomic_write_json, read_json
    from .evaluation import evaluate

    cfg: PipelineConfig = ctx.config
    runs = read_json(ctx.path("targets", "runs"))["runs"]
    predicted = ctx.value("search", "predicted")
    doc = evaluate(cfg.parsed_target,
                   {lab: r["target"]["result"] for lab, r in runs.items()},
                   {lab: r["proxy"]["result"] for lab, r in runs.items() if r.get("proxy")},
                   predicted=predicted)
    path = atomic_write_json(ctx.out / "evaluation.json", doc)
    comp, rank = doc["comparison"], doc["rank_invariance"]
    parts = [f"regmix {comp['regmix_target_loss']:.4f}"]
    parts += [f"{k} {v['target_loss']:.4f}" for k, v in comp["baselines"].items()]
    rho = rank["spearman"]
    parts.append(f"rank rho {'n/a' if rho is None else f'{rho:.2f}'} (n={rank['num_mixtures']})")
    return StageOutput(files={"evaluation": str(path)}, summary=", ".join(parts))


# ---- report ---------------------------------------------------------------------------------------------
def run_report(ctx: StageContext) -> StageOutput:
    from ..fileio import read_json
    from ..report.pipeline import numbers_for_log, write_pipeline_report

    cfg: PipelineConfig = ctx.config
    evaluation = read_json(ctx.path("evaluate", "evaluation"))
    records = [ctx.records[name] for name in STAGE_NAMES if name in ctx.records]
    png_dir = ctx.out / "report"
    path = write_pipeline_report(
        ctx.out / "report.html", png_dir, records=records, evaluation=evaluation,
        results_csv=ctx.path("sweep", "results"), fit_dir=ctx.path("fit", "metrics").parent,
        search_dir=ctx.path("search", "search").parent, fit_target=ctx.value("fit", "target"),
        target=cfg.parsed_target, target_runs=read_json(ctx.path("targets", "runs")))
    return StageOutput(files={"report": str(path), "figures": str(png_dir)}, summary=path.name,
                       values=numbers_for_log(evaluation))


# ---- estimates (seconds on 2 cores; they only weight the progress bar) -----------------------------------
def _estimate_corpus(cfg: PipelineConfig) -> float:
    return 90.0 if cfg.corpus.source == "build" else 1.0


def _estimate_tokenizer(cfg: PipelineConfig) -> float:
    return 1.0 if cfg.tokenizer.model else (15.0 if cfg.corpus.source == "build" else 3.0)


def _estimate_indexed(cfg: PipelineConfig) -> float:
    if cfg.corpus.source == "build":
        return 8 * cfg.corpus.max_mb_per_domain * 1.2 / cfg.preprocess.workers
    return 5.0


#: Achieved fp32 FLOP/s of one single-thread training process here (rough, from the notes; only for the ETA).
_FLOPS_PER_S = 2.5e10
#: Fixed cost of a run (process start, megatron import, dataset index building), seconds.
_RUN_OVERHEAD_S = 12.0


def estimate_run_s(cfg: PipelineConfig, section) -> float:
    """Rough seconds of one training run of ``section`` (6 x params x tokens at a fixed FLOP rate)."""
    recipe = section_recipe(section, section_name="estimate")
    m = recipe.model
    vocab = m.vocab_size or cfg.tokenizer.vocab_size
    params = m.num_layers * (4 * m.hidden_size ** 2 + 3 * m.hidden_size * m.ffn_hidden_size) + \
        2 * vocab * m.hidden_size
    return _RUN_OVERHEAD_S + 6.0 * params * recipe.num_train_tokens / _FLOPS_PER_S


def _estimate_sweep(cfg: PipelineConfig) -> float:
    return cfg.sample.num_proxies * estimate_run_s(cfg, cfg.proxy) / cfg.executor.num_parallel


def _estimate_search(cfg: PipelineConfig) -> float:
    return 2.0 + cfg.search.pool_size / 300_000.0


def _num_labels(cfg: PipelineConfig) -> int:
    return 1 + len(cfg.targets.baselines) + (cfg.schedule_fractions is not None)  # + regmix_static


def _estimate_targets(cfg: PipelineConfig) -> float:
    proxy = _num_labels(cfg) * estimate_run_s(cfg, cfg.proxy)
    target = (_num_labels(cfg) + cfg.targets.num_rank_mixtures) * estimate_run_s(cfg, cfg.targets)
    return (proxy + target) / cfg.executor.num_parallel


def build_stages() -> list[Stage]:
    """The pipeline's stages in order."""
    return [
        Stage("corpus", corpus_inputs, run_corpus, (), _estimate_corpus,
              "per-domain JSONL (built, or an existing directory)"),
        Stage("tokenizer", tokenizer_inputs, run_tokenizer, ("corpus",), _estimate_tokenizer,
              "SentencePiece BPE trained on a domain-balanced sample (or an existing model)"),
        Stage("indexed", lambda cfg: {}, run_indexed, ("corpus", "tokenizer"), _estimate_indexed,
              "Megatron .bin/.idx per domain and split, and domains.json"),
        Stage("sample", sample_inputs, run_sample, ("indexed",), lambda cfg: 2.0,
              "the sweep's mixtures (RegMix sampler with token/epoch caps)"),
        Stage("sweep", proxy_inputs, run_sweep, ("indexed", "sample"), _estimate_sweep,
              "one proxy run per mixture; results table"),
        Stage("fit", fit_inputs, run_fit, ("sweep",), lambda cfg: 5.0 + cfg.search.num_folds,
              "LightGBM and linear regressors, k-fold CV"),
        Stage("search", search_inputs, run_search_stage, ("indexed", "fit"), _estimate_search,
              "simulate a pool of capped candidates, average the predicted top-k; Megatron export"),
        Stage("targets", targets_inputs, run_targets, ("indexed", "sweep", "search"), _estimate_targets,
              "RegMix + baselines (+ sweep mixtures) at target scale, and at proxy scale"),
        Stage("evaluate", lambda cfg: {"target": cfg.parsed_target.to_json()}, run_evaluate, ("search", "targets"),
              lambda cfg: 1.0, "target comparison and rank invariance -> evaluation.json"),
        Stage("report", lambda cfg: {}, run_report, STAGE_NAMES[:-1], lambda cfg: 5.0,
              "one HTML report with the pipeline view and the regression plots"),
    ]


STAGE_NAMES = ("corpus", "tokenizer", "indexed", "sample", "sweep", "fit", "search", "targets", "evaluate",
               "report")

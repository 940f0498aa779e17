"""The mixture-search stages of ``regmix-megatron run``: sample -> sweep (the proxy runs) -> fit -> search (and
its Megatron export)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ..hashing import content_hash
from .config import PipelineConfig
from .framework import StageContext, StageOutput, fingerprint_paths
from .stage_helpers import (_registry, estimate_run_s, is_single_domain, resolved_train_inputs, run_batch,
                            target_train_tokens)

if TYPE_CHECKING:
    from typing import Any

    from ..regression.fitting import FitMetrics


def wants_single_domains(cfg: PipelineConfig) -> bool:
    """The best_domain baseline needs every single-domain mixture trained at proxy scale: they join the sweep."""
    return "best_domain" in cfg.full_scale.baselines and cfg.schedule_fractions is None


def sample_inputs(cfg: PipelineConfig) -> dict:
    inputs = {"num_proxies": cfg.sample.num_samples, "sampler": dict(cfg.sample.sampler_fields), "seed": cfg.seed,
              "single_domains": wants_single_domains(cfg)}
    if cfg.schedule_fractions is not None:  # only then: a static pipeline keeps its fingerprints
        inputs["schedule"] = list(cfg.schedule_fractions)
    if cfg.sample.sampler.max_epochs is not None:  # only then do the caps depend on the target budget
        inputs["target_tokens"] = target_train_tokens(cfg)
    return inputs


def single_domain_mixtures(names, lower=None, upper=None) -> list:
    """One mixture per training domain, all weight on it; with the sampler's bounds, only the corners within
    them (an epoch cap below 1 rules a domain's corner out)."""
    from ..mixtures.mixture import Mixture

    out = []
    for i, name in enumerate(names):
        if upper is not None and (upper[i] < 1.0 - 1e-12 or any(lower[j] > 0 for j in range(len(names)) if j != i)):
            continue
        out.append(Mixture.from_array(list(names), [1.0 if d == name else 0.0 for d in names]))
    return out


def phase_fractions(cfg: PipelineConfig) -> tuple[float, ...]:
    """The phases RegMix optimizes: ``schedule.phases``, or one phase (a static mixture is a one-phase schedule)."""
    from ..mixtures.sampler import ONE_PHASE

    return cfg.schedule_fractions or ONE_PHASE


def run_sample(ctx: StageContext) -> StageOutput:
    """The sweep's mixtures, or schedules (the one sampler: a mixture is a one-phase schedule); a static sweep adds
    the single-domain corners the best_domain baseline needs."""
    from ..mixtures.sampler import SampleStats, sample

    cfg: PipelineConfig = ctx.config
    registry = _registry(ctx)
    tokens = registry.tokens_per_domain("train")
    scfg = cfg.sample.sampler
    fractions = phase_fractions(cfg)
    stats = SampleStats()
    schedules = sample(tokens, scfg, fractions, domains=registry.names, stats=stats)
    if len(fractions) > 1:
        from ..mixtures.schedule import write_schedules

        path = write_schedules(ctx.out / "sample" / "schedules.jsonl", schedules)
        return StageOutput(files={"mixtures": str(path)},
                           values={"num_mixtures": len(schedules), "num_static_cap": stats.num_strict,
                                   "phases": list(fractions)},
                           summary=f"{len(schedules)} schedules of {len(fractions)} phases over "
                                   f"{len(registry.names)} domains")
    return _write_sample_mixtures(ctx, [s.mixtures[0] for s in schedules], stats, registry, tokens, scfg)


def _write_sample_mixtures(ctx: StageContext, mixtures: list, stats, registry, tokens, scfg) -> StageOutput:
    """A static sweep's ``mixtures.jsonl``, with the single-domain corners the sampler did not draw itself."""
    from ..mixtures.caps import domain_caps
    from ..mixtures.mixture import write_mixtures

    added = 0
    if wants_single_domains(ctx.config):
        seen = {m.hash for m in mixtures}
        lower, upper = domain_caps(tokens, scfg, domains=registry.names)
        corners = [m for m in single_domain_mixtures(registry.names, lower, upper) if m.hash not in seen]
        mixtures = mixtures + corners
        added = len(corners)
    path = write_mixtures(ctx.out / "sample" / "mixtures.jsonl", mixtures)
    return StageOutput(files={"mixtures": str(path)},
                       values={"num_mixtures": len(mixtures), "num_projected": int(stats.num_projected),
                               "num_single_domain_added": added},
                       summary=f"{len(mixtures)} mixtures over {len(registry.names)} domains"
                               + (f" ({added} single-domain)" if added else ""))


def proxy_inputs(cfg: PipelineConfig) -> dict:
    return {"train": resolved_train_inputs(cfg, "proxy"), "seed": cfg.seed,
            "noise_mixtures": cfg.proxy.noise_mixtures, "noise_seeds": cfg.proxy.noise_seeds}


def noise_plan(cfg: PipelineConfig, mixtures) -> tuple[list, list[int]]:
    """The extra proxy runs that measure seed noise: the first ``proxy.noise_mixtures`` sampled mixtures or
    schedules (not the single-domain corners) with seeds seed + 1 ... seed + ``proxy.noise_seeds``; (them, seeds)."""
    picks = [m for m in mixtures if not (m.is_static and is_single_domain(m.mixtures[0]))][:cfg.proxy.noise_mixtures]
    pairs = [(m, cfg.seed + k) for m in picks for k in range(1, cfg.proxy.noise_seeds + 1)]
    return [m for m, _ in pairs], [s for _, s in pairs]


def run_sweep(ctx: StageContext) -> StageOutput:
    from ..mixtures.schedule import read_trained
    from ..runs.results import write_table
    from ..runs.sweep.collect import collect

    cfg: PipelineConfig = ctx.config
    mixtures = read_trained(ctx.path("sample", "mixtures"))  # schedules (a sweep of mixtures: one phase each)
    extra, extra_seeds = noise_plan(cfg, mixtures)
    root = ctx.out / "sweep"
    sweep, results = run_batch(ctx, root, mixtures + extra, "proxy", label="sweep", max_failed_fraction=0.1,
                               seeds=[cfg.seed] * len(mixtures) + extra_seeds)
    collected = collect(sweep)
    table = collected.table
    # the fit's table: one run per mixture (the pipeline's seed); the noise table: every seed of the repeats
    main = table[table["seed"] == cfg.seed].reset_index(drop=True)
    repeated = {m.hash for m in extra}
    noise = table[table["mixture_hash"].isin(repeated)].reset_index(drop=True)
    fit_csv, noise_csv = root / "fit_runs.csv", root / "noise_runs.csv"
    write_table(main, fit_csv)
    write_table(noise, noise_csv)
    failed = [e.run_id for e in collected.excluded]
    return StageOutput(files={"sweep_dir": str(root), "results": str(fit_csv), "all_results": str(collected.csv_path),
                              "noise": str(noise_csv)},
                       values={"num_runs": len(main), "num_noise_runs": len(extra), "failed_runs": failed},
                       fingerprint=fingerprint_paths([fit_csv, noise_csv]),
                       summary=f"{len(main)} proxy runs + {len(extra)} seed repeats"
                               + (f" ({len(failed)} failed)" if failed else ""))


def fit_inputs(cfg: PipelineConfig) -> dict:
    from .config import REGRESSORS

    return {"target": cfg.target.to_json(), "num_folds": cfg.search.num_folds, "seed": cfg.seed,
            "regressor": cfg.search.regressor, "regressors": list(REGRESSORS),
            "num_bootstrap": cfg.search.num_bootstrap}


def cv_summary(metrics: "FitMetrics") -> dict:
    """Per regressor: pooled CV Spearman and its per-fold spread, from the fit's ``metrics.json`` summary."""
    out = {}
    for kind, fits in metrics.regressors.items():
        cv = next(iter(fits.values())).cv
        out[kind] = {"spearman": cv.pooled.get("spearman") if cv else None,
                     "fold_mean": cv.spearman_mean if cv else None, "fold_sd": cv.spearman_std if cv else None,
                     "folds": list(cv.spearman_folds) if cv else []}
    return out


def run_fit(ctx: StageContext) -> StageOutput:
    from ..runs.noise import proxy_noise
    from ..regression.data import load_results_table, mixture_groups
    from ..regression.fitting import METRICS_FILE, FitMetrics, choose_regressor, fit_models, fit_target, write_outputs
    from .config import AUTO

    cfg: PipelineConfig = ctx.config
    table = load_results_table(ctx.path("sweep", "results"))
    target = fit_target(table, None, cfg.target)
    folds = min(cfg.search.num_folds, int(mixture_groups(table.weights).max()) + 1)  # folds group by mixture
    from .config import REGRESSORS

    outcome = fit_models(table, [target], kinds=REGRESSORS, cv_folds=folds, seed=cfg.seed,
                         num_bootstrap=cfg.search.num_bootstrap)
    out_dir = ctx.out / "fit"
    files = {"metrics": str(out_dir / METRICS_FILE), "predictions": str(out_dir / "predictions.csv")}
    for model in write_outputs(outcome, out_dir):  # one target: one model per regressor
        files[f"model_{model.regressor}"] = str(out_dir / model.path)
    cv = cv_summary(FitMetrics.from_json_obj(outcome.summary, "the fit's summary"))
    rho = {k: v["spearman"] for k, v in cv.items()}
    if cfg.search.regressor == AUTO:
        regressor, reason = choose_regressor(rho)
    else:
        regressor, reason = cfg.search.regressor, "set in the config (search.regressor)"
    noise = proxy_noise(values_by_mixture(ctx.path("sweep", "noise"), cfg.target), target.train.tolist())
    fmt = lambda x: "n/a" if x is None else f"{x:.3f}"  # noqa: E731
    return StageOutput(files=files, values={"target": target.name, "cv_spearman": rho, "cv": cv,
                                            "regressor": regressor, "regressor_reason": reason, "noise": noise},
                       summary="CV Spearman " + ", ".join(f"{k} {fmt(v)}" for k, v in rho.items())
                               + f" (noise ceiling {fmt(noise['ceiling'])}); search uses {regressor}")


def values_by_mixture(path: Path, target) -> dict[str, list[float]]:
    """Target values of a results table grouped by mixture (the rows of one mixture differ by seed)."""
    from ..runs.results import read_results

    results = read_results(path)
    if results.frame.empty:
        return {}
    values = target.values(results.losses(), where=str(path))
    out: dict[str, list[float]] = {}
    for h, v in zip(results.frame["mixture_hash"].astype(str).tolist(), values.tolist()):
        out.setdefault(h, []).append(float(v))
    return out


def search_inputs(cfg: PipelineConfig) -> dict:
    inputs = {"regressor": cfg.search.regressor, "pool_size": cfg.search.num_candidates, "top_k": cfg.search.top_k,
              "sample": sample_inputs(cfg), "target": cfg.target.to_json()}
    if cfg.export.path_prefix.rules:  # only then: the export's paths depend on it
        inputs["export_path_prefix"] = cfg.export.path_prefix.to_list()
    return inputs


def run_search_stage(ctx: StageContext) -> StageOutput:
    """The search over the sweep's phases (one phase: mixtures; several: schedules, and the best static mixture under
    the same model), then the export of what it found, both into ``OUT/search/`` (one folder, written whole)."""
    from ..export.files import search_export_files, write_search_export
    from ..mixtures.mixture import Mixture
    from ..mixtures.schedule import feature_names
    from ..regression.fitting import find_model
    from ..regression.models import load_regressor
    from ..search.baselines import baseline_mixtures
    from ..search.outputs import check_search_folder, search_folder, write_search_files
    from ..search.pool import SearchConfig, search_model

    cfg: PipelineConfig = ctx.config
    registry = _registry(ctx)
    names = list(registry.names)
    tokens = registry.tokens_per_domain("train")
    fractions = phase_fractions(cfg)
    regressor = ctx.value("fit", "regressor")
    model_path = find_model(ctx.path("fit", "metrics").parent, regressor, ctx.value("fit", "target"))
    model = load_regressor(model_path, domains=feature_names(names, len(fractions)),
                           source=str(ctx.path("indexed", "domains")))
    search_cfg = SearchConfig(num_candidates=cfg.search.num_candidates, top_k=cfg.search.top_k,
                              chunk_size=min(100_000, cfg.search.num_candidates), seed=cfg.seed)
    scfg = cfg.sample.sampler
    out_dir = ctx.out / "search"
    exports = search_export_files()
    check_search_folder(out_dir, exports)  # before the work, not after
    baselines = baseline_mixtures(Mixture.from_array(names, registry.prior("train")), cfg.target)
    outcome = search_model(model, tokens, scfg, search_cfg, domains=names, fractions=fractions,
                           progress=lambda done, total: ctx.progress.update(done / total,
                                                                            f"{done:,}/{total:,} candidates"))
    with search_folder(out_dir, exports) as stage:
        exported = write_search_export(registry, outcome.schedule, outcome.static_mixture, stage, final_dir=out_dir,
                                       path_map=cfg.export.path_prefix)
        summary = write_search_files(stage, out_dir, outcome, model, baselines, search_cfg, tokens_per_domain=tokens,
                                     sampler_config=scfg, exported=exported)
    return _search_output(summary, out_dir, regressor)


def _search_output(summary, out_dir: Path, regressor: str) -> StageOutput:
    """The search stage's record: the files (the summary, top-k, the export; with several phases the best schedule
    and static mixture), every prediction, and the best static mixture's weights (for several phases also the
    schedule's phases)."""
    doc = summary.to_json()
    files = {"search": str(out_dir / "search.json"), "top_k": summary.files["top_k"]}
    values: dict[str, Any] = {"predicted": summary.predicted(), "predicted_sd": summary.predicted_sd()}
    if summary.schedule is not None:
        files.update(schedule=summary.files["schedule"], mixture=summary.files["mixture"])
        values.update(weights=summary.static.weights, schedule=list(summary.schedule.phases), regressor=regressor)
        best = [", ".join(f"{d} {w:.2f}" for d, w in sorted(p["weights"].items(), key=lambda kv: -kv[1])[:2])
                for p in summary.schedule.phases]
        text = (f"predicted {summary.result.predicted_loss:.4f} (static {summary.static.predicted_loss:.4f}); "
                + " | ".join(f"phase {k + 1}: {b}" for k, b in enumerate(best)))
    else:
        values.update(weights=summary.result.weights, regressor=regressor, top_k=summary.top_k_choice.to_json())
        best = sorted(summary.result.weights.items(), key=lambda kv: -kv[1])[:3]
        text = (f"predicted {summary.result.predicted_loss:.4f}{_sd_text(summary.result.predicted_sd)} (top "
                f"{summary.top_k}); top weights " + ", ".join(f"{d} {w:.2f}" for d, w in best))
    files.update(summary.export_files or {})
    # timings differ run to run and file locations are not content: neither decides whether later stages redo
    stable = {k: v for k, v in doc.items() if k not in ("seconds", "files", "model")}
    return StageOutput(files=files, values=values, fingerprint=content_hash(stable, length=None),
                       summary=f"{regressor}: {text}")


def _sd_text(sd: float | None) -> str:
    return "" if sd is None else f" +- {sd:.4f}"


def _estimate_sweep(cfg: PipelineConfig) -> float:
    num = cfg.sample.num_samples + cfg.proxy.noise_mixtures * cfg.proxy.noise_seeds
    return num * estimate_run_s(cfg, "proxy") / cfg.executor.num_parallel


def _estimate_search(cfg: PipelineConfig) -> float:
    return 2.0 + cfg.search.num_candidates / 300_000.0

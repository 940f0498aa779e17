"""The full-scale stages of ``regmix-megatron run``: full_scale (RegMix and the baselines trained at target scale,
and at proxy scale) -> evaluate -> report."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Callable

from ..errors import DataError
from .config import PipelineConfig, RunScale
from .framework import StageContext, StageOutput
from .search_stages import proxy_inputs
from .stage_helpers import (STAGE_NAMES, _registry, _sweep, estimate_run_s, is_single_domain,
                            resolved_train_inputs, run_batch)

if TYPE_CHECKING:
    from ..mixtures.mixture import Mixture
    from ..mixtures.schedule import Schedule


def full_scale_inputs(cfg: PipelineConfig) -> dict:
    t = cfg.full_scale
    return {"train": resolved_train_inputs(cfg, "full_scale"), "baselines": list(t.baselines), "seeds": cfg.seeds,
            "num_rank_mixtures": t.num_rank_mixtures, "proxy": proxy_inputs(cfg),
            "target": cfg.target.to_json(), "seed": cfg.seed}


def run_labeled(ctx: StageContext, root: Path, labeled: dict, seeds: dict, which: RunScale, *, label: str,
                fraction: tuple[float, float]) -> dict[str, dict[int, dict]]:
    """Train each labelled mixture (or schedule) with its seeds (``seeds[label]``; identical ones share runs);
    return label -> seed -> run record."""
    unique: dict[tuple[str, int], Mixture | Schedule] = {}
    for lab, m in labeled.items():
        for seed in seeds[lab]:
            unique.setdefault((m.hash, seed), m)
    pairs = list(unique)
    sweep, results = run_batch(ctx, root, [unique[p] for p in pairs], which, label=label, fraction=fraction,
                               seeds=[seed for _, seed in pairs])
    by_pair = {(r.schedule.hash, r.seed): r.run_id for r in sweep.runs}

    def record(run_id: str) -> dict:
        return {"run_id": run_id, "run_dir": ctx.relative(sweep.run_dir(run_id)), "result": results[run_id]}

    return {lab: {seed: record(by_pair[(m.hash, seed)]) for seed in seeds[lab]} for lab, m in labeled.items()}


def compared_mixtures(ctx: StageContext) -> tuple[dict, dict]:
    """The mixtures trained at target scale, by label, and each one's seeds: RegMix, natural and uniform with
    every target seed; target_only, best_domain (the single-domain sweep mixture with the lowest proxy target
    loss), best_sweep (the lowest sampled sweep mixture) and the rank mixtures (``sweep:<run id>``, spread over
    the sweep's range) with the pipeline's seed."""
    from ..mixtures.mixture import Mixture
    from ..regression.data import load_results_table
    from ..search.baselines import baseline_mixtures
    from .config import SEEDED_BASELINES
    from ..full_scale.evaluation import spread_indices

    cfg: PipelineConfig = ctx.config
    registry = _registry(ctx)
    builtin = baseline_mixtures(registry, cfg.target)
    table = load_results_table(ctx.path("sweep", "results"))
    values = table.values_of(cfg.target)  # validation split: choosing never looks at the test split
    if cfg.schedule_fractions is not None:  # RegMix's schedule, the best static mixture, the static baselines
        rows = spread_indices(values, cfg.full_scale.num_rank_mixtures)
        labeled = _scheduled_labels(ctx, {n: builtin[n] for n in cfg.full_scale.baselines},
                                    [table.run_ids[i] for i in rows])
        seeded = {"regmix", "regmix_static", *SEEDED_BASELINES}
        return labeled, {lab: (cfg.seeds if lab in seeded else [cfg.seed]) for lab in labeled}
    from .confirm import confirmed_pick

    labeled: dict[str, Mixture] = {"regmix": confirmed_pick(ctx)}  # the search's pick, or what the round measured
    planned = {r.run_id: r.mixture for r in _sweep(ctx).runs}
    sweep = [planned[rid] for rid in table.run_ids]
    single = [i for i, m in enumerate(sweep) if is_single_domain(m)]
    sampled = [i for i in range(len(sweep)) if i not in set(single)]
    for name in cfg.full_scale.baselines:
        if name in builtin:
            labeled[name] = builtin[name]
        elif name in ("best_domain", "best_sweep"):
            pool, what = (single, "single-domain") if name == "best_domain" else (sampled, "sampled")
            if not pool:
                raise DataError(f"full_scale.baselines {name}: no {what} mixture in the sweep to pick from")
            labeled[name] = sweep[min(pool, key=lambda i: (values[i], i))]
    taken = {m.hash for m in labeled.values()}
    order = [i for i in spread_indices(values[sampled], cfg.full_scale.num_rank_mixtures + 2)]
    for i in [sampled[j] for j in order]:
        if len([k for k in labeled if k.startswith("sweep:")]) >= cfg.full_scale.num_rank_mixtures:
            break
        if sweep[i].hash not in taken:
            labeled[f"sweep:{table.run_ids[i]}"] = sweep[i]
            taken.add(sweep[i].hash)
    seeds = {lab: (cfg.seeds if lab == "regmix" or lab in SEEDED_BASELINES else [cfg.seed]) for lab in labeled}
    return labeled, seeds


def _scheduled_labels(ctx: StageContext, baselines: dict, run_ids: list[str]) -> dict:
    """The labelled runs of a pipeline over schedules: ``regmix`` (the schedule), ``regmix_static`` (the best static
    mixture under the same model), the baselines (static mixtures) and the sweep's schedules of ``run_ids``
    (``sweep:<run id>``, as planned)."""
    from ..mixtures.mixture import Mixture
    from ..mixtures.schedule import load_schedule

    labeled: dict[str, Mixture | Schedule] = {"regmix": load_schedule(ctx.path("search", "schedule")),
                               "regmix_static": Mixture.load(ctx.path("search", "mixture")), **baselines}
    sweep = _sweep(ctx)
    for rid in run_ids:
        labeled[f"sweep:{rid}"] = sweep.get(rid).schedule
    return labeled


def run_full_scale(ctx: StageContext) -> StageOutput:
    from ..fileio import atomic_write_json
    from ..runs.sweep.state import read_run_state
    from .confirm import confirmation_note

    cfg: PipelineConfig = ctx.config
    labeled, seeds = compared_mixtures(ctx)
    out_dir = ctx.out / "full_scale"
    # proxy scale: what the sweep did not train (RegMix and the built-in baselines), once, for rank invariance
    sweep = _sweep(ctx)
    sweep_hashes = {r.schedule.hash: r for r in sweep.runs if r.seed == cfg.seed}
    own = {k: m for k, m in labeled.items() if m.hash not in sweep_hashes}
    proxy = {lab: recs[cfg.seed] for lab, recs in run_labeled(
        ctx, out_dir / "proxy-scale", own, {k: [cfg.seed] for k in own}, "proxy", label="proxy-scale runs",
        fraction=(0.0, 0.15)).items()}
    for lab, m in labeled.items():
        if lab not in proxy:
            run_id = sweep_hashes[m.hash].run_id
            run_dir = sweep.run_dir(run_id)
            result = read_run_state(run_dir).result
            proxy[lab] = {"run_id": run_id, "run_dir": ctx.relative(run_dir),
                          "result": None if result is None else result.to_json_obj()}
    target = run_labeled(ctx, out_dir / "target-scale", labeled, seeds, "full_scale", label="target runs",
                         fraction=(0.15, 1.0))
    runs = {lab: _labeled_run(m, proxy.get(lab), {str(seed): rec for seed, rec in target[lab].items()},
                              ctx.relative(m.save(out_dir / "mixtures" / f"{lab.replace(':', '-')}.json")))
            for lab, m in labeled.items()}  # mixture files: for `regmix-megatron export` / train at scale
    doc = {"format": "regmix-megatron/target-runs/v2", "target": cfg.target.to_json(), "seeds": cfg.seeds,
           "runs": runs}
    note = confirmation_note(ctx)
    if note is not None:  # which candidate of the confirmation round trains as regmix
        doc["confirmation"] = note
    path = atomic_write_json(out_dir / "runs.json", doc)
    num_runs = sum(len(v) for v in target.values())
    replaced = f"; regmix is {note['chosen']}, which replaced the search's pick" if note and note["replaced"] else ""
    return StageOutput(files={"runs": str(path)}, values={"labels": list(labeled)},
                       summary=f"{num_runs} target-scale runs of {len(labeled)} mixtures ({', '.join(labeled)})"
                               + replaced)


def _labeled_run(trained, proxy: dict | None, target: dict, mixture_file: str) -> dict:
    """A labelled run's record in ``runs.json``: its mixture (a schedule's overall token shares, plus the schedule
    when it has several phases), proxy and target runs, and the file it was saved to. Paths are relative to the
    pipeline's output directory, so the folder can be moved."""
    from ..mixtures.schedule import schedule_of

    schedule = schedule_of(trained)
    record = {"mixture": schedule.overall().as_dict(), "mixture_hash": schedule.hash}
    if not schedule.is_static:
        record["schedule"] = schedule.to_json_obj()
    return {**record, "proxy": proxy, "target": target, "mixture_file": mixture_file}


def evaluate_inputs(cfg: PipelineConfig) -> dict:
    from ..full_scale.document_evidence import BOOTSTRAP_SEED
    from ..full_scale.document_noise import DEFAULT_NUM_DRAWS

    t = cfg.full_scale
    return {"target": cfg.target.to_json(), "rank_threshold": t.rank_threshold,
            "threshold_sd": t.threshold_sd, "document_bootstrap": {"num_draws": DEFAULT_NUM_DRAWS,
                                                                   "seed": BOOTSTRAP_SEED}}


def run_evaluate(ctx: StageContext) -> StageOutput:
    from ..fileio import read_json
    from ..full_scale.evaluation import FILE_NAME, evaluate, verdict_lines, write_evaluation
    from .confirm import confirmation_summary

    cfg: PipelineConfig = ctx.config
    runs = read_json(ctx.path("full_scale", "runs"))["runs"]
    confirmation = confirmation_summary(ctx)
    # a replaced pick is not the mixture the search predicted: the model predicts it like any other
    replaced = ("regmix",) if confirmation is not None and confirmation.replaced else ()
    predicted, predicted_sd, uncertainty, sources = _evaluation_model_and_sources(ctx, runs, drop_known=replaced)
    evaluation = evaluate(cfg.target, runs, predicted=predicted, predicted_sd=predicted_sd,
                          confirmation=confirmation,
                          fit={"regressor": ctx.value("fit", "regressor"),
                               "regressor_reason": ctx.value("fit", "regressor_reason"), "cv": ctx.value("fit", "cv"),
                               "noise": ctx.value("fit", "noise"), "uncertainty": uncertainty},
                          documents=_run_documents(ctx, runs), document_sources=sources,
                          rank_threshold=cfg.full_scale.rank_threshold, threshold_sd=cfg.full_scale.threshold_sd)
    path = write_evaluation(ctx.out / FILE_NAME, evaluation)
    return StageOutput(files={"evaluation": str(path)}, summary="; ".join(verdict_lines(evaluation, short=True)))


def _evaluation_model_and_sources(ctx: StageContext, runs: dict, *, drop_known: tuple[str, ...] = ()
                                  ) -> tuple[dict, dict, str | None, dict]:
    """Every compared mixture's prediction by the model the search used (the search's own where it made one, but
    for the labels in ``drop_known``) and its sd, what that sd measures, and the source of every test document of
    each domain that records them (``domains.json``). A model that gives no sd (linear, quadratic, LightGBM) gets
    the spread of its refits on bootstrap resamples of the proxy runs (:func:`_refit_spread`)."""
    from ..data.manifest import DomainRegistry
    from ..full_scale.evaluation import REPORT_SPLIT
    from ..full_scale.predictions import predict_compared
    from ..mixtures.schedule import feature_names
    from ..regression.fitting import find_model
    from ..regression.models import load_regressor
    from .search_stages import phase_fractions

    registry = DomainRegistry.load(ctx.path("indexed", "domains"))
    names, fractions = list(registry.names), phase_fractions(ctx.config)
    model = load_regressor(find_model(ctx.path("fit", "metrics").parent, ctx.value("fit", "regressor"),
                                      ctx.value("fit", "target")),
                           domains=feature_names(names, len(fractions)), source=str(ctx.path("indexed", "domains")))
    search = ctx.upstream("search")["values"]
    known = {k: v for k, v in search["predicted"].items() if k not in drop_known}
    known_sd = {k: v for k, v in (search.get("predicted_sd") or {}).items() if k not in drop_known}
    if model.gives_uncertainty:
        spread, uncertainty = None, "the ensemble: its members' spread and its bootstrap refits"
    else:
        spread, uncertainty = _refit_spread(ctx, model.kind)
    predicted, predicted_sd = predict_compared(runs, model.predict_with_sd, names, fractions,
                                               known=known, known_sd=known_sd, spread=spread)
    sources = {d.name: s for d in registry.domains if (s := d.document_sources(REPORT_SPLIT)) is not None}
    return predicted, predicted_sd, uncertainty, sources


def _refit_spread(ctx: StageContext, kind: str) -> tuple[Callable | None, str | None]:
    """For a ``kind`` model that gives no sd: features -> the sd of its prediction over its refits on
    group-bootstrap resamples of the sweep's runs (``search.num_bootstrap`` refits, as the fit stage fits), and what
    it measures; ``(None, None)`` with fewer than 2 refits."""
    from ..regression.data import load_results_table
    from ..regression.fitting import fit_target, refit_sd

    cfg: PipelineConfig = ctx.config
    num = cfg.search.num_bootstrap
    if num < 2:
        return None, None
    table = load_results_table(ctx.path("sweep", "results"))
    target = fit_target(table, None, cfg.target)
    return (lambda at: refit_sd(kind, table, target, at, seed=cfg.seed, num_bootstrap=num),
            f"{kind}: the spread of {num} refits on bootstrap resamples of the proxy runs "
            "(the estimation variance; the model's bias does not show)")


def _run_documents(ctx: StageContext, runs: dict) -> dict:
    """Label -> each full-scale run's ``document_losses.json`` (None for a run without one), in seed order."""
    from ..runs.document_losses import read_document_losses_or_none

    return {lab: [read_document_losses_or_none(ctx.resolve(rec["run_dir"])) if rec.get("run_dir") else None
                  for _, rec in sorted(run["target"].items(), key=lambda kv: int(kv[0]))]
            for lab, run in runs.items()}


def run_report(ctx: StageContext) -> StageOutput:
    from ..fileio import read_json
    from ..full_scale.evaluation import read_evaluation
    from ..report.pipeline import numbers_for_log, write_pipeline_report

    cfg: PipelineConfig = ctx.config
    evaluation = read_evaluation(ctx.path("evaluate", "evaluation"))
    records = [ctx.records[name] for name in STAGE_NAMES if name in ctx.records]
    png_dir = ctx.out / "report"
    path = write_pipeline_report(
        ctx.out / "report.html", png_dir, records=records, evaluation=evaluation,
        results_csv=ctx.path("sweep", "results"), fit_dir=ctx.path("fit", "metrics").parent,
        search_dir=ctx.path("search", "search").parent, fit_target=ctx.value("fit", "target"),
        target=cfg.target, target_runs=read_json(ctx.path("full_scale", "runs")), runs_root=ctx.out)
    return StageOutput(files={"report": str(path), "figures": str(png_dir)}, summary=path.name,
                       values=numbers_for_log(evaluation))


def _estimate_full_scale(cfg: PipelineConfig) -> float:
    from .config import SEEDED_BASELINES

    seeded = 1 + sum(1 for b in cfg.full_scale.baselines if b in SEEDED_BASELINES) + (cfg.schedule_fractions is not None)
    once = len(cfg.full_scale.baselines) + 1 - seeded + cfg.full_scale.num_rank_mixtures
    proxy = seeded * estimate_run_s(cfg, "proxy")
    target = (seeded * cfg.full_scale.seeds + once) * estimate_run_s(cfg, "full_scale")
    return (proxy + target) / cfg.executor.num_parallel

"""The eleven stages of ``regmix-megatron run``, each a thin call into the module that owns the work.

corpus -> tokenizer -> indexed -> sample -> sweep -> fit -> search -> confirm -> targets -> evaluate -> report

(``confirm``, the confirmation round, lives in :mod:`.confirm`.)

Every stage writes under ``OUT/<stage>/`` (the corpus may live in a shared cache outside OUT). The inputs a stage
declares are the config fields that change its output; settings that only change speed (workers, parallelism)
are left out, so changing them does not redo work.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import DataError, RegmixError
from ..fileio import is_temporary, sha256_file
from ..hashing import content_hash
from ..data.manifest import SPLITS
from .config import PipelineConfig, run_recipe, slurm_options, uses_imported_data
from .framework import Stage, StageContext, StageOutput, fingerprint_paths

if TYPE_CHECKING:
    from ..mixtures.mixture import Mixture
    from ..mixtures.schedule import Schedule
    from ..regression.fitting import FitMetrics

log = logging.getLogger(__name__)


# ---- helpers --------------------------------------------------------------------------------------------
def _stat_fingerprint(root: Path) -> str:
    """Cheap fingerprint of a directory tree (relative names, sizes, modification times)."""
    rows = []
    for p in sorted(root.rglob("*")):
        if p.is_file() and not is_temporary(p, root):
            st = p.stat()
            rows.append((str(p.relative_to(root)), st.st_size, st.st_mtime_ns))
    return content_hash(rows, length=None)


def _path_fingerprint(path: Path) -> str:
    """:func:`_stat_fingerprint` of a directory, or of one file (name, size, modification time)."""
    if path.is_dir():
        return _stat_fingerprint(path)
    st = path.stat()
    return content_hash([path.name, st.st_size, st.st_mtime_ns], length=None)


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
def built_domains(cfg: PipelineConfig) -> tuple[list[str], list[str]]:
    """With ``build``: (the built-in domains to build, those of them built evaluation-only): ``corpus.domains``
    (the builder's default set when not given) and ``corpus.eval_only``, the extra domains left out."""
    from ..data.corpus.build import resolve_domains

    c = cfg.corpus
    listed = None if c.domains is None else [d for d in c.domains if d not in c.extra_domains]
    held_out = [d for d in c.eval_only if d not in c.extra_domains]
    names = sorted(set(resolve_domains(listed, "corpus.domains")) | set(resolve_domains(held_out, "corpus.eval_only")
                                                                      if held_out else ()))
    return names, sorted(held_out)


def wanted_domains(cfg: PipelineConfig) -> list[str] | None:
    """The corpus domains the pipeline uses: ``corpus.domains`` (with ``build``: the builder's default set when
    not given) plus the evaluation-only and extra ones; None: every domain of an existing corpus directory."""
    if cfg.corpus.source == "build":
        return sorted(set(built_domains(cfg)[0]) | set(cfg.corpus.extra_domains))
    return cfg.all_domains


def corpus_inputs(cfg: PipelineConfig) -> dict:
    """What the corpus is, never where it lies (a moved project resumes): the build settings (which domains are
    built evaluation-only, and the extra domains' content), or the listing of an existing corpus directory (names,
    sizes, modification times)."""
    c = cfg.corpus
    if c.source == "build":
        inputs = {"source": "build", "domains": wanted_domains(cfg), "max_mb_per_domain": c.max_mb}
        if c.eval_only:
            inputs["eval_only"] = sorted(c.eval_only)
        if c.extra_domains:
            inputs["extra_domains"] = {name: {"eval_only": name in c.eval_only, "content": _path_fingerprint(
                Path(extra.path))} for name, extra in sorted(c.extra_domains.items())}
        return inputs
    if uses_imported_data(cfg):  # the registry's content, not its path
        return {"source": "imported", "domains": wanted_domains(cfg), "eval_only": sorted(c.eval_only),
                "content": sha256_file(c.source)}
    return {"source": "directory", "domains": wanted_domains(cfg), "content": _stat_fingerprint(Path(c.source))}


def _imported_registry(cfg: PipelineConfig):
    """The ``domains.json`` of existing prefixes (``corpus.source``), restricted to ``corpus.domains`` and the
    evaluation-only ones, with ``corpus.eval_only`` (when given) as its evaluation-only domains."""
    from ..data.manifest import DomainRegistry

    registry = DomainRegistry.load(cfg.corpus.source)
    wanted = cfg.all_domains
    if wanted is not None:
        missing = sorted(set(wanted) - set(registry.all_names))
        if missing:
            raise DataError(f"corpus.domains/corpus.eval_only list {missing}, which {cfg.corpus.source} does not "
                            f"have; available: {list(registry.all_names)}")
        registry = DomainRegistry(domains=tuple(registry.get(n) for n in wanted), tokenizer=registry.tokenizer,
                                  path=registry.path)
    return registry.with_evaluation_only(cfg.corpus.eval_only) if cfg.corpus.eval_only else registry


def run_corpus(ctx: StageContext) -> StageOutput:
    c = ctx.config.corpus
    if uses_imported_data(ctx.config):
        registry = _imported_registry(ctx.config)
        ctx.config.parsed_target.check_domains(list(registry.all_names), where="target")
        tokens = int(registry.tokens_per_domain("train").sum())
        held_out = [d.name for d in registry.domains if d.evaluation_only]
        return StageOutput(files={"domains_json": str(Path(c.source).resolve())},
                           values={"domains": list(registry.all_names), "eval_only": held_out, "num_bytes": 0},
                           summary=f"{len(registry.all_names)} domains of existing prefixes ({tokens / 1e6:.2f}M "
                                   "train tokens)", fingerprint=sha256_file(c.source))
    wanted = wanted_domains(ctx.config)
    if c.source == "build":
        from ..data.corpus.build import build_corpus

        num_domains = len(wanted)
        done: list[str] = []

        def on_domain(name: str, entry: dict, reused: bool) -> None:
            done.append(name)
            ctx.progress.update(len(done) / num_domains, f"{name} {'reused' if reused else 'built'}")

        cache_dir = c.cache_dir if c.cache_dir is not None else ctx.out / "cache"
        names, held_out = built_domains(ctx.config)
        corpus_dir = Path(build_corpus(cache_dir, domains=names, max_mb_per_domain=c.max_mb, eval_only=held_out,
                                       on_domain=on_domain))
        _add_extra_domains(ctx, corpus_dir, on_domain)
    else:
        corpus_dir = Path(c.source)
    domains = corpus_domains(corpus_dir, wanted)
    missing = sorted(set(c.eval_only) - set(domains))
    if missing:
        raise DataError(f"corpus.eval_only lists {missing}, which {corpus_dir} does not have; available: {domains}")
    if len(set(domains) - set(c.eval_only)) < 2:
        raise DataError(f"{corpus_dir}: fewer than two training domains among {domains} besides the "
                        f"evaluation-only {c.eval_only}")
    ctx.config.parsed_target.check_domains(domains, where="target")
    num_bytes = sum((corpus_dir / d / f"{s}.jsonl").stat().st_size for d in domains for s in SPLITS
                    if (corpus_dir / d / f"{s}.jsonl").exists())
    fingerprint = content_hash({d: fingerprint_paths([corpus_dir / d]) for d in domains}, length=None)
    held_out = sorted(c.eval_only)
    return StageOutput(files={"corpus_dir": str(corpus_dir)},
                       values={"domains": domains, "eval_only": held_out, "num_bytes": num_bytes},
                       summary=f"{len(domains)} domains" + (f" ({', '.join(held_out)} evaluation-only)" if held_out
                                                            else "") + f", {num_bytes / 1e6:.1f} MB",
                       fingerprint=fingerprint)


def _add_extra_domains(ctx: StageContext, corpus_dir: Path, on_domain) -> None:
    """Add ``corpus.extra_domains`` to the built corpus (``regmix-megatron corpus add``'s rules)."""
    from ..data.corpus.build import CorpusSettings
    from ..data.corpus.user_domain import add_domain

    c = ctx.config.corpus
    for name, extra in sorted(c.extra_domains.items()):
        entry, reused = add_domain(corpus_dir, name, [extra.path], eval_only=name in c.eval_only,
                                   settings=CorpusSettings(max_mb_per_domain=c.max_mb))
        on_domain(name, entry, reused)


# ---- tokenizer ------------------------------------------------------------------------------------------
def tokenizer_inputs(cfg: PipelineConfig) -> dict:
    t = cfg.tokenizer
    if uses_imported_data(cfg):
        return {"imported": True}  # the registry records its tokenizer; the corpus stage's fingerprint covers it
    if t.type is not None:
        from ..data.tokenizer_types import identity_sha256

        spec = t.spec()
        return {"spec": spec.to_json(), "sha256": identity_sha256(spec.check())}
    if t.model is not None:  # the model's content, not its path
        return {"model_sha256": sha256_file(t.model)}
    return {"vocab_size": t.vocab_size, "seed": cfg.seed, "eval_only": sorted(cfg.corpus.eval_only)}


def run_tokenizer(ctx: StageContext) -> StageOutput:
    from ..data.tokenizer_training import TokenizerTrainConfig, adopt_tokenizer, train_tokenizer

    cfg: PipelineConfig = ctx.config
    out_dir = ctx.out / "tokenizer"
    if uses_imported_data(cfg) or cfg.tokenizer.type is not None:
        return _existing_tokenizer(ctx, out_dir)
    if cfg.tokenizer.model is not None:
        model = adopt_tokenizer(cfg.tokenizer.model, out_dir, overwrite=True)
    else:
        # trained on the training domains only: an evaluation-only domain stays unseen until it is evaluated
        training = [d for d in ctx.value("corpus", "domains") if d not in cfg.corpus.eval_only]
        model = train_tokenizer(ctx.path("corpus", "corpus_dir"), out_dir,
                                TokenizerTrainConfig(vocab_size=cfg.tokenizer.vocab_size, seed=cfg.seed),
                                domains=training, overwrite=True)
    return StageOutput(files={"model": str(model)}, fingerprint=sha256_file(model),
                       summary=f"{Path(model).name} (vocab {cfg.tokenizer.vocab_size})")


def _existing_tokenizer(ctx: StageContext, out_dir: Path) -> StageOutput:
    """A tokenizer that is not trained here: the one a ``domains.json`` records, or ``tokenizer.type``'s files.
    Its Megatron-LM flags go to ``OUT/tokenizer/tokenizer_spec.json`` for the indexed stage."""
    from ..fileio import atomic_write_json
    from ..data.tokenizer_types import identify_spec

    cfg: PipelineConfig = ctx.config
    if uses_imported_data(cfg):
        info = _imported_registry(cfg).tokenizer
        spec, sha256, vocab = info.spec, info.sha256, info.vocab_size
    else:
        ident = identify_spec(cfg.tokenizer.spec())
        spec, sha256, vocab = ident.spec, ident.sha256, ident.vocab_size
    path = atomic_write_json(out_dir / "tokenizer_spec.json", spec.to_json())
    return StageOutput(files={"model": str(Path(spec.tokenizer_model or spec.vocab_file)), "spec": str(path)},
                       fingerprint=sha256, summary=f"{spec.tokenizer_type} (vocab {vocab}; not trained here)")


# ---- indexed datasets -----------------------------------------------------------------------------------
def _tokenizer_for_indexing(ctx: StageContext):
    """The SentencePiece model the tokenizer stage trained or adopted, or the spec it recorded."""
    from ..fileio import read_json
    from ..data.tokenizer_types import TokenizerSpec

    files = ctx.upstream("tokenizer")["files"]
    if files.get("spec"):
        return TokenizerSpec.from_json(read_json(files["spec"]))
    return ctx.path("tokenizer", "model")


def _index_imported(ctx: StageContext, out_dir: Path) -> Path:
    """The imported registry, checked against its ``.idx`` files (counts unchanged since the import), saved as
    ``OUT/data/domains.json`` (restricted to ``corpus.domains``)."""
    from ..data.index_files import read_index

    registry = _imported_registry(ctx.config)
    for d in registry.domains:
        for split, prefixes in d.splits.items():
            for p in prefixes:
                counts = read_index(p.path)
                if (counts.num_tokens, counts.num_documents) != (p.num_tokens, p.num_documents):
                    raise DataError(f"{p.path}: {counts.num_tokens} tokens in {counts.num_documents} documents, but "
                                    f"{registry.path} records {p.num_tokens} in {p.num_documents}: the data changed "
                                    "since `domains import`; import it again")
    return registry.save(out_dir / "domains.json")


def run_indexed(ctx: StageContext) -> StageOutput:
    from ..data.manifest import DomainRegistry
    from ..data.preprocess import preprocess_corpus

    cfg: PipelineConfig = ctx.config
    out_dir = ctx.out / "data"
    _clear(out_dir, ctx.out)  # partial output of a killed run, or stale output of other inputs
    if uses_imported_data(cfg):
        manifest = _index_imported(ctx, out_dir)
    else:
        manifest = preprocess_corpus(ctx.path("corpus", "corpus_dir"), out_dir, _tokenizer_for_indexing(ctx),
                                     workers=cfg.preprocess.workers, domains=ctx.value("corpus", "domains"),
                                     eval_only=cfg.corpus.eval_only)
    registry = DomainRegistry.load(manifest)
    tokens = {d.name: d.num_tokens("train") for d in registry.training_domains}
    idx_files = [Path(p.path + ".idx") for d in registry.domains for ps in d.splits.values() for p in ps]
    fingerprint = fingerprint_paths([Path(manifest)] + sorted(idx_files))
    return StageOutput(files={"domains": str(manifest)},
                       values={"train_tokens": tokens,
                               "valid_tokens": {d.name: d.num_tokens("valid") for d in registry.domains}},
                       fingerprint=fingerprint,
                       summary=f"{sum(tokens.values()) / 1e6:.2f}M train tokens in {len(tokens)} training domains"
                               + (f", {len(registry.eval_only_names)} evaluation-only" if registry.eval_only_names
                                  else ""))


def verify_indexed(files: dict[str, Path]) -> None:
    """The indexed stage's check before it is skipped: every .bin/.idx pair against domains.json, its pointers
    included (once per prefix and process; a damaged pair makes the stage run again)."""
    from ..data.manifest import DomainRegistry

    DomainRegistry.load(files["domains"]).verify_files()


def verify_complete(files: dict[str, Path], key: str) -> None:
    """A stage's check before it is skipped: the output folder of its ``key`` file is complete (its
    ``outputs.json``, written last, lists every file): a folder an interrupted or older write left is redone."""
    from ..output_folder import read_outputs

    read_outputs(files[key].parent, "stage output folder")


# ---- sample ---------------------------------------------------------------------------------------------
def _registry(ctx: StageContext):
    """The registry of the indexed stage, its files checked (a stage never trains or samples on damaged data)."""
    from ..data.manifest import DomainRegistry

    registry = DomainRegistry.load(ctx.path("indexed", "domains"))
    registry.verify_files()
    return registry


def target_train_tokens(cfg: PipelineConfig) -> int:
    """Token budget of one target run (what the epoch caps of the sampler refer to)."""
    return run_recipe(cfg, "targets").num_train_tokens


def wants_single_domains(cfg: PipelineConfig) -> bool:
    """The best_domain baseline needs every single-domain mixture trained at proxy scale: they join the sweep."""
    return "best_domain" in cfg.targets.baselines and cfg.schedule_fractions is None


def sample_inputs(cfg: PipelineConfig) -> dict:
    inputs = {"num_proxies": cfg.sample.num_samples, "sampler": dict(cfg.sample.sampler), "seed": cfg.seed,
              "single_domains": wants_single_domains(cfg)}
    if cfg.schedule_fractions is not None:  # only then: a static pipeline keeps its fingerprints
        inputs["schedule"] = list(cfg.schedule_fractions)
    if cfg.sample.sampler.get("max_epochs") is not None:  # only then do the caps depend on the target budget
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


def is_single_domain(mixture) -> bool:
    return len(mixture.nonzero()) == 1


def phase_fractions(cfg: PipelineConfig) -> tuple[float, ...]:
    """The phases RegMix optimizes: ``schedule.phases``, or one phase (a static mixture is a one-phase schedule)."""
    from ..mixtures.sampler import ONE_PHASE

    return cfg.schedule_fractions or ONE_PHASE


def run_sample(ctx: StageContext) -> StageOutput:
    """The sweep's mixtures, or schedules (the one sampler: a mixture is a one-phase schedule); a static sweep adds
    the single-domain corners the best_domain baseline needs."""
    from ..mixtures.sampler import SampleStats, sample
    from .config import sampler_config

    cfg: PipelineConfig = ctx.config
    registry = _registry(ctx)
    tokens = registry.tokens_per_domain("train")
    scfg = sampler_config(cfg, tokens, target_tokens=target_train_tokens(cfg))
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


# ---- sweep ----------------------------------------------------------------------------------------------
def resolved_train_inputs(cfg: PipelineConfig, which: str) -> dict:
    """A section's fully resolved recipe (preset merged in; no paths): a change to a preset's content counts as
    a change of the stage's inputs, as it changes the sweep's run ids."""
    return run_recipe(cfg, which).to_dict()


def proxy_inputs(cfg: PipelineConfig) -> dict:
    return {"train": resolved_train_inputs(cfg, "proxy"), "seed": cfg.seed,
            "noise_mixtures": cfg.proxy.noise_mixtures, "noise_seeds": cfg.proxy.noise_seeds}


def run_batch(ctx: StageContext, root: Path, mixtures, which: str, *, label: str, fraction: tuple[float, float]
              = (0.0, 1.0), max_failed_fraction: float = 0.0, seeds=None):
    """Plan and launch a set of runs as a sweep in ``root``; return (sweep, run id -> result of finished runs).

    ``which`` names the recipe (``proxy`` or ``targets``); ``seeds`` (one per mixture; default the pipeline's
    seed for all) lets a mixture be trained with several seeds. Finished runs are never repeated (the sweep
    skips them); a changed config starts a fresh sweep directory. Progress is reported as the share of finished
    runs, mapped into ``fraction`` of the current stage. Runs that failed for good are tolerated up to
    ``max_failed_fraction`` of the runs (they are reported).
    """
    from ..runs.sweep import plan as sweep_plan
    from ..runs.sweep import state as sweep_state

    cfg: PipelineConfig = ctx.config
    recipe = run_recipe(cfg, which)
    domains = ctx.path("indexed", "domains")
    try:
        sweep, _ = sweep_plan.plan_sweep(root, mixtures, recipe, domains, cfg.seed, seeds=seeds)
    except sweep_plan.SweepError as exc:
        log.warning("%s: %s; its inputs changed, so it is planned afresh", root, exc)
        _clear(root, ctx.out)
        sweep, _ = sweep_plan.plan_sweep(root, mixtures, recipe, domains, cfg.seed, seeds=seeds)
    launch_sweep(ctx, sweep, label=label, fraction=fraction)
    states = sweep_state.read_sweep_state(sweep)
    failed = {rid: s for rid, s in states.items() if s.status != sweep_state.DONE}
    for rid, s in failed.items():
        log.warning("%s: run %s %s: %s (log %s)", label, rid, s.status, s.reason, s.log_path)
    if len(failed) > max_failed_fraction * len(states):
        lines = "; ".join(f"{rid}: {s.status} {s.reason} (log {s.log_path})" for rid, s in failed.items())
        raise RegmixError(f"{label}: {len(failed)} of {len(states)} runs did not finish: {lines}. Fix the cause "
                          f"and run again (finished runs are kept), or raise executor.max_attempts")
    return sweep, {rid: s.result.to_json_obj() for rid, s in states.items() if s.status == sweep_state.DONE}


def launch_sweep(ctx: StageContext, sweep, *, label: str, fraction: tuple[float, float]) -> None:
    """Execute the pending runs of ``sweep`` with the configured executor (``sweep.launch``), reporting the
    share of finished runs as progress into ``fraction`` of the stage."""
    from ..runs.sweep import state as sweep_state
    from ..runs.sweep.launch import launch

    import time

    cfg: PipelineConfig = ctx.config
    ex = cfg.executor
    total = max(len(sweep.runs), 1)
    lo, hi = fraction
    started = time.monotonic()
    done_before: list[int] = []  # runs already done when this launch began (not timed here)

    def report(states, ended) -> None:
        done = sweep_state.count_statuses(states.values())[sweep_state.DONE]
        if not done_before:
            done_before.append(done)
        finished_here = done - done_before[0]
        per_run = (time.monotonic() - started) / finished_here if finished_here else None
        pace = f", {per_run:.0f} s/run measured" if per_run else ""
        ctx.progress.update(lo + (hi - lo) * done / total, f"{label}: {done}/{total} runs done{pace}")
        if per_run and hi >= 1.0:  # the last part of the stage: what is left is these runs
            ctx.progress.reestimate((total - done) * per_run)

    if ex.kind == "local":
        from ..runs.sweep.local import LocalOptions, num_cores

        threads = max(1, num_cores() // ex.num_parallel)
        options = LocalOptions(parallel=ex.num_parallel, threads_per_run=threads, max_attempts=ex.max_attempts,
                               reuse_process=ex.reuse_process)
    else:
        options = slurm_options(cfg)
    launch(sweep, options, on_progress=report)


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


# ---- fit ------------------------------------------------------------------------------------------------
def fit_inputs(cfg: PipelineConfig) -> dict:
    from .config import REGRESSORS

    return {"target": cfg.parsed_target.to_json(), "num_folds": cfg.search.num_folds, "seed": cfg.seed,
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
    target = fit_target(table, None, cfg.parsed_target)
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
    noise = proxy_noise(values_by_mixture(ctx.path("sweep", "noise"), cfg.parsed_target), target.train.tolist())
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


# ---- search ---------------------------------------------------------------------------------------------
def search_inputs(cfg: PipelineConfig) -> dict:
    inputs = {"regressor": cfg.search.regressor, "pool_size": cfg.search.num_candidates, "top_k": cfg.search.top_k,
              "sample": sample_inputs(cfg), "target": cfg.parsed_target.to_json()}
    if cfg.export.path_prefix:  # only then: the export's paths depend on it
        inputs["export_path_prefix"] = cfg.export.path_map().to_list()
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
    from .config import sampler_config

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
    scfg = sampler_config(cfg, tokens, target_train_tokens(cfg))
    out_dir = ctx.out / "search"
    exports = search_export_files()
    check_search_folder(out_dir, exports)  # before the work, not after
    baselines = baseline_mixtures(Mixture.from_array(names, registry.prior("train")), cfg.parsed_target)
    outcome = search_model(model, tokens, scfg, search_cfg, domains=names, fractions=fractions,
                           progress=lambda done, total: ctx.progress.update(done / total,
                                                                            f"{done:,}/{total:,} candidates"))
    with search_folder(out_dir, exports) as stage:
        exported = write_search_export(registry, outcome.schedule, outcome.static_mixture, stage, final_dir=out_dir,
                                       path_map=cfg.export.path_map())
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


# ---- target runs ----------------------------------------------------------------------------------------
def targets_inputs(cfg: PipelineConfig) -> dict:
    t = cfg.targets
    return {"train": resolved_train_inputs(cfg, "targets"), "baselines": list(t.baselines), "seeds": cfg.seeds,
            "num_rank_mixtures": t.num_rank_mixtures, "proxy": proxy_inputs(cfg),
            "target": cfg.parsed_target.to_json(), "seed": cfg.seed}


def run_labeled(ctx: StageContext, root: Path, labeled: dict, seeds: dict, which: str, *, label: str,
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
    builtin = baseline_mixtures(registry, cfg.parsed_target)
    table = load_results_table(ctx.path("sweep", "results"))
    values = table.values_of(cfg.parsed_target)  # validation split: choosing never looks at the test split
    if cfg.schedule_fractions is not None:  # RegMix's schedule, the best static mixture, the static baselines
        rows = spread_indices(values, cfg.targets.num_rank_mixtures)
        labeled = _scheduled_labels(ctx, {n: builtin[n] for n in cfg.targets.baselines},
                                    [table.run_ids[i] for i in rows])
        seeded = {"regmix", "regmix_static", *SEEDED_BASELINES}
        return labeled, {lab: (cfg.seeds if lab in seeded else [cfg.seed]) for lab in labeled}
    from .confirm import confirmed_pick

    labeled: dict[str, Mixture] = {"regmix": confirmed_pick(ctx)}  # the search's pick, or what the round measured
    planned = {r.run_id: r.mixture for r in _sweep(ctx).runs}
    sweep = [planned[rid] for rid in table.run_ids]
    single = [i for i, m in enumerate(sweep) if is_single_domain(m)]
    sampled = [i for i in range(len(sweep)) if i not in set(single)]
    for name in cfg.targets.baselines:
        if name in builtin:
            labeled[name] = builtin[name]
        elif name in ("best_domain", "best_sweep"):
            pool, what = (single, "single-domain") if name == "best_domain" else (sampled, "sampled")
            if not pool:
                raise DataError(f"targets.baselines {name}: no {what} mixture in the sweep to pick from")
            labeled[name] = sweep[min(pool, key=lambda i: (values[i], i))]
    taken = {m.hash for m in labeled.values()}
    order = [i for i in spread_indices(values[sampled], cfg.targets.num_rank_mixtures + 2)]
    for i in [sampled[j] for j in order]:
        if len([k for k in labeled if k.startswith("sweep:")]) >= cfg.targets.num_rank_mixtures:
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

    labeled: dict[str, Any] = {"regmix": load_schedule(ctx.path("search", "schedule")),
                               "regmix_static": Mixture.load(ctx.path("search", "mixture")), **baselines}
    sweep = _sweep(ctx)
    for rid in run_ids:
        labeled[f"sweep:{rid}"] = sweep.get(rid).schedule
    return labeled


def run_targets(ctx: StageContext) -> StageOutput:
    from ..fileio import atomic_write_json
    from ..runs.sweep.state import read_run_state
    from .confirm import confirmation_note

    cfg: PipelineConfig = ctx.config
    labeled, seeds = compared_mixtures(ctx)
    out_dir = ctx.out / "targets"
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
    target = run_labeled(ctx, out_dir / "target-scale", labeled, seeds, "targets", label="target runs",
                         fraction=(0.15, 1.0))
    runs = {lab: _labeled_run(m, proxy.get(lab), {str(seed): rec for seed, rec in target[lab].items()},
                              ctx.relative(m.save(out_dir / "mixtures" / f"{lab.replace(':', '-')}.json")))
            for lab, m in labeled.items()}  # mixture files: for `regmix-megatron export` / train at scale
    doc = {"format": "regmix-megatron/target-runs/v2", "target": cfg.parsed_target.to_json(), "seeds": cfg.seeds,
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


def _sweep(ctx: StageContext):
    from ..runs.sweep.plan import Sweep

    return Sweep.load(ctx.path("sweep", "sweep_dir"))


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


# ---- evaluate -------------------------------------------------------------------------------------------
def evaluate_inputs(cfg: PipelineConfig) -> dict:
    from ..full_scale.document_evidence import BOOTSTRAP_SEED
    from ..full_scale.document_noise import DEFAULT_NUM_DRAWS

    t = cfg.targets
    return {"target": cfg.parsed_target.to_json(), "rank_threshold": t.rank_threshold,
            "threshold_sd": t.threshold_sd, "document_bootstrap": {"num_draws": DEFAULT_NUM_DRAWS,
                                                                   "seed": BOOTSTRAP_SEED}}


def run_evaluate(ctx: StageContext) -> StageOutput:
    from ..fileio import read_json
    from ..full_scale.evaluation import FILE_NAME, evaluate, verdict_lines, write_evaluation
    from .confirm import confirmation_summary

    cfg: PipelineConfig = ctx.config
    runs = read_json(ctx.path("targets", "runs"))["runs"]
    confirmation = confirmation_summary(ctx)
    # a replaced pick is not the mixture the search predicted: the model predicts it like any other
    replaced = ("regmix",) if confirmation is not None and confirmation.replaced else ()
    predicted, predicted_sd, sources = _evaluation_model_and_sources(ctx, runs, drop_known=replaced)
    evaluation = evaluate(cfg.parsed_target, runs, predicted=predicted, predicted_sd=predicted_sd,
                          confirmation=confirmation,
                          fit={"regressor": ctx.value("fit", "regressor"),
                               "regressor_reason": ctx.value("fit", "regressor_reason"), "cv": ctx.value("fit", "cv"),
                               "noise": ctx.value("fit", "noise")},
                          documents=_run_documents(ctx, runs), document_sources=sources,
                          rank_threshold=cfg.targets.rank_threshold, threshold_sd=cfg.targets.threshold_sd)
    path = write_evaluation(ctx.out / FILE_NAME, evaluation)
    return StageOutput(files={"evaluation": str(path)}, summary="; ".join(verdict_lines(evaluation, short=True)))


def _evaluation_model_and_sources(ctx: StageContext, runs: dict, *, drop_known: tuple[str, ...] = ()
                                  ) -> tuple[dict, dict, dict]:
    """Every compared mixture's prediction by the model the search used (the search's own where it made one, but
    for the labels in ``drop_known``), and the source of every test document of each domain that records them
    (``domains.json``)."""
    from ..data.manifest import DomainRegistry
    from ..full_scale.evaluation import REPORT_SPLIT
    from ..full_scale.predictions import predict_compared
    from ..mixtures.schedule import feature_names
    from ..regression.fitting import find_model
    from ..regression.models import load_regressor

    registry = DomainRegistry.load(ctx.path("indexed", "domains"))
    names, fractions = list(registry.names), phase_fractions(ctx.config)
    model = load_regressor(find_model(ctx.path("fit", "metrics").parent, ctx.value("fit", "regressor"),
                                      ctx.value("fit", "target")),
                           domains=feature_names(names, len(fractions)), source=str(ctx.path("indexed", "domains")))
    search = ctx.upstream("search")["values"]
    known = {k: v for k, v in search["predicted"].items() if k not in drop_known}
    known_sd = {k: v for k, v in (search.get("predicted_sd") or {}).items() if k not in drop_known}
    predicted, predicted_sd = predict_compared(runs, model.predict_with_sd, names, fractions,
                                               known=known, known_sd=known_sd)
    sources = {d.name: s for d in registry.domains if (s := d.document_sources(REPORT_SPLIT)) is not None}
    return predicted, predicted_sd, sources


def _run_documents(ctx: StageContext, runs: dict) -> dict:
    """Label -> each target-scale run's ``document_losses.json`` (None for a run without one), in seed order."""
    from ..runs.document_losses import read_document_losses_or_none

    return {lab: [read_document_losses_or_none(ctx.resolve(rec["run_dir"])) if rec.get("run_dir") else None
                  for _, rec in sorted(run["target"].items(), key=lambda kv: int(kv[0]))]
            for lab, run in runs.items()}


# ---- report ---------------------------------------------------------------------------------------------
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
        target=cfg.parsed_target, target_runs=read_json(ctx.path("targets", "runs")), runs_root=ctx.out)
    return StageOutput(files={"report": str(path), "figures": str(png_dir)}, summary=path.name,
                       values=numbers_for_log(evaluation))


# ---- estimates (seconds on 2 cores; they only weight the progress bar) -----------------------------------
def _estimate_corpus(cfg: PipelineConfig) -> float:
    return 90.0 if cfg.corpus.source == "build" else 1.0


def _estimate_tokenizer(cfg: PipelineConfig) -> float:
    return 1.0 if cfg.tokenizer.model else (15.0 if cfg.corpus.source == "build" else 3.0)


def _estimate_indexed(cfg: PipelineConfig) -> float:
    if cfg.corpus.source == "build":
        return 8 * cfg.corpus.max_mb * 1.2 / cfg.preprocess.workers
    return 5.0


#: Achieved fp32 FLOP/s of one single-thread training process here (rough, from the notes; only for the ETA).
_FLOPS_PER_S = 2.5e10
#: Fixed cost of a run (process start, megatron import, dataset index building), seconds.
_RUN_OVERHEAD_S = 12.0


def estimate_run_s(cfg: PipelineConfig, which: str) -> float:
    """Rough seconds of one ``proxy`` or ``targets`` run (6 x params x tokens at a fixed FLOP rate)."""
    recipe = run_recipe(cfg, which)
    m = recipe.model
    vocab = m.vocab_size or cfg.tokenizer.vocab_size
    params = m.num_layers * (4 * m.hidden_size ** 2 + 3 * m.hidden_size * m.ffn_hidden_size) + \
        2 * vocab * m.hidden_size
    return _RUN_OVERHEAD_S + 6.0 * params * recipe.num_train_tokens / _FLOPS_PER_S


def _estimate_sweep(cfg: PipelineConfig) -> float:
    num = cfg.sample.num_samples + cfg.proxy.noise_mixtures * cfg.proxy.noise_seeds
    return num * estimate_run_s(cfg, "proxy") / cfg.executor.num_parallel


def _estimate_search(cfg: PipelineConfig) -> float:
    return 2.0 + cfg.search.num_candidates / 300_000.0


def _estimate_targets(cfg: PipelineConfig) -> float:
    from .config import SEEDED_BASELINES

    seeded = 1 + sum(1 for b in cfg.targets.baselines if b in SEEDED_BASELINES) + (cfg.schedule_fractions is not None)
    once = len(cfg.targets.baselines) + 1 - seeded + cfg.targets.num_rank_mixtures
    proxy = seeded * estimate_run_s(cfg, "proxy")
    target = (seeded * cfg.targets.seeds + once) * estimate_run_s(cfg, "targets")
    return (proxy + target) / cfg.executor.num_parallel


def build_stages() -> list[Stage]:
    """The pipeline's stages in order."""
    from .confirm import confirm_inputs, estimate_confirm_s, run_confirm

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
        Stage("targets", targets_inputs, run_targets, ("indexed", "sweep", "search", "confirm"), _estimate_targets,
              "RegMix (as confirmed) + baselines (+ sweep mixtures) at target scale, and at proxy scale"),
        Stage("evaluate", evaluate_inputs, run_evaluate, ("indexed", "fit", "search", "confirm", "targets"),
              lambda cfg: 1.0, "target comparison and rank invariance -> evaluation.json"),
        Stage("report", lambda cfg: {}, run_report, STAGE_NAMES[:-1], lambda cfg: 5.0,
              "one HTML report with the pipeline view and the regression plots"),
    ]


STAGE_NAMES = ("corpus", "tokenizer", "indexed", "sample", "sweep", "fit", "search", "confirm", "targets",
               "evaluate", "report")

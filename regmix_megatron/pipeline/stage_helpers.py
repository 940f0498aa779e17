"""What the stage modules share: the stage names, the guard that clears a stage's own output, the checked domain
registry, and a batch of training runs (planned as a sweep, launched with the configured executor)."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from ..errors import RegmixError
from .config import PipelineConfig, RunScale, run_recipe
from .framework import StageContext

log = logging.getLogger(__name__)


STAGE_NAMES = ("corpus", "tokenizer", "indexed", "sample", "sweep", "fit", "search", "confirm", "full_scale",
               "evaluate", "report")


def _clear(path: Path, out: Path) -> None:
    """Remove a stage's own output directory (only ever inside OUT) before it is rebuilt."""
    path = path.resolve()
    if out.resolve() not in path.parents:
        raise RegmixError(f"refusing to delete {path}: not inside the output directory {out}")
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()


def _registry(ctx: StageContext):
    """The registry of the indexed stage, its files checked (a stage never trains or samples on damaged data)."""
    from ..data.manifest import DomainRegistry

    registry = DomainRegistry.load(ctx.path("indexed", "domains"))
    registry.verify_files()
    return registry


def verify_complete(files: dict[str, Path], key: str) -> None:
    """A stage's check before it is skipped: the output folder of its ``key`` file is complete (its
    ``outputs.json``, written last, lists every file): a folder an interrupted or older write left is redone."""
    from ..output_folder import read_outputs

    read_outputs(files[key].parent, "stage output folder")


def is_single_domain(mixture) -> bool:
    return len(mixture.nonzero()) == 1


def target_train_tokens(cfg: PipelineConfig) -> int:
    """Token budget of one target run (what the epoch caps of the sampler refer to)."""
    return run_recipe(cfg, "full_scale").num_train_tokens


def resolved_train_inputs(cfg: PipelineConfig, which: RunScale) -> dict:
    """A section's fully resolved recipe (preset merged in; no paths): a change to a preset's content counts as
    a change of the stage's inputs, as it changes the sweep's run ids."""
    return run_recipe(cfg, which).to_dict()


def run_batch(ctx: StageContext, root: Path, mixtures, which: RunScale, *, label: str, fraction: tuple[float, float]
              = (0.0, 1.0), max_failed_fraction: float = 0.0, seeds=None):
    """Plan and launch a set of runs as a sweep in ``root``; return (sweep, run id -> result of finished runs).

    ``which`` names the recipe (``proxy`` or ``full_scale``); ``seeds`` (one per mixture; default the pipeline's
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
        options = cfg.executor.slurm
    launch(sweep, options, on_progress=report)


def _sweep(ctx: StageContext):
    from ..runs.sweep.plan import Sweep

    return Sweep.load(ctx.path("sweep", "sweep_dir"))


#: Achieved fp32 FLOP/s of one single-thread training process here (rough, from the notes; only for the ETA).
_FLOPS_PER_S = 2.5e10


#: Fixed cost of a run (process start, megatron import, dataset index building), seconds.
_RUN_OVERHEAD_S = 12.0


def estimate_run_s(cfg: PipelineConfig, which: RunScale) -> float:
    """Rough seconds of one ``proxy`` or ``full_scale`` run (6 x params x tokens at a fixed FLOP rate)."""
    recipe = run_recipe(cfg, which)
    m = recipe.model
    vocab = m.vocab_size or cfg.tokenizer.vocab_size
    params = m.num_layers * (4 * m.hidden_size ** 2 + 3 * m.hidden_size * m.ffn_hidden_size) + \
        2 * vocab * m.hidden_size
    return _RUN_OVERHEAD_S + 6.0 * params * recipe.num_train_tokens / _FLOPS_PER_S

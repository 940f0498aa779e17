"""The ``confirm`` stage: the confirmation round between the search and the target runs.

The search's pick is a prediction; the sweep measured mixtures too. The round trains the few best distinct
candidates (:func:`regmix_megatron.full_scale.confirmation.choose_candidates`: the pick, the search's top-1
candidate, the best single-domain and the best sampled sweep mixtures) at proxy scale with ``confirm.seeds`` seeds,
scores each on the validation split of the target, and lets
:func:`~regmix_megatron.full_scale.confirmation.decide` hand on the pick, or a measured candidate better beyond
noise. A candidate's run that the sweep already finished (same mixture, seed and recipe) is reused; the others train
in ``OUT/confirm/proxy-scale/``, a sweep of its own, so a killed round resumes with its finished runs kept.

Writes ``OUT/confirm/confirmation.json`` (:mod:`regmix_megatron.full_scale.confirmation` owns it) and
``OUT/confirm/mixture.json`` (the confirmed mixture, which the target runs train as ``regmix``). Skipped, handing
the search's pick on, when ``confirm.enabled`` is false or the pipeline searches schedules.

The stages module registers the stage and hands it the way proxy runs are trained (its ``run_batch``), so this
module does not import it.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable

from ..errors import DataError
from .config import PipelineConfig, run_recipe
from .framework import StageContext, StageOutput

log = logging.getLogger(__name__)

#: The round's folder under the pipeline's output directory.
CONFIRM_DIR = "confirm"
#: The confirmed mixture the target runs train as ``regmix``.
MIXTURE_FILE = "mixture.json"


#: ``run_batch(ctx, root, mixtures, "proxy", label=..., seeds=...) -> (sweep, results)``: plan and train runs as a
#: sweep in ``root``, finished ones skipped (``stages.run_batch``).
RunBatch = Callable[..., Any]


def confirm_inputs(cfg: PipelineConfig) -> dict:
    """What changes the round's outcome: its own section, the resolved proxy recipe (a change of a preset's content
    changes the run ids), the seed and the target."""
    c = cfg.confirm
    if not c.enabled or cfg.schedule_fractions is not None:
        return {"enabled": False}
    return {"enabled": True, "seeds": c.seeds, "num_domains": c.num_domains, "num_sweep": c.num_sweep,
            "threshold_sd": c.threshold_sd, "proxy": run_recipe(cfg, "proxy").to_dict(), "seed": cfg.seed,
            "target": cfg.target.to_json()}


def skip_reason(cfg: PipelineConfig) -> str | None:
    """Why the round does not run (None: it runs)."""
    if not cfg.confirm.enabled:
        return "confirm.enabled is false: the search's pick goes to the target runs unconfirmed"
    if cfg.schedule_fractions is not None:
        return ("schedule.phases is given: the round compares static mixtures (single domains, sweep mixtures), "
                "so the search's schedule goes to the target runs unconfirmed")
    return None


def candidate_seeds(cfg: PipelineConfig) -> list[int]:
    return [cfg.seed + i for i in range(cfg.confirm.seeds)]


def confirm_candidates(ctx: StageContext) -> dict:
    """Label -> candidate mixture (:func:`choose_candidates` over the search's outputs and the sweep's results on
    the validation split)."""
    from ..data.manifest import DomainRegistry
    from ..full_scale.confirmation import choose_candidates
    from ..mixtures.mixture import Mixture
    from ..regression.data import load_results_table
    from ..search.outputs import read_top1

    cfg: PipelineConfig = ctx.config
    names = list(DomainRegistry.load(ctx.path("indexed", "domains")).names)
    pick = Mixture.load(ctx.path("search", "mixture"))
    top1 = read_top1(ctx.path("search", "top_k"), names)
    table = load_results_table(ctx.path("sweep", "results"))
    planned = {r.run_id: r.mixture for r in _sweep(ctx).runs}
    sweep = [planned[rid] for rid in table.run_ids]
    return choose_candidates(pick, top1, sweep, table.values_of(cfg.target).tolist(),
                             [len(m.nonzero()) == 1 for m in sweep], list(table.run_ids),
                             num_domains=cfg.confirm.num_domains, num_sweep=cfg.confirm.num_sweep)


def _sweep(ctx: StageContext):
    from ..runs.sweep.plan import Sweep

    return Sweep.load(ctx.path("sweep", "sweep_dir"))


def measured_runs(ctx: StageContext, candidates: dict, seeds: list[int],
                  run_batch: RunBatch) -> dict[str, dict[int, Path]]:
    """Label -> seed -> a finished proxy run's directory: the sweep's run of that mixture and seed where it has
    one, else a run of the round's own sweep (trained now; finished ones are kept across a kill)."""
    from ..runs.sweep.state import DONE, read_run_state

    sweep = _sweep(ctx)
    finished = {(r.schedule.hash, r.seed): sweep.run_dir(r.run_id) for r in sweep.runs
                if read_run_state(sweep.run_dir(r.run_id)).status == DONE}
    missing: dict[tuple[str, int], Any] = {}
    for m in candidates.values():
        for seed in seeds:
            if (m.hash, seed) not in finished:
                missing.setdefault((m.hash, seed), m)
    if missing:
        pairs = list(missing)
        own, _ = run_batch(ctx, ctx.out / CONFIRM_DIR / "proxy-scale", [missing[p] for p in pairs], "proxy",
                           label="confirmation runs", seeds=[seed for _, seed in pairs])
        finished.update({(r.schedule.hash, r.seed): own.run_dir(r.run_id) for r in own.runs})
    return {label: {seed: finished[(m.hash, seed)] for seed in seeds} for label, m in candidates.items()}


def selection_losses(run_dirs: dict[str, dict[int, Path]], target) -> tuple[dict, dict | None]:
    """Label -> seed -> the target loss on the validation split; and label -> the runs' per-document losses on it
    (None when a run has no ``document_losses.json``: then only the seed noise counts)."""
    from ..full_scale.confirmation import SPLIT
    from ..full_scale.evaluation import target_loss
    from ..runs.document_losses import read_document_losses
    from ..runs.run_dir import DOCUMENT_LOSSES_FILE
    from ..runs.sweep.state import read_run_state

    losses = {label: {seed: target_loss(read_run_state(d).result, target, SPLIT) for seed, d in dirs.items()}
              for label, dirs in run_dirs.items()}
    paths = [d / DOCUMENT_LOSSES_FILE for dirs in run_dirs.values() for d in dirs.values()]
    if not all(p.is_file() for p in paths):
        log.warning("confirmation: some runs have no %s; the comparison counts the seed noise only",
                    DOCUMENT_LOSSES_FILE)
        return losses, None
    documents = {label: [read_document_losses(d).splits.get(SPLIT, {}) for d in dirs.values()]
                 for label, dirs in run_dirs.items()}
    return losses, documents


def run_confirm(ctx: StageContext, run_batch: RunBatch) -> StageOutput:
    from ..full_scale.confirmation import CandidateRuns, Confirmation, FILE_NAME, SPLIT, decide, write_confirmation

    cfg: PipelineConfig = ctx.config
    reason = skip_reason(cfg)
    if reason is not None:
        log.info("confirm: skipped: %s", reason)
        return StageOutput(files={"mixture": str(ctx.path("search", "mixture"))}, values={"skipped": reason},
                           summary=f"skipped: {reason}")
    candidates = confirm_candidates(ctx)
    seeds = candidate_seeds(cfg)
    run_dirs = measured_runs(ctx, candidates, seeds, run_batch)
    losses, documents = selection_losses(run_dirs, cfg.target)
    try:
        decision = decide(losses, documents, cfg.target, threshold_sd=cfg.confirm.threshold_sd, seed=cfg.seed)
    except DataError as exc:
        raise DataError(f"confirm: {exc}") from None
    runs = tuple(CandidateRuns(label, m.as_dict(), m.hash, {s: ctx.relative(d) for s, d in run_dirs[label].items()})
                 for label, m in candidates.items())
    record = Confirmation(target=cfg.target, split=SPLIT, seeds=tuple(seeds), candidates=runs,
                          decision=decision)
    out_dir = ctx.out / CONFIRM_DIR
    path = write_confirmation(out_dir / FILE_NAME, record)
    mixture = candidates[decision.chosen].save(out_dir / MIXTURE_FILE)  # atomic
    return StageOutput(files={"confirmation": str(path), "mixture": str(mixture)},
                       values={"chosen": decision.chosen, "replaced": decision.replaced, "reason": decision.reason},
                       summary=summary_line(record))


def summary_line(record) -> str:
    """One line: how many candidates, and which one goes on."""
    d = record.decision
    n = len(record.candidates)
    pick = d.outcome("regmix").mean
    if d.replaced:
        return (f"{n} candidates x {len(record.seeds)} seeds: {d.chosen} ({d.outcome(d.chosen).mean:.4f}) "
                f"replaces the search's pick ({pick:.4f})")
    return f"{n} candidates x {len(record.seeds)} seeds: the search's pick stands ({pick:.4f})"


def estimate_confirm_s(cfg: PipelineConfig, run_s: float) -> float:
    """Rough seconds, from one proxy run's (``run_s``): every candidate with every seed but the pipeline's for the
    sweep's mixtures (the sweep has those)."""
    if skip_reason(cfg) is not None:
        return 1.0
    num = (2 + cfg.confirm.num_domains + cfg.confirm.num_sweep) * cfg.confirm.seeds - cfg.confirm.num_domains \
        - cfg.confirm.num_sweep
    return num * run_s / cfg.executor.num_parallel


def confirmed_pick(ctx: StageContext):
    """The mixture the target runs train as ``regmix``: the confirmed one (the search's pick when the round was
    skipped or let it stand)."""
    from ..mixtures.mixture import Mixture

    return Mixture.load(ctx.path("confirm", "mixture"))


def confirmation_note(ctx: StageContext) -> dict | None:
    """For ``runs.json`` and the printed output: ``{chosen, replaced, reason}``, or None when skipped."""
    values = ctx.upstream("confirm")["values"]
    if "skipped" in values:
        return None
    return {"chosen": values["chosen"], "replaced": values["replaced"], "reason": values["reason"]}


def confirmation_summary(ctx: StageContext):
    """The round for ``evaluation.json`` (:class:`~regmix_megatron.full_scale.evaluation.ConfirmationSummary`), or
    None when it was skipped."""
    from ..full_scale.confirmation import read_confirmation
    from ..full_scale.evaluation import ConfirmationSummary

    files = ctx.upstream("confirm")["files"]
    if "confirmation" not in files:
        return None
    return ConfirmationSummary.from_confirmation(read_confirmation(files["confirmation"]))

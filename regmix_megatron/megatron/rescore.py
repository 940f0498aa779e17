"""Score a finished run again, without training: its last checkpoint on another split, other domains, more tokens
or evaluation-only domains rebuilt since.

:func:`score_run` is what ``regmix-megatron evaluate RUN_DIR`` runs: it reads the run's ``config.yaml``, checks
that the newest checkpoint belongs to this run (its recorded run id), loads only the model weights into a
model built from the run's recipe, and evaluates the fixed windows of ``split`` (the same windows, for the same
data and sizes, as the trainer's evaluation; or ``num_tokens`` per domain, ``all`` for the whole split) for the
run's evaluated domains or the ones asked for, with their per-document losses. The result is written atomically
to ``RUN_DIR/evaluations/<split>.json``; nothing else in the run directory changes.

**New evaluation data** (``domains_json``): a ``domains.json`` whose evaluation-only domains were rebuilt (other
splits, other documents, new domains) scores the run on them, provided it holds exactly the data the run trained
on: the same tokenizer and the same training domains with the same prefixes' document and token counts. What the
run trained on is known from its own ``domains.json`` (``config.yaml``'s, when it still gives the checkpoint's run
id) or from the ``data_identity`` its ``result.json`` records (when that gives it); anything else is refused,
naming why.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

from ..errors import DataError
from ..fileio import read_json
from ..hashing import content_hash
from ..data.manifest import DomainRegistry
from ..runs.run_config import (
    ResolvedRun,
    RunConfig,
    data_identity,
    evaluated_domains,
    run_identity,
    training_data_differences,
)
from ..runs.run_dir import EVALUATION_FORMAT as FORMAT
from ..runs.run_dir import RunDir, has_config, read_result, read_run_config, write_evaluation

log = logging.getLogger(__name__)


def score_run(run_dir: str | Path, *, split: str = "test", domains: Sequence[str] | None = None,
              num_tokens_per_domain: int | str | None = None, domains_json: str | Path | None = None) -> dict:
    """Evaluate the newest checkpoint of ``run_dir`` on ``split``; returns (and writes) the evaluation record.

    ``num_tokens_per_domain``: tokens per scored domain (``all``: the whole split; None: the run's own eval sizes).
    ``domains_json``: score on this ``domains.json`` instead of the run's own (see the module's docstring)."""
    import torch.distributed as dist

    from . import checkpoint as ckpt
    from .validation import build_validation_set
    from .train import _Run, configure_threads, init_distributed

    run_dir = Path(run_dir)
    if not has_config(run_dir):
        raise DataError(f"{run_dir}: no {RunDir(run_dir).config.name}: not a run directory written by "
                        "`regmix-megatron train`")
    config = read_run_config(run_dir)
    recipe = config.recipe
    if split not in ("train", "valid", "test"):
        raise DataError(f"--split {split!r}: use train, valid or test")
    configure_threads(recipe)
    init_distributed(recipe.parallel.tensor_model_parallel_size, recipe.parallel.pipeline_model_parallel_size,
                     timeout_minutes=recipe.parallel.distributed_timeout_minutes)
    path = ckpt.latest_checkpoint(run_dir, tp_size=recipe.parallel.tensor_model_parallel_size,
                                  pp_size=recipe.parallel.pipeline_model_parallel_size)
    if path is None:
        raise DataError(f"{run_dir}: no checkpoint to evaluate (the run saved none: checkpoint.save false, or it "
                        "never reached one); train it again with checkpoint.save true to score it on another split")
    meta = read_json(path / ckpt.META_FILE)
    resolved = _resolve_scored_data(config, run_dir, str(meta.get("run_id")), domains_json, where=str(path))
    registry = resolved.registry
    names = list(domains) if domains else list(evaluated_domains(recipe, registry))
    unknown = sorted(set(names) - set(registry.all_names))
    if unknown:
        raise DataError(f"--domains {unknown}: not in {registry.path}; domains: {list(registry.all_names)}")
    run = _Run(recipe, seed=config.seed, output_dir=run_dir)
    run.registry, run.mixture, run.run_id = registry, resolved.mixture, str(meta["run_id"])
    run.build_model_and_optimizer(recipe.model.vocab_size or registry.tokenizer.vocab_size)
    run.model.module.load_state_dict(ckpt.load_shard(path, run.tp_rank, run.pp_rank)["model"])
    sizes = {name: num_tokens_per_domain or recipe.eval.num_tokens_for(name, split) for name in names}
    windows = build_validation_set(registry, seq_length=recipe.model.seq_length, split=split, domains=names,
                                   num_tokens_per_domain=recipe.eval.num_tokens_per_domain,
                                   num_tokens_by_domain=sizes)
    evaluation = run.evaluate(windows)
    doc = {"format": FORMAT, "run_id": run.run_id, "step": int(meta["step"]),
           "final": int(meta["step"]) == recipe.optim.train_steps, "split": split, "loss": dict(evaluation.loss),
           "num_tokens": windows.num_tokens, "num_documents": windows.num_documents,
           "num_tokens_asked": sizes, "data": content_hash(data_identity(registry)),
           "documents": {name: d.to_json_obj() for name, d in evaluation.documents.items()}}
    if domains_json is not None:
        doc["domains_json"] = str(Path(registry.path).resolve())
    if dist.get_rank() == 0:
        write_evaluation(run_dir, split, doc)
    return doc


def _resolve_scored_data(config: RunConfig, run_dir: Path, run_id: str, domains_json, *, where: str) -> ResolvedRun:
    """The run resolved on the data it is scored on: its own ``domains.json``, checked to give the checkpoint's
    ``run_id``; or ``domains_json``, checked to hold the data the run trained on (only evaluation-only domains may
    differ)."""
    if domains_json is None:
        resolved = config.resolve()
        if resolved.run_id != run_id:
            raise DataError(
                f"{where}: checkpoint of run {run_id}, but {run_dir}/config.yaml with {resolved.registry.path} is run "
                f"{resolved.run_id}: the run directory was edited, or that domains.json changed since training. "
                "Evaluate the run the checkpoint belongs to; to score it on rebuilt evaluation-only domains, keep "
                "the domains.json it trained on where config.yaml says and pass the new one with --domains-json")
        return resolved
    new = DomainRegistry.load(domains_json)
    new.verify_files()
    on_new = config.replace(domains=str(Path(new.path).resolve()))
    problems = training_data_differences(_trained_data(config, run_dir, run_id, on_new), data_identity(new))
    if problems:
        raise DataError(f"--domains-json {domains_json}: not the data run {run_id} trained on: {'; '.join(problems)}. "
                        "Only evaluation-only domains may change; score the run on the data it trained on")
    return on_new.resolve()


def _trained_data(config: RunConfig, run_dir: Path, run_id: str, on_new: RunConfig) -> dict:
    """The :func:`data_identity` of what run ``run_id`` trained on: its ``domains.json``'s if that gives
    ``run_id``, else the one its ``result.json`` records if that does."""
    reasons = []
    try:
        own = config.resolve()
        if own.run_id == run_id:
            return data_identity(own.registry)
        reasons.append(f"{own.registry.path} gives run {own.run_id}")
    except DataError as exc:  # missing or unreadable: the record in result.json may still tell
        reasons.append(str(exc))
    result_path = RunDir(run_dir).result
    recorded = read_result(run_dir).data_identity if result_path.is_file() else None
    if not isinstance(recorded, dict):
        reasons.append(f"{result_path} records no data_identity")
        recorded = None
    try:
        resolved = on_new.resolve() if recorded is not None else None
    except DataError as exc:  # the run's mixture does not fit the new domains.json's training domains
        reasons.append(str(exc))
        resolved = None
    if resolved is not None:
        if content_hash(run_identity(config.recipe, recorded, resolved.schedule, config.seed)) == run_id:
            return recorded
        reasons.append(f"{result_path}'s data_identity does not give run {run_id}")
    raise DataError(f"{run_dir}: cannot tell what data run {run_id} trained on ({'; '.join(reasons)}), so a new "
                    "domains.json cannot be checked against it: restore the domains.json the run trained on")

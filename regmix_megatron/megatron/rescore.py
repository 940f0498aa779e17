"""Score a finished run again, without training: its last checkpoint on another split or other domains.

:func:`score_run` is what ``regmix-megatron evaluate RUN_DIR`` runs: it reads the run's ``config.yaml``, checks
that the newest checkpoint belongs to this run (its recorded run id), loads only the model weights into a
model built from the run's recipe, and evaluates the fixed windows of ``split`` (the same windows, for the same
data, as the trainer's evaluation) for the run's evaluated domains or the ones asked for. The result is written
atomically to ``RUN_DIR/evaluations/<split>.json``; nothing else in the run directory changes.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

from ..errors import DataError
from ..fileio import atomic_write_json, read_json
from ..run_config import evaluated_domains, load_run_config

log = logging.getLogger(__name__)

FORMAT = "regmix-megatron/run-evaluation/v1"
EVALUATIONS_DIR = "evaluations"


def score_run(run_dir: str | Path, *, split: str = "test", domains: Sequence[str] | None = None,
              num_tokens_per_domain: int | None = None) -> dict:
    """Evaluate the newest checkpoint of ``run_dir`` on ``split``; returns (and writes) the evaluation record."""
    import torch.distributed as dist

    from . import checkpoint as ckpt
    from .evaluation import build_validation_set
    from .train import _Run, configure_threads, init_distributed

    run_dir = Path(run_dir)
    if not (run_dir / "config.yaml").is_file():
        raise DataError(f"{run_dir}: no config.yaml: not a run directory written by `regmix-megatron train`")
    config = load_run_config(run_dir / "config.yaml", output_dir=run_dir)
    recipe = config.recipe
    if split not in ("train", "valid", "test"):
        raise DataError(f"--split {split!r}: use train, valid or test")
    configure_threads(recipe)
    init_distributed(recipe.parallel.tensor_model_parallel_size, recipe.parallel.pipeline_model_parallel_size,
                     timeout_minutes=recipe.parallel.distributed_timeout_minutes)
    resolved = config.resolve()
    path = ckpt.latest_checkpoint(run_dir, tp_size=recipe.parallel.tensor_model_parallel_size,
                                  pp_size=recipe.parallel.pipeline_model_parallel_size)
    if path is None:
        raise DataError(f"{run_dir}: no checkpoint to evaluate (the run saved none: checkpoint.save false, or it "
                        "never reached one); train it again with checkpoint.save true to score it on another split")
    meta = read_json(path / "meta.json")
    if meta.get("run_id") != resolved.run_id:
        raise DataError(f"{path}: checkpoint of run {meta.get('run_id')}, but {run_dir}/config.yaml is run "
                        f"{resolved.run_id}: the directory was edited; evaluate the run the checkpoint belongs to")
    names = list(domains) if domains else list(evaluated_domains(recipe, resolved.registry))
    unknown = sorted(set(names) - set(resolved.registry.all_names))
    if unknown:
        raise DataError(f"--domains {unknown}: not in {resolved.registry.path}; domains: "
                        f"{list(resolved.registry.all_names)}")
    run = _Run(recipe, seed=config.seed, output_dir=run_dir)
    run.registry, run.mixture, run.run_id = resolved.registry, resolved.mixture, resolved.run_id
    run.build_model_and_optimizer(recipe.model.vocab_size or resolved.registry.tokenizer.vocab_size)
    run.model.module.load_state_dict(ckpt.load_shard(path, run.tp_rank, run.pp_rank)["model"])
    windows = build_validation_set(resolved.registry, seq_length=recipe.model.seq_length, split=split,
                                   num_tokens_per_domain=num_tokens_per_domain or recipe.eval.num_tokens_per_domain,
                                   domains=names)
    losses = run.evaluate(windows)
    doc = {"format": FORMAT, "run_id": resolved.run_id, "step": int(meta["step"]),
           "final": int(meta["step"]) == recipe.optim.train_steps, "split": split, "loss": losses,
           "num_tokens": windows.num_tokens}
    if dist.get_rank() == 0:
        atomic_write_json(run_dir / EVALUATIONS_DIR / f"{split}.json", doc)
    return doc

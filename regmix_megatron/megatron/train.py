"""The training loop on megatron-core: GPTModel + pipeline schedules + DDP + Megatron optimizer.

:func:`run_training` is the Python API (the ``regmix-megatron train`` command and the sweep call it). It can
be called several times in one process: the process group and megatron's parallel state are initialized once
(on first use) and reused; models/optimizers are freed between runs.

Device: one :class:`~regmix_megatron.megatron.device.Device` per process (``device.current()``: GPU
``LOCAL_RANK`` under torchrun, else the CPU). The model, every micro-batch (training and evaluation) and every
buffer we hand to a collective are placed through it.

Distributed: under ``torchrun`` (``WORLD_SIZE``/``RANK`` set) the default process group is initialized with
the device's backend, ``nccl`` on GPU and ``gloo`` on CPU; without it, a one-rank group on a private file store.
Tensor and pipeline sizes come from ``parallel``; data parallel is ``world_size / (tp * pp)``.

Threads: ``torch.set_num_threads`` gets ``parallel.num_threads`` if set, else ``$SLURM_CPUS_PER_TASK`` divided
by the ranks per node (``LOCAL_WORLD_SIZE``), else torch's default (torchrun sets ``OMP_NUM_THREADS=1``
unless you set it).
"""

from __future__ import annotations

import gc
import logging
import math
import os
import random
import tempfile
import time
from functools import partial
from pathlib import Path

import numpy as np
import torch

from ..runs.document_losses import DocumentLosses, RunDocumentLosses
from ..errors import ConfigError
from ..fileio import read_json, set_aside
from ..data.manifest import DomainRegistry
from ..mixtures.mixture import Mixture
from ..runs import run_dir as run_files
from ..runs.recipe import DEFAULT_TIMEOUT_MINUTES, Recipe
from ..runs.run_dir import RunDir, RunProgress, RunStatus
from ..runs.run_config import ResolvedRun, RunConfig, evaluation_num_tokens
from ..mixtures.schedule import Schedule
from ..regression.target import Target
from . import checkpoint as ckpt
from . import device as devices
from . import shims
from .validation import SplitEvaluation, ValidationSet, build_validation_set, iterate_eval_batches, num_eval_batches
from .model import (
    build_model,
    compiled_fusions_unavailable_reason,
    count_model_parameters,
    plan_model,
    transformer_engine_importable,
)

log = logging.getLogger(__name__)

EXIT_DIVERGED = 3


# ---- process setup ---------------------------------------------------------------------------------------

_STORE_DIR: tempfile.TemporaryDirectory | None = None


def init_distributed(tp_size: int, pp_size: int, timeout_minutes: int = DEFAULT_TIMEOUT_MINUTES) -> None:
    """Initialize the default process group (once) and megatron's parallel state (re-done if sizes change).

    ``timeout_minutes`` (``parallel.distributed_timeout_minutes``): how long a collective may wait for the other
    ranks before the process group gives up, e.g. while rank 0 alone builds the datasets' index files. It is set
    when the group is created: the first run of a process decides it."""
    import datetime

    import torch.distributed as dist
    from megatron.core import parallel_state

    global _STORE_DIR
    shims.apply_cpu_shims()
    launched = "WORLD_SIZE" in os.environ and "RANK" in os.environ
    dev = devices.select(int(os.environ.get("LOCAL_RANK", "0")) if launched else None)
    if not dist.is_initialized():
        timeout = datetime.timedelta(minutes=timeout_minutes)
        if launched:
            dist.init_process_group(backend=dev.backend, timeout=timeout)
        else:
            _STORE_DIR = tempfile.TemporaryDirectory(prefix="regmix-pg-")
            store = dist.FileStore(os.path.join(_STORE_DIR.name, "store"), 1)
            dist.init_process_group(backend=dev.backend, store=store, rank=0, world_size=1, timeout=timeout)
    if (dev.is_cuda and tp_size > 1 and dev.capability < (10, 0)
            and os.environ.get("CUDA_DEVICE_MAX_CONNECTIONS") != "1" and dist.get_rank() == 0):
        log.warning("tensor parallel on %s (compute capability %d.%d) without CUDA_DEVICE_MAX_CONNECTIONS=1: "
                    "tensor-parallel communication is not scheduled ahead of the compute it should overlap "
                    "(slower, still correct); export CUDA_DEVICE_MAX_CONNECTIONS=1 before launching", dev.name,
                    *dev.capability)
    world = dist.get_world_size()
    if world % (tp_size * pp_size) != 0:
        raise ConfigError(
            f"parallel.tensor_model_parallel_size={tp_size} x pipeline_model_parallel_size={pp_size} does not "
            f"divide the world size {world}: launch tp*pp*dp processes (torchrun --nproc-per-node N)")
    if parallel_state.model_parallel_is_initialized():
        if (parallel_state.get_tensor_model_parallel_world_size() == tp_size
                and parallel_state.get_pipeline_model_parallel_world_size() == pp_size):
            return
        parallel_state.destroy_model_parallel()
    parallel_state.initialize_model_parallel(tensor_model_parallel_size=tp_size,
                                             pipeline_model_parallel_size=pp_size)


def configure_threads(cfg: Recipe) -> int:
    n = cfg.parallel.num_threads
    if n is None and os.environ.get("SLURM_CPUS_PER_TASK"):
        local = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
        n = max(1, int(os.environ["SLURM_CPUS_PER_TASK"]) // max(1, local))
    if n is not None:
        torch.set_num_threads(n)
    return torch.get_num_threads()


# ---- data ------------------------------------------------------------------------------------------------

def build_train_dataset(cfg: Recipe, registry: DomainRegistry, schedule: Schedule, tokenizer, *, seed: int):
    """The run's train set of ``schedule`` (a static run: its mixture's, megatron-core's blend; phases start on
    steps; docs/SCHEDULES.md): :func:`regmix_megatron.megatron.train_dataset.build_train_dataset`."""
    from .datasets import DatasetOptions
    from .train_dataset import build_train_dataset as build

    return build(registry, schedule, num_samples=cfg.optim.train_steps * cfg.optim.global_batch_size,
                 options=DatasetOptions(seq_length=cfg.model.seq_length, seed=seed, tokenizer=tokenizer),
                 global_batch_size=cfg.optim.global_batch_size)


def load_run_tokenizer(registry: DomainRegistry):
    from .tokenizer_adapter import load_registry_tokenizer

    return load_registry_tokenizer(registry)


def _to_tensor(x, dtype):
    if isinstance(x, torch.Tensor):
        return x.to(dtype)
    return torch.as_tensor(np.asarray(x), dtype=dtype)


def collate(samples: list) -> dict:
    """Stack GPTDataset samples (dicts with tokens/labels/loss_mask/position_ids) into a micro-batch."""
    out = {}
    for key, dtype in (("tokens", torch.long), ("labels", torch.long), ("loss_mask", torch.float32),
                       ("position_ids", torch.long)):
        out[key] = torch.stack([_to_tensor(s[key], dtype) for s in samples])
    return out


class StepBatches:
    """Deterministic micro-batches for one optimizer step: sample indices depend only on (step, dp rank)."""

    def __init__(self, dataset, *, global_batch_size: int, micro_batch_size: int, dp_rank: int, dp_size: int):
        self.dataset = dataset
        self.global_batch_size = global_batch_size
        self.micro_batch_size = micro_batch_size
        self.dp_rank = dp_rank
        self.per_rank = global_batch_size // dp_size
        self.num_microbatches = self.per_rank // micro_batch_size

    def for_step(self, step: int):
        start = step * self.global_batch_size + self.dp_rank * self.per_rank
        for j in range(self.num_microbatches):
            lo = start + j * self.micro_batch_size
            yield collate([self.dataset[i] for i in range(lo, lo + self.micro_batch_size)])


# ---- forward / loss ----------------------------------------------------------------------------------------

def _loss_func(loss_mask: torch.Tensor, output_tensor: torch.Tensor):
    """The micro-batch's mean token loss, and for the reductions its sum, its token count and the per-token losses
    ``[micro_batch, seq]`` (complete on every tensor-parallel rank: the vocab-parallel cross entropy reduces over
    the tensor-parallel group; evaluation attributes them to documents)."""
    losses = output_tensor.float()
    mask = loss_mask.float()
    loss_sum = torch.sum(losses * mask)
    count = mask.sum()
    loss = loss_sum / count.clamp(min=1.0)
    return loss, {"loss_sum": loss_sum.detach(), "count": count.detach(), "token_losses": losses.detach()}


def _forward_step(device, data_iterator, model):
    """megatron's forward step (bind ``device`` with ``partial``): the micro-batch, built on the CPU, is moved
    to the model's device here, for training and evaluation alike."""
    batch = device.place_batch(next(data_iterator))
    output = model(batch["tokens"], batch["position_ids"], None, labels=batch["labels"])
    return output, partial(_loss_func, batch["loss_mask"])


def _reduce_sums(stores: list, device) -> tuple[float, float]:
    """(loss_sum, token_count) over the micro-batches of the last pipeline stage, summed over all ranks of
    the last stage's data-parallel group (other ranks contribute zeros) and shared with every rank."""
    import torch.distributed as dist
    from megatron.core import parallel_state

    t = device.collective_tensor([0.0, 0.0], dtype=torch.float64)
    if parallel_state.is_pipeline_last_stage() and parallel_state.get_tensor_model_parallel_rank() == 0:
        for s in stores:
            t[0] += s["loss_sum"].to(t.device)
            t[1] += s["count"].to(t.device)
    dist.all_reduce(t)
    return float(t[0]), float(t[1])


def _document_sums(stores: list, tokens, device) -> DocumentLosses:
    """Per-document losses of one domain's evaluation (:func:`.evaluation.document_losses`), computed on the last
    pipeline stage's first tensor- and data-parallel rank (every data-parallel rank scores every window) and
    shared with every rank; the token counts follow from the windows alone."""
    import torch.distributed as dist
    from megatron.core import parallel_state

    num_documents = len(tokens.document_ends)
    t = device.collective_tensor([0.0] * num_documents, dtype=torch.float64)
    if (parallel_state.is_pipeline_last_stage() and parallel_state.get_tensor_model_parallel_rank() == 0
            and parallel_state.get_data_parallel_rank() == 0):
        token_losses = torch.cat([s["token_losses"] for s in stores]).to("cpu", torch.float32).numpy()
        t += torch.from_numpy(tokens.document_loss_sums(token_losses)).to(t.device)
    dist.all_reduce(t)
    return DocumentLosses(loss_sum=t.cpu().numpy(), num_tokens=tokens.document_num_tokens())


# ---- the run ---------------------------------------------------------------------------------------------

class _Run:
    """State of one training run on this rank. ``cfg`` is the run's recipe (model, optim, eval, ...); ``seed``,
    ``out`` and, once built, ``registry``, ``mixture`` and ``run_id`` are the run's own."""

    def __init__(self, recipe: Recipe, *, seed: int, output_dir: str | os.PathLike):
        import torch.distributed as dist
        from megatron.core import parallel_state as ps

        self.cfg = recipe
        self.seed = seed
        self.out = Path(output_dir)
        self.device = devices.current()
        self.cuda = self.device.is_cuda
        self.rank = dist.get_rank()
        self.is_rank0 = self.rank == 0
        self.tp_rank = ps.get_tensor_model_parallel_rank()
        self.pp_rank = ps.get_pipeline_model_parallel_rank()
        self.dp_rank = ps.get_data_parallel_rank()
        self.dp_size = ps.get_data_parallel_world_size()
        self.barrier = self.device.barrier
        o = recipe.optim
        if o.global_batch_size % (o.micro_batch_size * self.dp_size) != 0:
            raise ConfigError(
                f"optim.global_batch_size={o.global_batch_size} is invalid: it must be a multiple of "
                f"optim.micro_batch_size x data-parallel size = {o.micro_batch_size} x {self.dp_size}")

    # -- build --
    def build(self, resolved: ResolvedRun):
        """Registry, mixture, model/optimizer/scheduler, training data and validation windows."""
        cfg = self.cfg
        self.resolved = resolved
        self.registry = resolved.registry
        self.mixture = resolved.mixture
        self.schedule = resolved.schedule
        self.run_id = resolved.run_id
        self.build_model_and_optimizer(cfg.model.vocab_size or self.registry.tokenizer.vocab_size)
        tokenizer = load_run_tokenizer(self.registry)
        dataset = build_train_dataset(cfg, self.registry, self.schedule, tokenizer, seed=self.seed)
        o = cfg.optim
        self.phases = None
        if resolved.scheduled:  # result.json's requested-vs-realized table of every phase
            from .train_dataset import log_phase_table, phase_rows

            gbs = o.global_batch_size
            self.phases = log_phase_table(dataset, global_batch_size=gbs) if self.is_rank0 else \
                phase_rows(dataset, global_batch_size=gbs)
        self.batches = StepBatches(dataset, global_batch_size=o.global_batch_size,
                                   micro_batch_size=o.micro_batch_size, dp_rank=self.dp_rank, dp_size=self.dp_size)
        self.valid = self.validation_set(cfg.eval.split)
        self.last_evaluation: tuple[int, SplitEvaluation] | None = None

    def validation_set(self, split: str) -> ValidationSet:
        """The fixed evaluation windows of ``split`` for the domains this run evaluates (logged on rank 0)."""
        cfg = self.cfg
        sizes = evaluation_num_tokens(cfg, self.registry, split)
        valid = build_validation_set(self.registry, seq_length=cfg.model.seq_length,
                                     num_tokens_per_domain=cfg.eval.num_tokens_per_domain, split=split,
                                     domains=list(sizes), num_tokens_by_domain=sizes)
        if self.is_rank0:
            log.info("evaluation on %s: %s", split, valid.describe())
        return valid

    def build_model_and_optimizer(self, vocab_size: int) -> None:
        """GPTModel (this pipeline stage) in Megatron DDP, the Megatron optimizer and the LR scheduler."""
        from megatron.core.distributed import DistributedDataParallel, DistributedDataParallelConfig
        from megatron.core.distributed.finalize_model_grads import finalize_model_grads
        from megatron.core.optimizer import OptimizerConfig, get_megatron_optimizer
        from megatron.core.optimizer_param_scheduler import OptimizerParamScheduler

        cfg = self.cfg
        self.plan = plan_model(cfg, vocab_size=vocab_size, cuda_available=self.cuda,
                               te_available=self.cuda and transformer_engine_importable(),
                               capability=self.device.capability, cuda_version=torch.version.cuda,
                               gpu_name=self.device.name,
                               compiled_fusions_unavailable=compiled_fusions_unavailable_reason() if self.cuda
                               else None)
        shims.seed_model_parallel(self.seed)
        model = self.device.place_module(build_model(self.plan))
        self.num_parameters = count_model_parameters(model, self.device)
        tconfig = model.config
        ddp_config = DistributedDataParallelConfig(grad_reduce_in_fp32=True, overlap_grad_reduce=False,
                                                   use_distributed_optimizer=False)
        self.model = DistributedDataParallel(config=tconfig, ddp_config=ddp_config, module=model)
        tconfig.no_sync_func = self.model.no_sync
        tconfig.finalize_model_grads_func = finalize_model_grads
        o = cfg.optim
        self.optimizer = get_megatron_optimizer(
            OptimizerConfig(optimizer="adam", lr=o.lr, min_lr=o.min_lr, weight_decay=o.weight_decay,
                            adam_beta1=o.adam_beta1, adam_beta2=o.adam_beta2, adam_eps=o.adam_eps,
                            clip_grad=o.clip_grad, bf16=cfg.precision.bf16,
                            params_dtype=torch.bfloat16 if cfg.precision.bf16 else torch.float32,
                            use_distributed_optimizer=False),
            [self.model])
        self.scheduler = OptimizerParamScheduler(
            self.optimizer, init_lr=0.0, max_lr=o.lr, min_lr=o.min_lr if o.lr_schedule == "cosine" else o.lr,
            lr_warmup_steps=o.num_warmup_steps, lr_decay_steps=o.train_steps,
            lr_decay_style=o.lr_schedule, start_wd=o.weight_decay, end_wd=o.weight_decay,
            wd_incr_steps=o.train_steps, wd_incr_style="constant")
        # The LR used by step s (0-based) is the schedule at s + 1: warmup reaches lr at step warmup-1.
        self.scheduler.step(1)
        self.progress = RunProgress()

    # -- checkpoint --
    def state(self) -> dict:
        from megatron.core.tensor_parallel import random as mp_random

        tracker = mp_random.get_cuda_rng_tracker()
        return {
            "model": self.model.module.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "rng": {"python": random.getstate(), "numpy": numpy_rng_state(), "torch": torch.get_rng_state(),
                    "cuda": cuda_rng_state(self.device) if self.cuda else None,
                    "tracker": tracker.get_states()},
            "step": self.progress.step,
        }

    def load_state(self, state: dict) -> None:
        from megatron.core.tensor_parallel import random as mp_random

        self.model.module.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        rng = state["rng"]
        random.setstate(rng["python"])
        set_numpy_rng_state(rng["numpy"])
        torch.set_rng_state(rng["torch"])
        if self.cuda and rng.get("cuda") is not None:
            set_cuda_rng_state(rng["cuda"], self.device)
        mp_random.get_cuda_rng_tracker().set_states(rng["tracker"])

    def save(self) -> None:
        cfg = self.cfg
        step = self.progress.step
        meta = self.progress.checkpoint_meta(
            self.run_id, tensor_model_parallel_size=cfg.parallel.tensor_model_parallel_size,
            pipeline_model_parallel_size=cfg.parallel.pipeline_model_parallel_size, data_parallel_size=self.dp_size)
        ckpt.save_checkpoint(self.out, step, state=self.state(), meta=meta, tp_rank=self.tp_rank,
                             pp_rank=self.pp_rank, dp_rank=self.dp_rank, is_rank0=self.is_rank0,
                             keep_last=cfg.checkpoint.keep_last, barrier=self.barrier)
        log.info("step %d: checkpoint saved", step) if self.is_rank0 else None

    def try_resume(self) -> bool:
        loaded = self._load_latest_readable()
        if loaded is None:
            return False
        path, shard = loaded
        meta = read_json(path / ckpt.META_FILE)
        self.load_state(shard)
        self.progress = RunProgress.from_checkpoint_meta(meta)
        if self.is_rank0:
            run_files.rewrite_metrics(self.out, self.progress.metrics)
            log.info("resumed from %s (step %d)", path, self.progress.step)
        self.barrier()
        return True

    def _load_latest_readable(self) -> tuple[Path, dict] | None:
        """The newest checkpoint every rank can read, and this rank's shard of it. A checkpoint with a shard
        that cannot be read is set aside (``step_*.corrupt-<n>``, kept for inspection) and the one before is
        tried; a shard that asks for code is refused on every rank (:class:`~.checkpoint.CheckpointRefused`)."""
        cfg = self.cfg
        while True:
            path = ckpt.latest_checkpoint(self.out, tp_size=cfg.parallel.tensor_model_parallel_size,
                                          pp_size=cfg.parallel.pipeline_model_parallel_size)
            if path is None:
                return None
            shard, problem, verdict = None, "", 0
            try:
                shard = ckpt.load_shard(path, self.tp_rank, self.pp_rank)
            except ckpt.CheckpointRefused as exc:
                problem, verdict = str(exc), 2
            except ckpt.CorruptCheckpoint as exc:
                problem, verdict = str(exc), 1
            flag = self.device.collective_tensor([verdict], dtype=torch.int64)
            torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
            worst = int(flag[0])
            if worst == 0:
                return path, shard
            if worst == 2:
                raise ckpt.CheckpointRefused(problem or f"{path}: another rank's shard was refused (see its log)")
            if self.is_rank0:
                moved = set_aside(path)
                log.warning("%s; checkpoint set aside as %s, resuming from the one before", problem
                            or f"{path}: another rank's shard cannot be read", moved.name)
            self.barrier()

    # -- metrics --
    def log_metrics(self, row: dict) -> None:
        """Record a logged step: in the run's progress, ``metrics.jsonl`` and TensorBoard (rank 0 writes)."""
        self.progress.metrics.append(row)
        if self.is_rank0:
            run_files.append_metrics(self.out, row)
            if self.tb is not None:
                for key in ("train_loss", "lr", "tokens_per_s"):
                    if row.get(key) is not None:
                        self.tb.add_scalar(f"train/{key}", row[key], row["step"])
                for d, v in (row.get("val_loss") or {}).items():
                    self.tb.add_scalar(f"val_loss/{d}", v, row["step"])
                self.tb.flush()

    # -- loops --
    def train_step(self) -> tuple[float, float]:
        from megatron.core.pipeline_parallel import get_forward_backward_func

        cfg = self.cfg
        self.model.train()
        self.model.zero_grad_buffer()
        self.optimizer.zero_grad()
        fwd_bwd = get_forward_backward_func()
        stores = fwd_bwd(forward_step_func=partial(_forward_step, self.device),
                         data_iterator=iter(self.batches.for_step(self.progress.step)),
                         model=[self.model], num_microbatches=self.batches.num_microbatches,
                         seq_length=cfg.model.seq_length, micro_batch_size=cfg.optim.micro_batch_size,
                         forward_only=False)
        loss_sum, count = _reduce_sums(stores, self.device)
        loss = loss_sum / max(count, 1.0)
        if not math.isfinite(loss):
            return loss, float("nan")
        update_ok, grad_norm, _ = self.optimizer.step()
        self.scheduler.step(1)
        return loss, float(grad_norm) if grad_norm is not None else float("nan")

    @torch.no_grad()
    def evaluate(self, valid: ValidationSet | None = None) -> SplitEvaluation:
        """Mean token loss per domain on ``valid`` (default: the run's validation set), and its per-document
        losses (the same on every rank)."""
        from megatron.core.pipeline_parallel import get_forward_backward_func

        cfg = self.cfg
        valid = valid or self.valid
        self.model.train(False)  # evaluation mode
        fwd_bwd = get_forward_backward_func()
        mb = cfg.eval.micro_batch_size
        loss, documents = {}, {}
        for name, tokens in valid.domains.items():
            stores = fwd_bwd(forward_step_func=partial(_forward_step, self.device),
                             data_iterator=iterate_eval_batches(tokens.windows, mb, tokens.num_tokens),
                             model=[self.model], num_microbatches=num_eval_batches(tokens.windows, mb),
                             seq_length=cfg.model.seq_length, micro_batch_size=mb, forward_only=True)
            loss_sum, count = _reduce_sums(stores, self.device)
            loss[name] = loss_sum / count
            documents[name] = _document_sums(stores, tokens, self.device)
        self.model.train()
        return SplitEvaluation(split=valid.split, loss=loss, documents=documents)

    def current_lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])


def cuda_rng_state(device: devices.Device) -> torch.Tensor:
    """The CUDA RNG state of this rank's GPU only (one process per GPU: ``get_rng_state_all`` would initialize a
    CUDA context on every visible GPU, and restore another rank's GPUs too)."""
    return torch.cuda.get_rng_state(device.torch_device)


def set_cuda_rng_state(state, device: devices.Device) -> None:
    """Restore :func:`cuda_rng_state` on this rank's GPU; checkpoints of the earlier format hold one state per
    visible GPU (``get_rng_state_all``): this GPU's is taken from them."""
    if isinstance(state, (list, tuple)):
        index = device.torch_device.index or 0
        if index >= len(state):
            log.warning("checkpoint holds CUDA RNG states of %d GPU(s), none for GPU %d: not restored",
                        len(state), index)
            return
        state = state[index]
    torch.cuda.set_rng_state(state, device.torch_device)


def numpy_rng_state() -> dict:
    """numpy's global RNG state as a tensor and plain numbers (a checkpoint loads as data only)."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    return {"bit_generator": str(name), "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            "pos": int(pos), "has_gauss": int(has_gauss), "cached_gaussian": float(cached)}


def set_numpy_rng_state(state) -> None:
    """Restore :func:`numpy_rng_state` (or numpy's own tuple, from checkpoints of the earlier format)."""
    if isinstance(state, dict):
        keys = np.asarray(state["keys"].numpy(), dtype=np.uint32)
        state = (state["bit_generator"], keys, state["pos"], state["has_gauss"], state["cached_gaussian"])
    np.random.set_state(state)


def _check_existing(resolved: ResolvedRun, out: Path, force: bool) -> dict | None:
    """The existing outcome of this run directory (returned without re-running), or None to (re)start
    (:func:`regmix_megatron.runs.run_dir.existing_outcome`; ``force`` discards the directory's outputs)."""
    if force:
        run_files.discard_outputs(out)
        return None
    metas = [path / ckpt.META_FILE for _, path in ckpt.list_checkpoints(out)]
    return run_files.existing_outcome(resolved, out, metas)


def _decided_on_rank0(decide):
    """``decide()`` run on rank 0 only; its result, or its error, shared with every rank."""
    import torch.distributed as dist

    is_rank0 = dist.get_rank() == 0
    result = error = None
    if is_rank0:
        try:
            result = decide()
        except Exception as exc:  # share the decision with the other ranks before raising
            error = exc
    decision = [{"result": result, "error": str(error) if error else None}] if is_rank0 else [None]
    dist.broadcast_object_list(decision, src=0)
    if is_rank0 and error is not None:
        raise error
    if decision[0]["error"]:
        raise ConfigError(decision[0]["error"])
    return decision[0]["result"]


def run_training(config: RunConfig, *, force: bool = False) -> dict:
    """Train (or resume) one run; returns ``result.json``'s content, or the status dict of a diverged run
    (``{"status": "diverged", ...}``). A completed run (``result.json`` present) is returned as is unless
    ``force`` (which discards the run directory's previous outputs)."""
    import torch.distributed as dist

    recipe = config.recipe
    configure_threads(recipe)
    init_distributed(recipe.parallel.tensor_model_parallel_size, recipe.parallel.pipeline_model_parallel_size,
                     timeout_minutes=recipe.parallel.distributed_timeout_minutes)
    resolved = config.resolve()
    resolved.registry.verify_files()  # a truncated .bin or an edited count stops here, with the file named
    out = Path(config.output_dir)
    is_rank0 = dist.get_rank() == 0

    def decide():
        out.mkdir(parents=True, exist_ok=True)
        return _check_existing(resolved, out, force)

    existing = _decided_on_rank0(decide)
    if existing is not None:
        if is_rank0:
            log.info("%s: already %s; not re-running (use --force to redo)", out, existing.get("status"))
        return existing

    run = _Run(recipe, seed=config.seed, output_dir=out)
    run.tb = None
    try:
        return _train(run, resolved)
    except Exception as exc:
        if is_rank0:  # a failed run says so; it resumes from its last checkpoint when started again
            step = run.progress.step if "progress" in run.__dict__ else 0
            try:
                run_files.write_status(out, RunStatus.failed(step=step, error=exc, run_id=resolved.run_id))
            except OSError as status_exc:  # e.g. the disk is still full: the original error is what matters
                log.error("could not write %s: %s", RunDir(out).status, status_exc)
        raise
    finally:
        if run.tb is not None:
            run.tb.close()
        run.__dict__.clear()
        del run
        gc.collect()


def shutdown_distributed() -> None:
    """Leave a ``torchrun`` process group cleanly (a barrier, then megatron's and torch's teardown)."""
    import torch.distributed as dist
    from megatron.core import parallel_state

    if dist.is_initialized() and "WORLD_SIZE" in os.environ:
        dist.barrier()
        parallel_state.destroy_model_parallel()
        dist.destroy_process_group()


def _train(run: _Run, resolved: ResolvedRun) -> dict:
    """Build, start or resume, train the remaining steps; the result (or the status of a diverged run)."""
    run.build(resolved)
    _prepare_run_dir(run)
    run.barrier()
    resumed = run.try_resume()
    if not resumed and run.is_rank0:
        _start_metrics(run)
    diverged = _train_steps(run)
    if diverged is not None:
        return diverged
    return _finish(run)


def _prepare_run_dir(run: _Run) -> None:
    """Rank 0: drop partial checkpoints, save the run's config, clear an old status, open TensorBoard."""
    if not run.is_rank0:
        return
    out = run.out
    ckpt.remove_stale_temp(out)
    run_files.prepare(out, run.resolved)
    if run.cfg.tensorboard:
        try:
            from torch.utils.tensorboard import SummaryWriter
            run.tb = SummaryWriter(str(RunDir(out).tensorboard))
        except Exception as exc:  # tensorboard not installed: metrics.jsonl only
            log.warning("tensorboard requested but unavailable (%s); writing metrics.jsonl only", exc)


def _start_metrics(run: _Run) -> None:
    """Rank 0, fresh start: an empty metrics.jsonl and a line saying what is trained."""
    cfg = run.cfg
    run_files.start_metrics(run.out)
    log.info("run %s: %s, %d params (%d non-embedding), vocab %d, spec %s, %d steps x %d seqs x %d tokens",
             run.run_id, cfg.preset, run.num_parameters["total"], run.num_parameters["non_embedding"],
             run.plan.vocab_size, run.plan.spec_name, cfg.optim.train_steps, cfg.optim.global_batch_size,
             cfg.model.seq_length)


def _train_steps(run: _Run) -> dict | None:
    """Steps from ``run.progress.step`` to the last one, logging, evaluating and checkpointing on their intervals;
    the status of a diverged run, else None."""
    cfg = run.cfg
    o = cfg.optim
    progress = run.progress
    tokens_per_step = o.global_batch_size * cfg.model.seq_length
    interval_loss, interval_steps, interval_time = 0.0, 0, 0.0
    while progress.step < o.train_steps:
        t0 = time.perf_counter()
        lr = run.current_lr()
        loss, grad_norm = run.train_step()
        dt = time.perf_counter() - t0
        if not math.isfinite(loss) or not math.isfinite(grad_norm):
            return _diverged(run, loss, grad_norm)
        progress.step += 1
        progress.tokens += tokens_per_step
        progress.train_time_s += dt
        interval_loss += loss
        interval_steps += 1
        interval_time += dt
        step = progress.step
        do_eval = step % cfg.eval.eval_interval == 0 or step == o.train_steps
        if step % cfg.log_interval == 0 or do_eval:
            row = {"step": step, "train_loss": interval_loss / interval_steps, "lr": lr, "grad_norm": grad_norm,
                   "tokens": progress.tokens, "tokens_per_s": interval_steps * tokens_per_step / interval_time,
                   "elapsed_s": progress.train_time_s}
            if run.phases is not None:  # the phase of the step just trained (1-based)
                row["phase"] = next(p["phase"] for p in run.phases if p["start_step"] < step <= p["end_step"])
            _log_step(run, row, do_eval)
            interval_loss, interval_steps, interval_time = 0.0, 0, 0.0
        due = (cfg.checkpoint.interval and step % cfg.checkpoint.interval == 0) or step == o.train_steps
        if due and cfg.checkpoint.save:
            run.save()
    return None


def _log_step(run: _Run, row: dict, do_eval: bool) -> None:
    """Evaluate (when due) into ``row``, record it and log it."""
    step = run.progress.step
    if do_eval:
        evaluation = run.evaluate()
        run.last_evaluation = (step, evaluation)
        row["val_loss"] = dict(evaluation.loss)
        row["val_loss_average"] = Target.average().value(row["val_loss"], where=f"step {step}")
    run.log_metrics(row)
    if run.is_rank0:
        log.info("step %d/%d loss %.4f lr %.2e %.0f tok/s%s", step, run.cfg.optim.train_steps, row["train_loss"],
                 row["lr"], row["tokens_per_s"], f" val {row['val_loss_average']:.4f}" if do_eval else "")


def _diverged(run: _Run, loss: float, grad_norm: float) -> dict:
    """Write ``status.json`` for a NaN/inf loss or gradient norm and return it."""
    step = run.progress.step + 1
    status = RunStatus.diverged(step=step, loss=loss, grad_norm=grad_norm, run_id=run.run_id)
    if run.is_rank0:
        run_files.write_status(run.out, status)
        log.error("run %s diverged at step %d (loss %s, grad norm %s)", run.run_id, step, loss, grad_norm)
    run.barrier()
    return status.to_json_obj()


def _finish(run: _Run) -> dict:
    """``result.json`` from the last evaluation and the final splits (rank 0 writes it, after the per-document
    losses); returned on every rank."""
    cfg = run.cfg
    evaluations = _final_evaluations(run)
    split_loss = {split: dict(evaluations[split].loss) for split in cfg.eval.final_splits}
    result = run_files.completed_result(
        run.resolved, run.progress, split_loss=split_loss,
        num_parameters=run.num_parameters, validation_tokens=run.valid.num_tokens,
        evaluation_sizes={split: e.sizes() for split, e in evaluations.items()}, phases=run.phases)
    if run.is_rank0:
        documents = RunDocumentLosses(run_id=run.run_id, step=run.progress.step,
                                      splits={split: e.documents for split, e in evaluations.items()})
        run_files.write_completed(run.out, result, documents)
    run.barrier()
    return result.to_json_obj()


def _final_evaluations(run: _Run) -> dict:
    """``{split: SplitEvaluation}`` of the trained model: ``eval.split`` (the last step's evaluation, or again
    after a resume at the last step) and each of ``eval.final_splits``."""
    cfg = run.cfg
    last = run.last_evaluation
    valid = last[1] if last is not None and last[0] == run.progress.step else run.evaluate()
    finals = {split: run.evaluate(run.validation_set(split)) for split in cfg.eval.final_splits}
    return {cfg.eval.split: valid, **finals}

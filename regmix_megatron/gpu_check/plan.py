"""What gpu-check runs on a machine: the GPU's facts and peaks, and the checks planned for it (pure)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Optional

NUM_STEPS = 20
"""Optimizer steps of every check of our trainer."""
RESUME_STEP = 10
"""Checkpoint and evaluation interval: a resume check restarts from this step."""
RESUME_TOLERANCE = 0.02
"""Final per-domain validation loss of a run resumed at step 10 vs the uninterrupted run (GPU kernels are not
bitwise deterministic; on CPU the two agree to the last bit)."""
LAYOUT_TOLERANCE = 1e-3
"""Per-step train loss of TP=2 / DP=2 vs TP=1, fp32, same initial weights (1e-7 on CPU after 8 steps)."""
PIPELINE_TOLERANCE = 0.15
"""Final average validation loss of PP layouts vs TP=1: their initial weights differ (megatron draws each
stage's layers from the same seed), so only a loose match is expected (0.023 in the CPU rehearsal)."""
MEGATRON_LM_ITERS = 10
MEGATRON_LM_SHAPE = {"num_layers": 2, "hidden_size": 256, "num_attention_heads": 8, "ffn_hidden_size": 512,
                     "seq_length": 512, "global_batch_size": 32, "micro_batch_size": 4}
"""The Megatron-LM check's model and batch: the RegMix 1M proxy at sequence length 512."""


# ---- the GPU -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GpuInfo:
    """What the plan depends on (``detect_gpu`` on a GPU machine; constructed in tests)."""

    name: str
    capability: tuple
    count: int
    cuda_version: Optional[str] = None
    """``torch.version.cuda``."""
    te_available: bool = False


def detect_gpu() -> Optional[GpuInfo]:
    """This machine's GPUs as torch sees them, or None without CUDA."""
    import torch

    if not torch.cuda.is_available():
        return None
    from ..megatron.model import transformer_engine_importable

    return GpuInfo(name=torch.cuda.get_device_name(0), capability=tuple(torch.cuda.get_device_capability(0)),
                   count=torch.cuda.device_count(), cuda_version=torch.version.cuda,
                   te_available=transformer_engine_importable())


#: Dense (no sparsity) datasheet peaks in TFLOP/s: (name pattern, bf16, fp8, fp32 without TF32), matched in order
#: against ``torch.cuda.get_device_name()``. None: the GPU has no such units, or we do not know the number.
PEAK_TFLOPS = (
    (r"\bH100\b.*\bPCIe\b", 756.0, 1513.0, 51.0),
    (r"\bH100\b", 989.0, 1979.0, 67.0),
    (r"\bG?H200\b", 989.0, 1979.0, 67.0),
    (r"\bB200\b", 2250.0, 4500.0, None),
    (r"\bA100\b", 312.0, None, 19.5),
    (r"\bL40S\b", 362.0, 733.0, 91.6),
    (r"\bL4\b", 121.0, 242.0, 30.3),
    (r"\bA10\b", 125.0, None, 31.2),
    (r"\bV100\b", None, None, 15.7),
)


def peak_flops(gpu_name: str, precision: str) -> Optional[float]:
    """The GPU's dense peak for ``precision`` (``bf16``, ``fp8``, ``fp32``) in FLOP/s, or None if unknown."""
    column = {"bf16": 1, "fp8": 2, "fp32": 3}[precision]
    for row in PEAK_TFLOPS:
        if re.search(row[0], gpu_name):
            return None if row[column] is None else row[column] * 1e12
    return None


def llama_flops_per_token(*, num_layers: int, hidden_size: int, ffn_hidden_size: int, vocab_size: int,
                          seq_length: int) -> float:
    """Training FLOPs per token of our LLaMA-style GPT: 6 x the parameters other than the input embedding
    (attention 4h^2, SwiGLU 3h*ffn, norms, output layer) + 12 x layers x hidden x seq (attention scores and
    values, forward and backward), as in bench/bench_train.py."""
    per_layer = 4 * hidden_size * hidden_size + 3 * hidden_size * ffn_hidden_size + 2 * hidden_size
    num_params = num_layers * per_layer + hidden_size + vocab_size * hidden_size
    return 6.0 * num_params + 12.0 * num_layers * hidden_size * seq_length


# ---- the plan ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Check:
    name: str
    what: str
    kind: str
    """``train`` (our trainer), ``resume`` (of the ``train`` check ``base``), ``megatron-lm`` or ``skip``."""
    nproc: int = 1
    config: dict = field(default_factory=dict)
    """Train config mapping, without ``domains`` (added when run)."""
    precision: str = "bf16"
    base: Optional[str] = None
    """The check this one resumes or is compared with."""
    tolerance: Optional[float] = None
    """Per-step train loss tolerance against ``base`` (None: final validation loss within PIPELINE_TOLERANCE)."""
    reason: str = ""
    """Why a ``skip`` check is skipped."""


def _train_config(preset: str, model: dict, optim: dict, precision: dict, *, eval_micro_batch: int,
                  parallel: Optional[dict] = None) -> dict:
    return {"preset": preset, "seed": 1234, "log_interval": 1, "model": model,
            "optim": {"train_steps": NUM_STEPS, **optim}, "precision": precision,
            "eval": {"eval_interval": RESUME_STEP, "num_tokens_per_domain": 8192,
                     "micro_batch_size": eval_micro_batch},
            "checkpoint": {"interval": RESUME_STEP, "keep_last": 2}, "parallel": parallel or {}}


PROXY_MODEL = {"seq_length": 512}  # regmix-1m otherwise: 2 layers, hidden 256, 8 heads, FFN 512
PROXY_OPTIM = {"global_batch_size": 64, "micro_batch_size": 16, "lr": 3e-3, "warmup_steps": 2}
TARGET_MODEL = {"num_layers": 4, "hidden_size": 1024, "num_attention_heads": 16, "ffn_hidden_size": 2816,
                "seq_length": 1024}
TARGET_OPTIM = {"global_batch_size": 32, "micro_batch_size": 4, "lr": 1e-3, "min_lr": 1e-4, "warmup_fraction": 0.1}
LAYOUTS = ((2, "tp2", {"tensor_model_parallel_size": 2}, LAYOUT_TOLERANCE),
           (2, "dp2", {}, LAYOUT_TOLERANCE),
           (2, "pp2", {"pipeline_model_parallel_size": 2}, None),
           (4, "tp2-pp2", {"tensor_model_parallel_size": 2, "pipeline_model_parallel_size": 2}, None),
           (8, "tp2-pp2-dp2", {"tensor_model_parallel_size": 2, "pipeline_model_parallel_size": 2}, None))


def _single_gpu_checks(gpu: GpuInfo) -> list:
    from ..megatron.model import fp8_unsupported_reason

    bf16 = tuple(gpu.capability) >= (8, 0)
    proxy = "proxy-bf16" if bf16 else "proxy-fp32"
    checks = [
        Check(proxy, f"regmix-1m shape, {'bf16' if bf16 else 'fp32 (bf16 needs 8.0+)'}, local spec", "train",
              config=_train_config("regmix-1m", PROXY_MODEL, PROXY_OPTIM, {"bf16": bf16, "layer_spec": "local"},
                                   eval_micro_batch=16), precision="bf16" if bf16 else "fp32"),
        Check(f"{proxy}-resume", f"{proxy} resumed from its step-{RESUME_STEP} checkpoint", "resume", base=proxy),
    ]
    if not gpu.te_available:
        return checks + [Check("target-te", "4 x 1024 target-like model, Transformer Engine", "skip",
                               reason="transformer_engine does not import (pip install -e .[gpu])")]
    if not bf16:
        return checks + [Check("target-te", "4 x 1024 target-like model, Transformer Engine", "skip",
                               reason="needs bf16 (compute capability 8.0+)")]
    no_fp8 = fp8_unsupported_reason("delayed", gpu.capability, gpu.cuda_version)
    name = "target-te-fp8" if no_fp8 is None else "target-te-bf16"
    what = ("4 x 1024 target-like model, TE, bf16 + FP8 hybrid" if no_fp8 is None
            else f"4 x 1024 target-like model, TE, bf16 (no FP8: {no_fp8})")
    precision = {"bf16": True, "fp8": "hybrid" if no_fp8 is None else None, "layer_spec": "transformer_engine"}
    return checks + [
        Check(name, what, "train", config=_train_config("regmix-1b", TARGET_MODEL, TARGET_OPTIM, precision,
                                                         eval_micro_batch=4),
              precision="fp8" if no_fp8 is None else "bf16"),
        Check(f"{name}-resume", f"{name} resumed from its step-{RESUME_STEP} checkpoint", "resume", base=name),
    ]


def _layout_checks(gpu: GpuInfo) -> list:
    reference = _train_config("regmix-1m", PROXY_MODEL, PROXY_OPTIM, {"bf16": False, "layer_spec": "local"},
                              eval_micro_batch=16, parallel={"use_cpu_initialization": True})
    checks = [Check("tp1-fp32", "reference for the layouts: proxy, fp32, weights drawn on the CPU", "train",
                    config=reference, precision="fp32")]
    for nproc, name, parallel, tolerance in LAYOUTS:
        if gpu.count < nproc:
            continue
        config = {**reference, "parallel": {**reference["parallel"], **parallel}}
        how = f"each step within {tolerance:g}" if tolerance else f"final loss within {PIPELINE_TOLERANCE:g}"
        checks.append(Check(name, f"{name} on {nproc} GPUs vs tp1-fp32 ({how})", "train", nproc=nproc,
                            config=config, precision="fp32", base="tp1-fp32", tolerance=tolerance))
    return checks


def megatron_lm_layout(num_gpus: int) -> tuple:
    """(tensor, pipeline, processes) of the Megatron-LM check: the 1B shell's TP=2 x PP=2 where 4 GPUs allow."""
    if num_gpus >= 4:
        return 2, 2, 4
    if num_gpus >= 2:
        return 2, 1, 2
    return 1, 1, 1


def plan_checks(gpu: GpuInfo, megatron_lm: Optional[str]) -> list:
    """Every check this machine can run, in order (a ``skip`` where it cannot, with the reason)."""
    checks = _single_gpu_checks(gpu)
    if gpu.count >= 2:
        checks += _layout_checks(gpu)
    tp, pp, nproc = megatron_lm_layout(gpu.count)
    what = f"Megatron-LM pretrain_gpt.py, TP={tp} x PP={pp}, the 1B shell's settings at proxy size, our export"
    if megatron_lm:
        checks.append(Check("megatron-lm", what, "megatron-lm", nproc=nproc,
                            precision="bf16" if tuple(gpu.capability) >= (8, 0) else "fp32"))
    else:
        checks.append(Check("megatron-lm", what, "skip", nproc=nproc,
                            reason="no Megatron-LM checkout (--megatron-lm or REGMIX_MEGATRON_LM)"))
    return checks


def format_plan(checks: list, gpu: GpuInfo) -> str:
    lines = [f"gpu-check would run on {gpu.count} x {gpu.name} (compute capability {gpu.capability[0]}."
             f"{gpu.capability[1]}, Transformer Engine {'yes' if gpu.te_available else 'no'}):"]
    width = max(len(c.name) for c in checks)
    for c in checks:
        lines.append(f"  {c.name.ljust(width)}  {c.nproc} GPU(s)  {c.what}"
                     + (f"  [skipped: {c.reason}]" if c.kind == "skip" else ""))
    return "\n".join(lines)

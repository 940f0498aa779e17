"""What gpu-check runs on a machine: the GPU's facts and peaks, and the checks planned for it (pure)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Optional

from .machine import Dependencies, GpuInfo, format_dependencies

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


# ---- peaks and FLOPs ------------------------------------------------------------------------------------

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
    """``train`` (our trainer), ``resume`` (of the ``train`` check ``base``), ``megatron-lm``, ``n/a`` (this GPU
    cannot run it: ``reason``) or ``none`` (only stands for what ``needs`` would test)."""
    nproc: int = 1
    config: dict = field(default_factory=dict)
    """Train config mapping, without ``domains`` (added when run)."""
    precision: str = "bf16"
    base: Optional[str] = None
    """The check this one resumes or is compared with."""
    tolerance: Optional[float] = None
    """Per-step train loss tolerance against ``base`` (None: final validation loss within PIPELINE_TOLERANCE)."""
    reason: str = ""
    """Why an ``n/a`` check cannot run on this GPU."""
    needs: tuple = ()
    """Dependencies (keys of :data:`DEPENDENCIES`) without which it is NOT TESTED."""
    torchrun: bool = False
    """Launch with ``torchrun`` even for one process (always for more)."""
    impl: str = "local"
    """Megatron-LM's ``--transformer-impl`` (``megatron-lm`` checks)."""


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
TARGET_WHAT = "4 x 1024 target-like model"
LAYOUTS = ((2, "tp2", {"tensor_model_parallel_size": 2}, LAYOUT_TOLERANCE),
           (2, "dp2", {}, LAYOUT_TOLERANCE),
           (2, "pp2", {"pipeline_model_parallel_size": 2}, None),
           (4, "tp2-pp2", {"tensor_model_parallel_size": 2, "pipeline_model_parallel_size": 2}, None),
           (8, "tp2-pp2-dp2", {"tensor_model_parallel_size": 2, "pipeline_model_parallel_size": 2}, None))
NO_BF16 = "needs bf16: compute capability 8.0 or higher (Ampere or newer)"


def _resume(check: Check) -> Check:
    return Check(f"{check.name}-resume", f"{check.name} resumed from its step-{RESUME_STEP} checkpoint", "resume",
                 base=check.name, needs=check.needs)


def _proxy_checks(bf16: bool) -> list:
    proxy = "proxy-bf16" if bf16 else "proxy-fp32"
    config = _train_config("regmix-1m", PROXY_MODEL, PROXY_OPTIM, {"bf16": bf16, "layer_spec": "local"},
                           eval_micro_batch=16)
    first = Check(proxy, f"regmix-1m shape, {'bf16' if bf16 else 'fp32 (bf16 needs 8.0+)'}, local spec", "train",
                  config=config, precision="bf16" if bf16 else "fp32")
    torchrun = Check(f"{proxy}-torchrun", f"{proxy} under torchrun --nproc-per-node 1 (env:// process group), "
                     f"each step within {RESUME_TOLERANCE:g}", "train", config=config, precision=first.precision,
                     base=proxy, tolerance=RESUME_TOLERANCE, torchrun=True)
    return [first, _resume(first), torchrun]


def _target_checks(gpu: GpuInfo) -> list:
    """The target-shaped model: local spec in bf16, and with Transformer Engine in bf16 and FP8."""
    from ..megatron.model import fp8_unsupported_reason

    te_what = f"{TARGET_WHAT}, Transformer Engine"
    if tuple(gpu.capability) < (8, 0):
        return [Check("target-bf16", f"{TARGET_WHAT}, bf16, local spec", "n/a", reason=NO_BF16),
                Check("target-te-bf16", f"{te_what}, bf16", "n/a", reason=NO_BF16),
                Check("target-te-fp8", f"{te_what}, bf16 + FP8 hybrid", "n/a", reason=NO_BF16)]

    def target(name: str, what: str, precision: dict, label: str, needs: tuple = ()) -> Check:
        config = _train_config("regmix-1b", TARGET_MODEL, TARGET_OPTIM, precision, eval_micro_batch=4)
        return Check(name, what, "train", config=config, precision=label, needs=needs)

    te = {"bf16": True, "layer_spec": "transformer_engine"}
    checks = [target("target-bf16", f"{TARGET_WHAT}, bf16, local spec", {"bf16": True, "layer_spec": "local"},
                     "bf16"),
              target("target-te-bf16", f"{te_what}, bf16", te, "bf16", needs=("te",))]
    no_fp8 = fp8_unsupported_reason("delayed", gpu.capability, gpu.cuda_version)
    if no_fp8 is not None:
        return checks + [_resume(checks[-1]),
                         Check("target-te-fp8", f"{te_what}, bf16 + FP8 hybrid", "n/a", reason=no_fp8)]
    fp8 = target("target-te-fp8", f"{te_what}, bf16 + FP8 hybrid", {**te, "fp8": "hybrid"}, "fp8", needs=("te",))
    return checks + [fp8, _resume(fp8)]


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
    """(tensor, pipeline, processes) of the Megatron-LM checks: the 1B shell's TP=2 x PP=2 where 4 GPUs allow."""
    if num_gpus >= 4:
        return 2, 2, 4
    if num_gpus >= 2:
        return 2, 1, 2
    return 1, 1, 1


def _megatron_lm_checks(gpu: GpuInfo) -> list:
    from ..megatron.model import fp8_unsupported_reason

    tp, pp, nproc = megatron_lm_layout(gpu.count)
    bf16 = tuple(gpu.capability) >= (8, 0)
    where = f"Megatron-LM pretrain_gpt.py on our export, TP={tp} x PP={pp}"
    local = Check("megatron-lm-local", f"{where}, {'bf16' if bf16 else 'fp32'}, --transformer-impl local",
                  "megatron-lm", nproc=nproc, precision="bf16" if bf16 else "fp32", needs=("megatron-lm", "nvcc"),
                  impl="local")
    te_what = f"{where}, the 1B shell's settings (Transformer Engine"
    if not bf16:
        return [local, Check("megatron-lm-te", te_what + ")", "n/a", nproc=nproc, reason=NO_BF16)]
    no_fp8 = fp8_unsupported_reason("delayed", gpu.capability, gpu.cuda_version)
    te = Check("megatron-lm-te", te_what + (", bf16 + FP8 hybrid)" if no_fp8 is None else f", bf16; no FP8: {no_fp8})"),
               "megatron-lm", nproc=nproc, precision="fp8" if no_fp8 is None else "bf16",
               needs=("megatron-lm", "nvcc", "te"), impl="transformer_engine")
    return [local, te]


def plan_checks(gpu: GpuInfo, deps: Dependencies) -> list:
    """Every check of this machine, in order: what its GPU cannot run as ``n/a``; what a missing dependency stops
    keeps its ``needs`` (it is then NOT TESTED); with no C compiler, where a check would compile fused kernels (with
    Transformer Engine, or Megatron-LM), a ``compiled-fusions`` check stands for them, and the checks run them
    uncompiled."""
    bf16 = tuple(gpu.capability) >= (8, 0)
    checks = _proxy_checks(bf16) + _target_checks(gpu)
    if gpu.count >= 2:
        checks += _layout_checks(gpu)
    checks += _megatron_lm_checks(gpu)
    uses_fusions = deps.has("te") or (deps.has("megatron-lm") and deps.has("nvcc"))  # else nothing would compile
    if not deps.has("compiler") and uses_fusions:
        checks.append(Check("compiled-fusions", "megatron-core's fused bias-dropout-add / bias-SwiGLU built by "
                            "torch.compile (the other checks ran them uncompiled: TORCH_COMPILE_DISABLE=1)", "none",
                            needs=("compiler",)))
    return checks


def format_plan(checks: list, gpu: GpuInfo, deps: Dependencies) -> str:
    lines = [f"gpu-check would run on {gpu.count} x {gpu.name} (compute capability {gpu.capability[0]}."
             f"{gpu.capability[1]}, CUDA {gpu.cuda_version}):", format_dependencies(deps), "checks:"]
    width = max(len(c.name) for c in checks)
    for c in checks:
        lacking = deps.lacking(c.needs)
        note = (f"  [not applicable: {c.reason}]" if c.kind == "n/a" else
                f"  [NOT TESTED: needs {', '.join(lacking)}]" if lacking else "")
        lines.append(f"  {c.name.ljust(width)}  {c.nproc} GPU(s)  {c.what}{note}")
    return "\n".join(lines)

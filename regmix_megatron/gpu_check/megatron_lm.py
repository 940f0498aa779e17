"""gpu-check's Megatron-LM checks: ``pretrain_gpt.py`` of a checkout trains a few steps on our export.

Two checks, one per ``--transformer-impl``, each with the fusion flags its implementation can run:

- ``transformer_engine`` (``megatron-lm-te``): the 1B launch shell's settings (examples/pretrain_gpt_1b_regmix.sh)
  at a proxy's size, FP8 where the GPU runs it. Megatron-LM's fusion defaults stay on: Transformer Engine provides
  the fused RoPE and its own attention and norms.
- ``local`` (``megatron-lm-local``): megatron-core's own layers, so what Transformer Engine or apex would provide
  is off: ``--no-rope-fusion`` (the fused RoPE is Transformer Engine's; without it ``TransformerConfig`` raises
  ``apply_rope_fusion is not available``), ``--no-persist-layer-norm`` (the torch norms assert it is off), and
  ``--no-masked-softmax-fusion`` unless apex's fused softmax kernels import (megatron-core's fused softmax imports
  ``scaled_upper_triang_masked_softmax_cuda`` at the first bf16 forward).

Both keep gradient-accumulation fusion off (``--no-gradient-accumulation-fusion``: apex's kernel), as the 1B shell
does by default. Bias-dropout-add and bias-SwiGLU fusions stay on in both: megatron-core builds them with
torch.compile, which Megatron-LM also runs at start-up whatever the flags (``_warmup_jit_function``); without a C
compiler gpu-check runs them uncompiled (``TORCH_COMPILE_DISABLE=1``) and says so.

The dataset helpers are built as ``tools/check_megatron_lm.py`` builds them (``megatron/checkout.py``), and the
script runs with ``python3``/``python3-config`` on ``PATH`` answering for this interpreter, so that Megatron-LM's
own ``compile_helpers()`` finds them built.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from .judge import Outcome, judge_megatron_lm
from .machine import GpuInfo
from .plan import MEGATRON_LM_ITERS, MEGATRON_LM_SHAPE, Check, llama_flops_per_token, megatron_lm_layout, peak_flops
from .process import Context, failed, run_logged

TE_IMPL = "transformer_engine"
LOCAL_IMPL = "local"


def _model_and_schedule_flags(tp: int, pp: int) -> list:
    s = MEGATRON_LM_SHAPE
    return ["--num-layers", s["num_layers"], "--hidden-size", s["hidden_size"], "--num-attention-heads",
            s["num_attention_heads"], "--ffn-hidden-size", s["ffn_hidden_size"], "--seq-length", s["seq_length"],
            "--max-position-embeddings", s["seq_length"], "--position-embedding-type", "rope", "--normalization",
            "RMSNorm", "--swiglu", "--disable-bias-linear", "--untie-embeddings-and-output-weights",
            "--attention-dropout", "0.0", "--hidden-dropout", "0.0", "--init-method-std", "0.02",
            "--tensor-model-parallel-size", tp, "--pipeline-model-parallel-size", pp,
            "--use-distributed-optimizer", "--overlap-grad-reduce", "--overlap-param-gather",
            "--no-gradient-accumulation-fusion",
            "--micro-batch-size", s["micro_batch_size"], "--global-batch-size", s["global_batch_size"],
            "--train-iters", MEGATRON_LM_ITERS, "--lr", "1e-3", "--min-lr", "1e-4", "--lr-decay-style", "cosine",
            "--lr-warmup-fraction", "0.1", "--optimizer", "adam", "--adam-beta1", "0.9", "--adam-beta2", "0.95",
            "--weight-decay", "0.1", "--clip-grad", "1.0", "--seed", "1234"]


def implementation_flags(impl: str, gpu: GpuInfo, tp: int, *, fused_softmax: bool) -> list:
    """``--transformer-impl`` and the precision and fusion flags that agree with it (module docstring)."""
    from ..megatron.model import fp8_unsupported_reason

    bf16 = tuple(gpu.capability) >= (8, 0)
    flags = ["--bf16"] if bf16 else []
    if impl == TE_IMPL:
        flags += ["--transformer-impl", TE_IMPL] + (["--sequence-parallel"] if tp > 1 else [])
        if bf16 and fp8_unsupported_reason("delayed", gpu.capability, gpu.cuda_version) is None:
            flags += ["--fp8-format", "hybrid", "--fp8-recipe", "delayed", "--fp8-amax-history-len", "1024",
                      "--fp8-amax-compute-algo", "max"]
        return flags
    flags += ["--transformer-impl", LOCAL_IMPL, "--no-rope-fusion", "--no-persist-layer-norm"]
    return flags + ([] if fused_softmax else ["--no-masked-softmax-fusion"])


def megatron_lm_flags(ctx: Context, check: Check, tp: int, pp: int) -> list:
    """``pretrain_gpt.py`` flags of ``check`` (its ``impl``) on ``ctx``'s data, as strings."""
    from ..manifest import DomainRegistry

    run = ctx.workdir / "runs" / check.name
    flags = _model_and_schedule_flags(tp, pp) + [
        "--per-split-data-args-path", ctx.megatron_data_args, "--multiple-validation-sets", "--full-validation",
        "--tokenizer-type", "GPTSentencePieceTokenizer",
        "--tokenizer-model", DomainRegistry.load(ctx.domains_json).tokenizer.model,
        "--data-cache-path", run / "data_cache", "--num-workers", "1",
        "--log-interval", "1", "--eval-interval", MEGATRON_LM_ITERS // 2,
        "--save", run / "checkpoints", "--load", run / "checkpoints", "--save-interval", MEGATRON_LM_ITERS // 2]
    flags += implementation_flags(check.impl, ctx.gpu, tp, fused_softmax=ctx.deps.fused_softmax)
    return [str(f) for f in flags]


def megatron_lm_command(ctx: Context, check: Check) -> tuple:
    """``(command, extra environment)`` of a Megatron-LM check: torchrun on the checkout's ``pretrain_gpt.py``,
    with this interpreter's ``python3``/``python3-config`` first on ``PATH``."""
    import os

    from ..megatron.checkout import interpreter_bin

    tp, pp, nproc = megatron_lm_layout(ctx.gpu.count)
    bin_dir = interpreter_bin(ctx.workdir / "bin")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(nproc),
           str(Path(ctx.megatron_lm) / "pretrain_gpt.py"), *megatron_lm_flags(ctx, check, tp, pp)]
    return cmd, {"PATH": os.pathsep.join([str(bin_dir), os.environ.get("PATH", "")]),
                 "CUDA_DEVICE_MAX_CONNECTIONS": "1"}  # as the 1B shell exports it


def run_megatron_lm_check(check: Check, ctx: Context, done: dict) -> Outcome:
    from ..manifest import DomainRegistry
    from ..megatron.checkout import ensure_dataset_helpers
    from ..megatron.model import padded_vocab_size

    ensure_dataset_helpers(Path(ctx.megatron_lm), use_wheel=False)  # pretrain's subprocesses need them on disk
    shutil.rmtree(ctx.workdir / "runs" / check.name, ignore_errors=True)
    cmd, env = megatron_lm_command(ctx, check)
    log = ctx.workdir / "logs" / f"{check.name}.log"
    code, text = run_logged(cmd, log, ctx, megatron_lm_layout(ctx.gpu.count)[2], env)
    if code != 0:
        return failed(check, code, text, f"logs/{check.name}.log")
    registry = DomainRegistry.load(ctx.domains_json)
    problems, tokens_per_s = judge_megatron_lm(text, len(registry.all_names))  # one set per evaluated domain
    tp, _, nproc = megatron_lm_layout(ctx.gpu.count)
    s = MEGATRON_LM_SHAPE
    vocab = padded_vocab_size(registry.tokenizer.vocab_size, 128, tp)  # Megatron-LM's default padding
    flops = llama_flops_per_token(num_layers=s["num_layers"], hidden_size=s["hidden_size"],
                                  ffn_hidden_size=s["ffn_hidden_size"], vocab_size=vocab, seq_length=s["seq_length"])
    peak = peak_flops(ctx.gpu.name, check.precision)
    mfu = None if tokens_per_s is None or peak is None else tokens_per_s * flops / (peak * nproc)
    return Outcome(check, "fail" if problems else "pass", "; ".join(problems), tokens_per_s, mfu)

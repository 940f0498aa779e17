"""gpu-check, the first thing to run on a GPU machine: short real trainings that exercise every GPU path we ship.

``tools/gpu_check.py`` (``make gpu-check``) builds its own tiny data from the test corpus fixture (a 1000-token
SentencePiece model, Megatron ``.bin/.idx`` of every domain), plans the checks this machine can run
(:func:`plan_checks`), runs each as a subprocess, judges it from its outputs, prints one table (what ran,
tokens/s, MFU against the GPU's dense datasheet peak, pass/fail) and exits 1 if any check failed.

On one GPU: a RegMix-1M-shaped proxy in bf16 (local layer spec) and a target-like model with Transformer Engine
(FP8 where the GPU supports it), 20 steps each: losses must fall, every domain gets a finite validation loss,
and a run resumed from its step-10 checkpoint must end where the uninterrupted run did. With >= 2 GPUs: TP=2
and DP=2 must reproduce a TP=1 reference step by step (weights drawn on the CPU so every layout starts from the
same ones) and PP=2 must train to a final loss near it; with >= 4 and 8 GPUs also TP=2 x PP=2 (the 1B layout)
and TP=2 x PP=2 x DP=2. With a Megatron-LM checkout, its ``pretrain_gpt.py`` trains a few steps on our export
with the 1B launch shell's settings at a proxy's size. Without a GPU it says so and runs nothing.

Tolerances are not calibrated on a GPU (none was available when this was written); a failure names the numbers.
"""

from .judge import (
    MIN_LOSS_DROP,
    Outcome,
    exit_code,
    format_table,
    judge_layout,
    judge_megatron_lm,
    judge_resume,
    judge_training,
)
from .plan import (
    LAYOUT_TOLERANCE,
    NUM_STEPS,
    PEAK_TFLOPS,
    PIPELINE_TOLERANCE,
    RESUME_STEP,
    RESUME_TOLERANCE,
    Check,
    GpuInfo,
    detect_gpu,
    format_plan,
    llama_flops_per_token,
    megatron_lm_layout,
    peak_flops,
    plan_checks,
)
from .run import Context, main, megatron_lm_flags, prepare_data, run_checks

__all__ = ["Check", "Context", "GpuInfo", "Outcome", "detect_gpu", "exit_code", "format_plan", "format_table",
           "judge_layout", "judge_megatron_lm", "judge_resume", "judge_training", "llama_flops_per_token", "main",
           "megatron_lm_flags", "megatron_lm_layout", "peak_flops", "plan_checks", "prepare_data", "run_checks",
           "LAYOUT_TOLERANCE", "MIN_LOSS_DROP", "NUM_STEPS", "PEAK_TFLOPS", "PIPELINE_TOLERANCE", "RESUME_STEP",
           "RESUME_TOLERANCE"]

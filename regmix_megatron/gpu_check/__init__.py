"""gpu-check, the first thing to run on a GPU machine: short real trainings that exercise every GPU path we ship.

``tools/gpu_check.py`` (``make gpu-check``) builds its own tiny data from the test corpus fixture (a 1000-token
SentencePiece model, Megatron ``.bin/.idx`` of every domain), plans the checks this machine can run
(:func:`plan_checks`), runs each as a subprocess, judges it from its outputs, prints one table (what ran,
tokens/s, MFU against the GPU's dense datasheet peak, the result) and exits 1 if any check failed.

It cannot pass by skipping what matters: a check whose dependency is missing here (Transformer Engine, a
Megatron-LM checkout, the CUDA toolkit's nvcc Megatron-LM runs at start-up, a C compiler for torch.compile's
fused kernels; :data:`DEPENDENCIES`) is NOT TESTED, with the reason (Transformer Engine's import error as it
was raised), and fails the run unless ``--allow-missing NAME`` says so. What the GPU cannot run (bf16 below
compute capability 8.0, FP8 below 8.9) is NOT APPLICABLE and does not fail it. When ``nvidia-smi`` sees GPUs that
torch does not, it says why (driver, torch's CUDA version) and exits 1; on a machine without GPUs it says so and
exits 0.

On one GPU: a RegMix-1M-shaped proxy in bf16 (local layer spec), resumed from its step-10 checkpoint and run again
under ``torchrun`` with one process; a target-shaped model (4 x 1024) in bf16 with the local spec and with
Transformer Engine, and in FP8 where the GPU runs it, resumed too; 20 steps each: losses must fall, every domain
gets a finite validation loss, a resumed run must end where the uninterrupted run did. With >= 2 GPUs: TP=2 and
DP=2 must reproduce a TP=1 reference step by step (weights drawn on the CPU so every layout starts from the same
ones) and PP=2 must train to a final loss near it; with >= 4 and 8 GPUs also TP=2 x PP=2 (the 1B layout) and
TP=2 x PP=2 x DP=2. With a Megatron-LM checkout, its ``pretrain_gpt.py`` trains a few steps on our export with
each ``--transformer-impl`` (``megatron_lm.py``: the fusion flags that agree with each). Without a GPU it says so
and runs nothing.

Tolerances are not calibrated on a GPU (none was available when this was written); a failure names the numbers.
"""

from .judge import (MIN_LOSS_DROP, Outcome, exit_code, format_table, judge_layout, judge_megatron_lm, judge_resume,
                    judge_training)
from .machine import (DEPENDENCIES, Dependencies, GpuInfo, detect_gpu, explain_invisible_gpus, explain_no_gpu,
                      probe_dependencies)
from .megatron_lm import implementation_flags, megatron_lm_command, megatron_lm_flags
from .plan import (LAYOUT_TOLERANCE, NUM_STEPS, PEAK_TFLOPS, PIPELINE_TOLERANCE, RESUME_STEP, RESUME_TOLERANCE,
                   Check, format_plan, llama_flops_per_token, megatron_lm_layout, peak_flops, plan_checks)
from .process import Context
from .run import main, prepare_data, run_checks

__all__ = ["Check", "Context", "DEPENDENCIES", "Dependencies", "GpuInfo", "Outcome", "detect_gpu", "exit_code",
           "explain_invisible_gpus", "explain_no_gpu", "format_plan", "format_table", "implementation_flags",
           "judge_layout", "judge_megatron_lm", "judge_resume", "judge_training", "llama_flops_per_token", "main",
           "megatron_lm_command", "megatron_lm_flags", "megatron_lm_layout", "peak_flops", "plan_checks",
           "prepare_data", "probe_dependencies", "run_checks", "LAYOUT_TOLERANCE", "MIN_LOSS_DROP", "NUM_STEPS",
           "PEAK_TFLOPS", "PIPELINE_TOLERANCE", "RESUME_STEP", "RESUME_TOLERANCE"]

"""Megatron-LM's own ``parse_args`` + ``validate_args`` on given ``pretrain_gpt.py`` flags, on a CPU; optionally
its ``TransformerConfig`` and its model.

Usage: ``megatron_lm_args.py CHECKOUT WORLD_SIZE ARCH [--config | --model] -- FLAGS...``. Runs as rank 0 of
``WORLD_SIZE`` ranks with the environment it is given (``CUDA_DEVICE_MAX_CONNECTIONS`` included); Megatron-LM's
GPU architecture query (``get_device_arch_version``, the compute capability's major number, which needs a GPU)
answers ``ARCH``. ``--config`` also builds the ``TransformerConfig`` as ``pretrain_gpt.py``'s model builder does
(``core_transformer_config_from_args``: the config's ``__post_init__`` checks). ``--model`` (one rank, TP=PP=1)
goes on to build the model with ``pretrain_gpt.py``'s own ``model_provider(gpt_builder)`` on the CPU (weights drawn
on the CPU: ``use_cpu_initialization``, the one change to the flags) and runs one forward and backward pass of a
micro-batch in the flags' precision. Prints the validated arguments that matter here as one JSON line, then
``OK``; exits 1 with Megatron-LM's message when it refuses the flags (``validate_args``' assertions,
``TransformerConfig``'s ``ValueError``, the model's assertions and import errors).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def validate(checkout: str, flags: list, env: dict, world_size: int, arch: int,
             build: str = "") -> subprocess.CompletedProcess:
    """Run this script on ``flags`` in a subprocess with environment ``env``; ``build``: ``""``, ``"config"`` or
    ``"model"``."""
    mode = [f"--{build}"] if build else []
    return subprocess.run([sys.executable, __file__, checkout, str(world_size), str(arch), *mode, "--", *flags],
                          env=env, capture_output=True, text=True, timeout=600)


def validated_args(proc: subprocess.CompletedProcess) -> dict:
    """The validated arguments printed by a run that passed."""
    assert proc.returncode == 0 and proc.stdout.rstrip().endswith("OK"), proc.stdout[-2000:] + proc.stderr[-2000:]
    return json.loads(proc.stdout.rstrip().splitlines()[-2])


def _forward_backward(args) -> dict:
    """Megatron-LM's own GPT model of ``args``, built on the CPU; one micro-batch forward and backward."""
    import torch
    from megatron.core import parallel_state
    from megatron.training.global_vars import set_global_variables

    from regmix_megatron.megatron import shims

    shims.apply_cpu_shims()
    args.padded_vocab_size = 1024  # what the tokenizer would set; the model is never fed real text here
    set_global_variables(args, build_tokenizer=False)
    store = torch.distributed.HashStore()
    torch.distributed.init_process_group("gloo", store=store, rank=0, world_size=1)
    parallel_state.initialize_model_parallel()
    shims.seed_model_parallel(args.seed)
    from gpt_builders import gpt_builder  # the checkout's
    from model_provider import model_provider

    model = model_provider(gpt_builder)
    tokens = torch.randint(0, args.padded_vocab_size, (args.micro_batch_size, args.seq_length))
    positions = torch.arange(args.seq_length).unsqueeze(0).expand_as(tokens)
    loss = model(tokens, positions, None, labels=torch.roll(tokens, -1, dims=1)).float().mean()
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    return {"loss": float(loss), "params_dtype": str(next(model.parameters()).dtype),
            "all_grads": all(g is not None and bool(torch.isfinite(g.float()).all()) for g in grads)}


def _build(args, mode: str) -> dict:
    from megatron.training.arguments import core_transformer_config_from_args

    if mode == "model":
        args.use_cpu_initialization = True
    config = core_transformer_config_from_args(args)
    out = {f"config.{key}": getattr(config, key) for key in (
        "apply_rope_fusion", "masked_softmax_fusion", "persist_layer_norm", "bias_dropout_fusion",
        "bias_activation_fusion", "gradient_accumulation_fusion", "transformer_impl")}
    if mode == "model":
        out.update(_forward_backward(args))
    return out


def main(argv: list[str]) -> int:
    checkout, world_size, arch = argv[0], argv[1], int(argv[2])
    mode = next((a[2:] for a in argv[3:argv.index("--")] if a in ("--config", "--model")), "")
    flags = argv[argv.index("--") + 1:]
    sys.path.insert(0, str(REPO / "tools"))
    sys.path.insert(0, str(REPO))
    sys.path.insert(0, checkout)
    os.environ.update(RANK="0", LOCAL_RANK="0", WORLD_SIZE=world_size)
    from check_megatron_lm import _without_triton

    _without_triton()
    from megatron.training import arguments

    arguments.get_device_arch_version = lambda: arch
    sys.argv = ["pretrain_gpt.py", *flags]
    args = arguments.parse_args()
    try:
        arguments.validate_args(args)
        built = _build(args, mode) if mode else {}
    except (AssertionError, ValueError, ImportError) as exc:
        print(f"Megatron-LM refused the flags: {type(exc).__name__}: {exc}")
        return 1
    keys = ("world_size", "tensor_model_parallel_size", "pipeline_model_parallel_size", "data_parallel_size",
            "gradient_accumulation_fusion", "sequence_parallel", "full_validation", "multiple_validation_sets",
            "eval_iters", "fp8", "bf16", "transformer_impl", "train_iters", "global_batch_size", "seq_length",
            "distributed_timeout_minutes")
    print(json.dumps({**{key: getattr(args, key, None) for key in keys}, **built}, default=str))
    print("OK")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

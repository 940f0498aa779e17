"""Megatron-LM's own ``parse_args`` + ``validate_args`` on given ``pretrain_gpt.py`` flags, on a CPU.

Usage: ``megatron_lm_args.py CHECKOUT WORLD_SIZE ARCH -- FLAGS...``. Runs as rank 0 of ``WORLD_SIZE`` ranks with
the environment it is given (``CUDA_DEVICE_MAX_CONNECTIONS`` included); Megatron-LM's GPU architecture query
(``get_device_arch_version``, the compute capability's major number, which needs a GPU) answers ``ARCH``.
Prints the validated arguments that matter here as one JSON line, then ``OK``; exits 1 with Megatron-LM's
message when it refuses the flags.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def validate(checkout: str, flags: list, env: dict, world_size: int, arch: int) -> subprocess.CompletedProcess:
    """Run this script on ``flags`` in a subprocess with environment ``env``."""
    return subprocess.run([sys.executable, __file__, checkout, str(world_size), str(arch), "--", *flags], env=env,
                          capture_output=True, text=True, timeout=300)


def validated_args(proc: subprocess.CompletedProcess) -> dict:
    """The validated arguments printed by a run that passed."""
    assert proc.returncode == 0 and proc.stdout.rstrip().endswith("OK"), proc.stdout[-2000:] + proc.stderr[-2000:]
    return json.loads(proc.stdout.rstrip().splitlines()[-2])


def main(argv: list[str]) -> int:
    checkout, world_size, arch = argv[0], argv[1], int(argv[2])
    flags = argv[argv.index("--") + 1:]
    sys.path.insert(0, str(REPO / "tools"))
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
    except AssertionError as exc:
        print(f"validate_args refused the flags: {exc}")
        return 1
    keys = ("world_size", "tensor_model_parallel_size", "pipeline_model_parallel_size", "data_parallel_size",
            "gradient_accumulation_fusion", "sequence_parallel", "full_validation", "multiple_validation_sets",
            "eval_iters", "fp8", "bf16", "transformer_impl", "train_iters", "global_batch_size", "seq_length")
    print(json.dumps({key: getattr(args, key, None) for key in keys}))
    print("OK")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

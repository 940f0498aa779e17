#!/usr/bin/env python
"""On a GPU machine, run this first: short real trainings of every GPU path we ship, one table, exit 1 on failure.

    python tools/gpu_check.py [--megatron-lm ~/Megatron-LM] [--workdir runs/gpu-check]     (or: make gpu-check)
    python tools/gpu_check.py --allow-missing te          (Transformer Engine's absence known: not a failure)
    python tools/gpu_check.py --plan --gpus 8 --capability 8.0 --transformer-engine        (what it would run)

A path whose dependency is missing is NOT TESTED and fails the run unless --allow-missing names it. When
nvidia-smi sees GPUs that torch does not, it says why and exits 1; without a GPU it says so and exits 0. What it
checks and how: regmix_megatron/gpu_check/__init__.py.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from regmix_megatron.gpu_check import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())

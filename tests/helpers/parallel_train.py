"""Run under ``torchrun --nproc-per-node 2``: a TP=2 run then a PP=2 run of the same tiny config, in one
process group (megatron's parallel state is re-initialized between them). Usage:
``parallel_train.py CONFIG_YAML OUT_DIR``; writes OUT_DIR/tp2 and OUT_DIR/pp2 run directories."""

import sys
import warnings
from pathlib import Path

warnings.filterwarnings("ignore")


def main() -> int:
    import torch.distributed as dist
    from megatron.core import parallel_state

    from regmix_megatron.megatron.train import run_training
    from regmix_megatron.runs.run_config import load_run_config

    config, out = sys.argv[1], Path(sys.argv[2])
    for name, parallel in (("tp2", {"tensor_model_parallel_size": 2}), ("pp2", {"pipeline_model_parallel_size": 2})):
        cfg = load_run_config(config, overrides={"parallel": parallel}, output_dir=out / name)
        result = run_training(cfg)
        if result.get("status") != "completed":
            print(f"{name}: {result}", file=sys.stderr)
            return 1
    dist.barrier()
    parallel_state.destroy_model_parallel()
    dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Run a SLURM launch shell of examples/ without SLURM or GPUs and capture what it would launch.

``srun``, ``scontrol`` and the Python the shell runs are replaced by stubs on ``PATH``; the ``srun`` stub records
its arguments and the environment it was started with (which srun passes on to every task), then exits 0.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"

_SRUN = """#!/bin/sh
printf '%s\\0' "$@" > "$LAUNCH_CAPTURE.argv"
env -0 > "$LAUNCH_CAPTURE.env"
"""


@dataclass(frozen=True)
class Launch:
    argv: list
    """srun's arguments: its options, then the launcher (torchrun) and its arguments."""
    env: dict
    """The environment srun (and so every task) starts with."""

    def after(self, suffix: str) -> list:
        """The arguments after the first one ending with ``suffix`` (e.g. the flags of ``pretrain_gpt.py``)."""
        index = next(i for i, a in enumerate(self.argv) if a.endswith(suffix))
        return self.argv[index + 1:]

    def option(self, name: str) -> str:
        """The value of launcher option ``name`` (``--nproc-per-node``...)."""
        return self.argv[self.argv.index(name) + 1]

    @property
    def world_size(self) -> int:
        return int(self.option("--nnodes")) * int(self.option("--nproc-per-node"))


def _stub(path: Path, text: str) -> None:
    path.write_text(text)
    path.chmod(0o755)


def sbatch_nodes_and_gpus(shell: Path) -> tuple[int, int]:
    """``(#SBATCH --nodes, #SBATCH --gpus-per-node)`` of a launch shell: the allocation SLURM would give it."""
    values = {}
    for line in shell.read_text().splitlines():
        if line.startswith("#SBATCH --nodes=") or line.startswith("#SBATCH --gpus-per-node="):
            key, value = line.split(maxsplit=1)[1].split("=")
            values[key] = int(value)
    return values["--nodes"], values["--gpus-per-node"]


def capture_launch(shell: Path, tmp_path: Path, env: dict | None = None) -> Launch:
    """Run ``shell`` as SLURM would on its allocation (SLURM_NNODES/SLURM_GPUS_ON_NODE from its #SBATCH lines)."""
    stubs = tmp_path / "stubs"
    stubs.mkdir(exist_ok=True)
    _stub(stubs / "srun", _SRUN)
    _stub(stubs / "scontrol", "#!/bin/sh\necho node0001\n")
    _stub(stubs / "python-stub", "#!/bin/sh\nexit 0\n")
    data_args = tmp_path / "per_split_data_args.json"
    if not data_args.exists():
        data_args.write_text("{}")
    nodes, gpus = sbatch_nodes_and_gpus(shell)
    run_env = {key: value for key, value in os.environ.items() if key != "CUDA_DEVICE_MAX_CONNECTIONS"}
    run_env.update(PATH=f"{stubs}{os.pathsep}{os.environ['PATH']}", LAUNCH_CAPTURE=str(tmp_path / "launch"),
                   SLURM_NNODES=str(nodes), SLURM_GPUS_ON_NODE=str(gpus), SLURM_JOB_NODELIST="node0001",
                   SLURM_JOB_ID="1", REGMIX_DATA_ARGS=str(data_args), SAVE_DIR=str(tmp_path / "save"),
                   OUTPUT_DIR=str(tmp_path / "out"), PYTHON=str(stubs / "python-stub"), REPO=str(REPO),
                   MEGATRON_LM=str(tmp_path / "Megatron-LM"))
    run_env.update(env or {})
    proc = subprocess.run(["bash", str(shell)], env=run_env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    argv = (tmp_path / "launch.argv").read_bytes().decode().split("\0")[:-1]
    pairs = (tmp_path / "launch.env").read_bytes().decode().split("\0")[:-1]
    return Launch(argv=argv, env=dict(pair.split("=", 1) for pair in pairs))

"""How gpu-check runs a check: where, with which environment and launcher, its output into a log."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from .judge import Outcome
from .machine import Dependencies, GpuInfo
from .plan import Check

REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Context:
    """Where the checks run, on what data and machine."""

    workdir: Path
    domains_json: Path
    gpu: GpuInfo
    deps: Dependencies = Dependencies()
    megatron_lm: Optional[str] = None
    megatron_data_args: Optional[Path] = None
    """``per_split_data_args.json`` of the natural mixture without its test split (as the 1B shell passes it)."""
    timeout_s: int = 3600


def check_env(ctx: Context, nproc: int, extra: Optional[dict] = None) -> dict:
    """The environment of a check's processes: this repository importable, ``CUDA_DEVICE_MAX_CONNECTIONS=1`` for
    several processes (tensor parallelism on Hopper and older), torch.compile off where no C compiler could build
    its kernels."""
    from ..megatron.model import COMPILE_DISABLE_ENV

    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    if nproc > 1:
        env["CUDA_DEVICE_MAX_CONNECTIONS"] = "1"
    if not ctx.deps.has("compiler"):
        env[COMPILE_DISABLE_ENV] = "1"
    env.update(extra or {})
    return env


def launcher(nproc: int, torchrun: bool = False) -> list:
    """The interpreter, or torchrun with ``nproc`` processes (always for more than one)."""
    if nproc == 1 and not torchrun:
        return [sys.executable]
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(nproc)]


def run_logged(cmd: list, log: Path, ctx: Context, nproc: int, extra_env: Optional[dict] = None) -> tuple:
    """Run ``cmd`` in the repository with :func:`check_env`, its output into ``log``; ``(return code, output)``."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w", encoding="utf-8") as fh:
        try:
            code = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, env=check_env(ctx, nproc, extra_env),
                                  cwd=REPO, timeout=ctx.timeout_s).returncode
        except subprocess.TimeoutExpired:
            code = "timeout"
    return code, log.read_text(encoding="utf-8", errors="replace")


def failed(check: Check, code, text: str, log_name: str) -> Outcome:
    last = [line for line in text.splitlines() if line.strip()][-1:] or [""]
    return Outcome(check, "fail", f"exit {code} ({last[0][-160:]}); log {log_name}")

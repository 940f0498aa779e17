"""``regmix-megatron`` run as a subprocess, for tests of the command line end to end."""

from __future__ import annotations

import subprocess
import sys

import pytest

CLI = [sys.executable, "-m", "regmix_megatron.cli"]


def run_cli(*args: str, check: bool = True, **kwargs) -> subprocess.CompletedProcess:
    """``regmix-megatron ARGS`` (``kwargs`` go to ``subprocess.run``); with ``check`` a non-zero exit fails the
    test, showing the output and the end of the error stream."""
    proc = subprocess.run(CLI + list(args), capture_output=True, text=True, **kwargs)
    if check and proc.returncode != 0:
        pytest.fail(f"{' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr[-3000:]}")
    return proc

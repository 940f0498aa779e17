"""Shared helpers of the training tests: locating the preprocessed corpus fixture and tiny run configs."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def domains_json_of(fixture) -> Path:
    """The domains.json of the shared ``indexed_fixture`` (tests/conftest.py)."""
    path = Path(fixture.domains_json)
    if not path.is_file():
        pytest.skip(f"indexed_fixture has no domains.json at {path}")
    return path


def tiny_config(domains: Path, output_dir: Path, **sections) -> dict:
    """A tiny-test run mapping (vocab of the fixture tokenizer, seq 64, 30 steps of 16 sequences)."""
    return {"preset": "tiny-test", "domains": str(domains), "output_dir": str(output_dir), "seed": 1, **sections}


def subprocess_env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env.setdefault("OMP_NUM_THREADS", "1")
    return env


def kill_when(cmd: list[str], marker: Path, timeout_s: float = 240) -> None:
    """Start ``cmd``, SIGKILL it as soon as ``marker`` exists (or it ends, or ``timeout_s`` passes)."""
    proc = subprocess.Popen(cmd, env=subprocess_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + timeout_s
    while not marker.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()

"""Shared helpers of the training tests: locating the preprocessed corpus fixture and tiny run configs."""

from __future__ import annotations

import os
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

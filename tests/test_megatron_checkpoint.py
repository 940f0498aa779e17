"""Checkpoint shards load as data only (regmix_megatron/megatron/checkpoint.py): a pickle that would run code is
refused before anything runs, a truncated shard is reported as corrupt, the trainer's own state (numpy's RNG state
included) needs no allow-list, and shards of the earlier format (a numpy array) still load."""

from __future__ import annotations

import random
import subprocess
import sys

import numpy as np
import pytest
import torch

from regmix_megatron.megatron import checkpoint as ckpt
from regmix_megatron.megatron.train import numpy_rng_state, set_numpy_rng_state


class CreatesAFile:
    """A pickle payload: unpickling it calls ``open(path, "w")``, creating the file (the stand-in for any code)."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def _shard_dir(tmp_path, state) -> "Path":  # noqa: F821
    step = tmp_path / "step_0000002"
    step.mkdir()
    torch.save(state, step / ckpt.shard_name(0, 0))
    return step


def _trainer_like_state() -> dict:
    return {"model": {"w": torch.ones(3)}, "optimizer": {"state": {}, "param_groups": [{"lr": 0.1, "params": [0]}]},
            "scheduler": {"num_steps": 2}, "step": 2,
            "rng": {"python": random.getstate(), "numpy": numpy_rng_state(), "torch": torch.get_rng_state(),
                    "cuda": None, "tracker": {"model-parallel-rng": torch.get_rng_state()}}}


def test_a_shard_whose_unpickling_would_run_code_is_refused_and_nothing_runs(tmp_path):
    marker = tmp_path / "payload-ran"
    state = _trainer_like_state()
    state["rng"]["python"] = CreatesAFile(marker)
    step = _shard_dir(tmp_path, state)
    # the payload is live: an unrestricted load (in another process) runs it
    subprocess.run([sys.executable, "-c", "import sys, torch; torch.load(sys.argv[1], weights_only=False)",
                    str(step / ckpt.shard_name(0, 0))], check=False, capture_output=True,
                   cwd=tmp_path, env={"PYTHONPATH": str(__import__("pathlib").Path(__file__).parent)})
    assert marker.exists(), "the test payload should create its file when loaded without restrictions"
    marker.unlink()
    with pytest.raises(ckpt.CheckpointRefused, match=r"refused to load: it holds objects other than tensors and "
                                                     r"plain data \(it names (io|builtins)\.open\).*Delete .*step_0000002"):
        ckpt.load_shard(step, 0, 0)
    assert not marker.exists()


def test_a_truncated_shard_is_corrupt_not_refused(tmp_path):
    step = _shard_dir(tmp_path, _trainer_like_state())
    shard = step / ckpt.shard_name(0, 0)
    shard.write_bytes(shard.read_bytes()[:-200])
    with pytest.raises(ckpt.CorruptCheckpoint, match="cannot be read"):
        ckpt.load_shard(step, 0, 0)


def test_the_trainers_state_needs_no_allow_list_and_restores_numpys_stream(tmp_path):
    np.random.seed(123)
    step = _shard_dir(tmp_path, _trainer_like_state())
    expected = np.random.random(5)
    assert torch.serialization.get_unsafe_globals_in_checkpoint(step / ckpt.shard_name(0, 0)) == []
    state = ckpt.load_shard(step, 0, 0)
    np.random.seed(999)
    set_numpy_rng_state(state["rng"]["numpy"])
    np.testing.assert_array_equal(np.random.random(5), expected)


def test_a_shard_of_the_earlier_format_still_loads(tmp_path):
    """Before this version numpy's RNG state was saved as numpy's own tuple (it holds a uint32 array)."""
    np.random.seed(7)
    state = _trainer_like_state()
    state["rng"]["numpy"] = np.random.get_state()
    expected = np.random.random(3)
    step = _shard_dir(tmp_path, state)
    loaded = ckpt.load_shard(step, 0, 0)
    set_numpy_rng_state(loaded["rng"]["numpy"])
    np.testing.assert_array_equal(np.random.random(3), expected)
